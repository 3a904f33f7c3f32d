# pghistory: PGXS build.
#
#   make install [PG_CONFIG=/path/to/pg_config]     install the control and SQL files
#   make installcheck [PG_CONFIG=...]                run tests/sql against a running server
#                                                    (PGHOST, PGPORT, PGUSER as for psql)
#
#   make build                                       regenerate the committed scripts from extension/src
#   make check-generated                             fail when a committed generated script is stale
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

# The version is written once, in the control file; the build puts it into the SQL.
VERSION := $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" extension/pghistory.control)
SOURCES := $(sort $(wildcard extension/src/*.sql))
SCRIPT := extension/pghistory--$(VERSION).sql
PYTHON ?= python3

# build and check-generated need neither pg_config nor PGXS.
BUILD_GOALS := build check-generated
ifneq ($(MAKECMDGOALS),)
ifeq ($(filter-out $(BUILD_GOALS),$(MAKECMDGOALS)),)
BUILD_ONLY := 1
endif
endif

ifndef BUILD_ONLY
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
endif

# The full script: the sources in name order, as pg_partman builds its own (cat).
define build_script
cat $(SOURCES) | sed 's/@PGHISTORY_VERSION@/$(VERSION)/g'
endef

.PHONY: build check-generated
build:
	$(build_script) > $(SCRIPT).tmp && mv $(SCRIPT).tmp $(SCRIPT)
	@# the upgrade from the newest frozen release: extension/src/upgrade/<that>--$(VERSION).sql
	$(PYTHON) tools/upgrade_script.py --to $(VERSION)

check-generated:
	@$(build_script) | cmp -s - $(SCRIPT) || { \
	    echo "$(SCRIPT) is stale (extension/src or pghistory.control changed): run make build and commit the result" >&2; \
	    exit 1; }
	@$(PYTHON) tools/upgrade_script.py --to $(VERSION) --check
