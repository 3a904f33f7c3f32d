--------------------------------------------------------------------------------------------------
-- Views
--------------------------------------------------------------------------------------------------

CREATE VIEW @extschema@.tracking AS
    SELECT e.target,
           e.event_table,
           coalesce((SELECT jsonb_agg(jsonb_build_object('label', t.label, 'operation', t.operation,
                                                         'snapshot', t.snapshot, 'timing', t.timing,
                                                         'condition', t.trigger_when, 'level', t.level)
                                      ORDER BY t.label)
                     FROM @extschema@._tracker t WHERE t.event_table = e.event_table), '[]') AS trackers,
           e.columns AS fields,
           e.obj_field,
           e.context_mode,
           e.context_field,
           e.append_only,
           e.level,
           e.partition_by,
           e.trigger_function IS NOT NULL AS active,
           e.created_at
    FROM @extschema@._event_table e;
COMMENT ON VIEW @extschema@.tracking IS
    'pghistory: one row per event table: the tracked table, its trackers (label, operation, snapshot, timing, condition), tracked fields and options';


CREATE VIEW @extschema@.events AS
    SELECT NULL::text AS pgh_slug, NULL::regclass AS pgh_model, NULL::bigint AS pgh_id,
           NULL::timestamptz AS pgh_created_at, NULL::text AS pgh_label, NULL::regclass AS pgh_obj_model,
           NULL::text AS pgh_obj_id, NULL::jsonb AS pgh_data, NULL::jsonb AS pgh_diff,
           NULL::uuid AS pgh_context_id, NULL::jsonb AS pgh_context
    WHERE false;
COMMENT ON VIEW @extschema@.events IS
    'pghistory: every event of every event table you may read, with its data, its diff against the previous event of the same object, and its context';


