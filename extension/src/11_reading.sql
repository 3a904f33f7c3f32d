--------------------------------------------------------------------------------------------------
-- Reading history: as_of
--------------------------------------------------------------------------------------------------


CREATE FUNCTION @extschema@._primary_key(p_target regclass)
    RETURNS TABLE (attname name, type_sql text)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- The single-column primary key of a table (no row when it has none or a composite one).
    SELECT a.attname, format_type(a.atttypid, a.atttypmod)
    FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = p_target AND i.indisprimary AND i.indnatts = 1
$function$;


CREATE FUNCTION @extschema@.as_of(target anyelement, at timestamptz)
    RETURNS SETOF anyelement
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- The table as it was at a moment: for each object its last event up to then (by transaction time),
-- unless that was a delete. Needs a history of inserts, updates (new rows) and deletes of every
-- column; rows older than the tracking are there once pghistory.backfill() has recorded them.
DECLARE
    v_table   regclass := (SELECT nullif(t.typrelid, 0)::regclass FROM pg_type t WHERE t.oid = pg_typeof(target));
    v_event   @extschema@._event_table;
    v_present text[];
    v_absent  text[];
    v_missing text;
    v_why     text[] := '{}'::text[];
BEGIN
    IF v_table IS NULL OR (SELECT relkind FROM pg_class WHERE oid = v_table) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'pghistory: as_of() needs the row type of a table, not %', pg_typeof(target)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Call it as pghistory.as_of(NULL::schema.table, timestamp).';
    END IF;
    FOR v_event IN SELECT e.* FROM @extschema@._event_table e WHERE e.target = v_table ORDER BY e.event_table::text LOOP
        v_present := ARRAY(SELECT t.label FROM @extschema@._tracker t WHERE t.event_table = v_event.event_table
                             AND t.condition IS NULL AND t.snapshot = 'new'
                             AND t.operation IN ('insert', 'update', 'insert_or_update', 'manual')) || '{backfill}';
        v_absent := ARRAY(SELECT t.label FROM @extschema@._tracker t WHERE t.event_table = v_event.event_table
                            AND t.condition IS NULL AND t.operation IN ('delete', 'truncate'));
        v_missing := concat_ws(', ',
            CASE WHEN v_event.obj_field IS NULL THEN 'no object reference (obj_field)' END,
            CASE WHEN v_event.fields IS NOT NULL OR v_event.exclude IS NOT NULL THEN 'only some columns' END,
            CASE WHEN NOT EXISTS (SELECT FROM @extschema@._tracker t WHERE t.event_table = v_event.event_table
                                  AND t.label = ANY (v_present) AND t.operation IN ('insert', 'insert_or_update'))
                 THEN 'no insert events' END,
            CASE WHEN NOT EXISTS (SELECT FROM @extschema@._tracker t WHERE t.event_table = v_event.event_table
                                  AND t.label = ANY (v_present) AND t.operation IN ('update', 'insert_or_update'))
                 THEN 'no update events of the new rows' END,
            CASE WHEN cardinality(v_absent) = 0 THEN 'no delete events' END,
            (SELECT 'no column ' || string_agg(quote_ident(c.attname), ', ') FROM @extschema@._columns(v_table) c
             WHERE NOT EXISTS (SELECT FROM pg_attribute h WHERE h.attrelid = v_event.event_table
                               AND h.attname = c.attname AND NOT h.attisdropped)));
        IF v_missing = '' THEN
            RETURN QUERY EXECUTE format(
                'SELECT %s FROM (SELECT DISTINCT ON (e.%I) * FROM %s AS e'
                '                WHERE e.pgh_created_at <= $1 AND e.pgh_label = ANY ($2)'
                '                ORDER BY e.%I, e.pgh_id DESC) AS e '
                'WHERE e.pgh_label <> ALL ($3)',
                (SELECT string_agg(format('e.%I', c.attname), ', ' ORDER BY c.attnum) FROM @extschema@._columns(v_table) c),
                v_event.obj_field, v_event.event_table, v_event.obj_field)
                USING at, v_present || v_absent, v_absent;
            RETURN;
        END IF;
        v_why := v_why || format('%s has %s', v_event.event_table, v_missing);
    END LOOP;
    RAISE EXCEPTION 'pghistory: the history of % cannot rebuild it: %', v_table,
                    coalesce(nullif(array_to_string(v_why, '; '), ''), 'it is not tracked')
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = format('Track inserts, updates and deletes of every column: SELECT pghistory.track(%L, '
                            'pghistory.insert_event(), pghistory.update_event(), pghistory.delete_event(), '
                            'model_name => ''...''), then pghistory.backfill().', v_table::text);
END
$function$;
COMMENT ON FUNCTION @extschema@.as_of(anyelement, timestamptz) IS
    'The rows of a table as they were at a moment, rebuilt from its history: pghistory.as_of(NULL::t, ''2026-01-01'')';
