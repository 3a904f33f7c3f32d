EXTENSION = pghistory
DATA = $(wildcard extension/pghistory--*.sql)