CREATE FUNCTION @extschema@._refresh_events_view(p_empty boolean DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Rebuild pghistory.events as a UNION ALL over the registered event tables. It runs as the extension
-- owner (who owns the view); each branch shows rows only to those who may SELECT that event table,
-- a check PostgreSQL makes once per branch, and a filter on pgh_obj_model prunes whole branches.
-- Tables appear as oid constants (a regclass literal would be a dependency): the view depends on no
-- table but its event tables (through FROM);
-- p_empty drops even those, for the moment a DROP runs (see the event triggers).
DECLARE
    v_branches text;
BEGIN
    -- One rebuild at a time, reading the registry after the previous one committed.
    PERFORM pg_advisory_xact_lock(hashtext('pghistory.events'));
    -- pgh_diff compares each event with the previous one of its object (lag() over the object's
    -- events); a filter on pgh_obj_id reaches the event table because it is the window's partition.
    SELECT string_agg(format($branch$
    SELECT %1$L || ':' || x.pgh_id AS pgh_slug, %2$s::oid::regclass AS pgh_model, x.pgh_id, x.pgh_created_at,
           x.pgh_label, %3$s::oid::regclass AS pgh_obj_model, x.pgh_obj_id, x.data AS pgh_data,
           CASE WHEN x.previous IS NOT NULL THEN
               (SELECT coalesce(jsonb_object_agg(n.key, jsonb_build_array(o.value, n.value)), '{}')
                FROM jsonb_each(x.data) AS n JOIN jsonb_each(x.previous) AS o ON o.key = n.key
                WHERE n.value IS DISTINCT FROM o.value) END AS pgh_diff,
           x.pgh_context_id, %4$s AS pgh_context
    FROM (SELECT e.pgh_id, e.pgh_created_at, e.pgh_label, %5$s AS pgh_obj_id, %6$s AS pgh_context_id,
                 %7$s AS pgh_context_json, d.data,
                 %8$s AS previous
          FROM %1$s AS e
          CROSS JOIN LATERAL (SELECT to_jsonb(e) - %9$L::text[] AS data) AS d
          WHERE has_table_privilege(%2$s::oid, 'SELECT')) AS x
    %10$s$branch$,
            ev.event_table::text, ev.event_table::oid, ev.target::oid,
            CASE ev.context_mode WHEN 'id' THEN 'c.metadata' WHEN 'json' THEN 'x.pgh_context_json' ELSE 'NULL::jsonb' END,
            CASE WHEN ev.obj_field IS NULL THEN 'NULL::text' ELSE format('e.%I::text', ev.obj_field) END,
            CASE WHEN ev.context_mode = 'id' THEN format('e.%I', ev.context_field) ELSE 'NULL::uuid' END,
            CASE WHEN ev.context_mode = 'json' THEN format('e.%I', ev.context_field) ELSE 'NULL::jsonb' END,
            CASE WHEN ev.obj_field IS NULL THEN 'NULL::jsonb'
                 ELSE format('lag(d.data) OVER (PARTITION BY e.%I::text ORDER BY e.pgh_id)', ev.obj_field) END,
            ARRAY['pgh_id', 'pgh_created_at', 'pgh_label']
                || array_remove(ARRAY[ev.obj_field, ev.context_field]::text[], NULL),
            CASE WHEN ev.context_mode = 'id'
                 THEN 'LEFT JOIN @extschema@.context AS c ON c.id = x.pgh_context_id' ELSE '' END),
        E'\n    UNION ALL' ORDER BY ev.event_table::text)
    INTO v_branches
    FROM @extschema@._event_table ev
    WHERE has_table_privilege(ev.event_table, 'SELECT')   -- the view owner must be able to read it
      AND NOT p_empty;
    EXECUTE 'CREATE OR REPLACE VIEW @extschema@.events AS'
            || coalesce(v_branches, $empty$
    SELECT NULL::text AS pgh_slug, NULL::regclass AS pgh_model, NULL::bigint AS pgh_id,
           NULL::timestamptz AS pgh_created_at, NULL::text AS pgh_label, NULL::regclass AS pgh_obj_model,
           NULL::text AS pgh_obj_id, NULL::jsonb AS pgh_data, NULL::jsonb AS pgh_diff,
           NULL::uuid AS pgh_context_id, NULL::jsonb AS pgh_context
    WHERE false$empty$);
END
$function$;


CREATE FUNCTION @extschema@._registry_trigger()
    RETURNS trigger
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $function$
-- pghistory.events follows the registry: every statement that changes _event_table rebuilds it, as
-- the extension owner. A trigger, so the owner's function need not be executable by everyone.
BEGIN
    PERFORM @extschema@._refresh_events_view();
    RETURN NULL;
END
$function$;

CREATE TRIGGER pghistory_events_view AFTER INSERT OR UPDATE OR DELETE ON @extschema@._event_table
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._registry_trigger();


CREATE FUNCTION @extschema@.related_events(target regclass, pk text)
    RETURNS SETOF @extschema@.events
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- An object's history as people read it: its own events and those of the tracked rows whose
-- foreign key referenced it when they were recorded (one level: an order and its lines), oldest
-- first, as django-pghistory's Events.references() reads them. It runs as the caller, through
-- pghistory.events, so only event tables the caller may read contribute. Each part is found by
-- object (the diff window's partition) and pgh_id, never by reading a whole history.
DECLARE
    v_ref   record;
    v_ids   bigint[];
    v_objs  text[];
    v_query text := 'SELECT * FROM @extschema@.events WHERE pgh_obj_model = $1 AND pgh_obj_id = $2';
BEGIN
    IF target IS NULL OR pk IS NULL THEN
        RAISE EXCEPTION 'pghistory: related_events() needs a table and a primary key value'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Call it as pghistory.related_events(''public.orders'', ''42'').';
    END IF;
    -- Single-column foreign keys to the primary key of target, from tracked tables whose event
    -- table records the referencing column.
    FOR v_ref IN
        SELECT ev.event_table, ev.target, ev.obj_field, a.attname,
               format_type(h.atttypid, h.atttypmod) AS type_sql
        FROM pg_constraint c
        JOIN @extschema@._primary_key(related_events.target) k ON true
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        JOIN @extschema@._event_table ev ON ev.target = c.conrelid
        JOIN pg_attribute h ON h.attrelid = ev.event_table AND h.attname = a.attname AND NOT h.attisdropped
        WHERE c.contype = 'f' AND c.confrelid = related_events.target AND cardinality(c.conkey) = 1
          AND (SELECT r.attname FROM pg_attribute r WHERE r.attrelid = related_events.target AND r.attnum = c.confkey[1]) = k.attname
          AND has_table_privilege(ev.event_table, 'SELECT')
        ORDER BY ev.event_table::text, a.attname
    LOOP
        EXECUTE format('SELECT array_agg(e.pgh_id), array_agg(DISTINCT %s) FROM %s AS e WHERE e.%I = $1::%s',
                       CASE WHEN v_ref.obj_field IS NULL THEN 'NULL::text' ELSE format('e.%I::text', v_ref.obj_field) END,
                       v_ref.event_table, v_ref.attname, v_ref.type_sql)
            INTO v_ids, v_objs
            USING pk;
        CONTINUE WHEN v_ids IS NULL;
        v_query := v_query || format(
            ' UNION ALL SELECT * FROM @extschema@.events WHERE pgh_model = %s::oid::regclass AND pgh_id = ANY (%L::bigint[])',
            v_ref.event_table::oid, v_ids)
            || CASE WHEN v_ref.obj_field IS NULL THEN ''
                    ELSE format(' AND pgh_obj_model = %s::oid::regclass AND pgh_obj_id = ANY (%L::text[])',
                                v_ref.target::oid, v_objs) END
            -- a row referencing its own table (a manager and their reports): its own events are above
            || CASE WHEN v_ref.target = related_events.target THEN format(' AND pgh_obj_id <> %L', pk) ELSE '' END;
    END LOOP;
    RETURN QUERY EXECUTE 'SELECT * FROM (' || v_query || ') AS r ORDER BY r.pgh_created_at, r.pgh_id, r.pgh_model::text'
        USING target, pk;
END
$function$;
COMMENT ON FUNCTION @extschema@.related_events(regclass, text) IS
    'pghistory: the events of one object and of the tracked rows that reference it by a foreign key (an order and its lines), oldest first';
