# pghistory: PGXS build.
#
#   make install [PG_CONFIG=/path/to/pg_config]     install the control and SQL files
#   make installcheck [PG_CONFIG=...]                run tests/sql against a running server
#                                                    (PGHOST, PGPORT, PGUSER as for psql)
#
# The whole test suite (every supported PostgreSQL, pg_regress and pytest) is tests/run.

EXTENSION = pghistory

# The sources live in extension/; PGXS looks up DATA and the control file in $(srcdir),
# which it sets from VPATH.
VPATH = extension
DATA = $(sort $(notdir $(wildcard extension/pghistory--*.sql)))

# Every tests/sql/*.sql, in name order (tests/runner.py uses the same rule).
REGRESS = $(sort $(basename $(notdir $(wildcard tests/sql/*.sql))))
REGRESS_OPTS = --inputdir=tests

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
