\echo Use "CREATE EXTENSION pghistory" to load this file. \quit
--
-- pghistory @PGHISTORY_VERSION@: row history for PostgreSQL tables.
--
-- pghistory.track() declares which changes of a table are recorded; it creates an event table
-- (an ordinary table beside the tracked one) and generated triggers that copy rows into it.
-- Everything runs in the server, so every writer is recorded, whatever client it uses.
--
-- GENERATED: `make build` concatenates extension/src/NN_*.sql (one file per concern: registry,
-- context, helpers, conditions, trackers, code generation, event tables, track / untrack, schema
-- changes, manual events, reading, travel, views, event triggers, grants) and puts in the version of
-- pghistory.control. Edit those files, never this one.
--
-- Conventions: every function pins search_path and qualifies our objects with @extschema@;
-- dynamic SQL uses format() with %I / %L / regclass; internal helpers start with "_";
-- parameters are p_*, locals v_*.


-- The version: `make build` writes default_version of pghistory.control here and in the title.
CREATE FUNCTION @extschema@.version()
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN '@PGHISTORY_VERSION@';
COMMENT ON FUNCTION @extschema@.version() IS 'The version of the pghistory SQL installed in this database';
