\echo Use "CREATE EXTENSION pghistory" to load this file. \quit
-- placeholder while the extension is written
CREATE FUNCTION @extschema@.version()
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $function$ SELECT '1.0'::text $function$;
