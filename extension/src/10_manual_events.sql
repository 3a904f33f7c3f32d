--------------------------------------------------------------------------------------------------
-- Manual events
--------------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.create_event(target regclass, pk text, label text)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Snapshot the current row of target into the event table whose tracker owns label. Runs with the
-- caller's privileges: SELECT on the table, INSERT on its event table (the owner has both).
DECLARE
    v_event @extschema@._event_table;
    v_key   record;
    v_id    bigint;
BEGIN
    SELECT e.* INTO v_event
    FROM @extschema@._tracker t JOIN @extschema@._event_table e ON e.event_table = t.event_table
    WHERE t.target = create_event.target AND t.label = create_event.label;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pghistory: no tracker of % has label "%"', target, label
            USING ERRCODE = 'undefined_object',
                  HINT = format('Labels of %s: %s. Add one with pghistory.manual_event(''%s'') in track().', target,
                                coalesce((SELECT string_agg(quote_literal(t.label), ', ' ORDER BY t.label)
                                          FROM @extschema@._tracker t WHERE t.target = create_event.target), 'none'),
                                label);
    END IF;
    SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type_sql INTO v_key
    FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = target AND i.indisprimary AND i.indnatts = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pghistory: % has no single-column primary key to find the row by', target
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'create_event() needs a table with a one-column primary key.';
    END IF;
    EXECUTE format('INSERT INTO %s (%s) SELECT $1, %s FROM %s AS t WHERE t.%I = $2::%s RETURNING pgh_id',
                   v_event.event_table, @extschema@._event_columns(v_event), @extschema@._event_values(v_event, 't', @extschema@._context_expression(v_event)),
                   target, v_key.attname, v_key.type_sql)
        INTO v_id
        USING label, pk;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'pghistory: % has no row with % = %', target, quote_ident(v_key.attname), quote_nullable(pk)
            USING ERRCODE = 'no_data_found',
                  HINT = 'create_event() records an existing row: check the primary key value.';
    END IF;
    RETURN v_id;
END
$function$;
COMMENT ON FUNCTION @extschema@.create_event(regclass, text, text) IS
    'Record the current row of target (by primary key) as an event with this label; returns its pgh_id';

CREATE FUNCTION @extschema@.create_event(target regclass, pk anyelement, label text)
    RETURNS bigint
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$ SELECT @extschema@.create_event(target, pk::text, label) $function$;
COMMENT ON FUNCTION @extschema@.create_event(regclass, anyelement, text) IS
    'Record the current row of target (by primary key) as an event with this label; returns its pgh_id';
