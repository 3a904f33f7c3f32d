--------------------------------------------------------------------------------------------------
-- Travelling in history: revert, prune, backfill
--------------------------------------------------------------------------------------------------


CREATE FUNCTION @extschema@.revert(event_table regclass, pgh_id bigint)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Put an object back as one event recorded it: update the row, or insert it again if it is gone.
-- It is an ordinary write with the caller's rights, so it is tracked like any other.
DECLARE
    v_event   @extschema@._event_table;
    v_key     record;
    v_columns text;
    v_missing text;
    v_inserted boolean;
BEGIN
    SELECT e.* INTO v_event FROM @extschema@._event_table e WHERE e.event_table = revert.event_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pghistory: % is not an event table', event_table
            USING ERRCODE = 'undefined_object', HINT = 'See SELECT event_table FROM pghistory.tracking.';
    END IF;
    SELECT * INTO v_key FROM @extschema@._primary_key(v_event.target);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pghistory: % has no single-column primary key to revert by', v_event.target
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'revert() finds the row by its primary key.';
    END IF;
    -- Every column the table has (but generated ones) must be in the history.
    SELECT string_agg(quote_ident(c.attname), ', ') INTO v_missing
    FROM @extschema@._columns(v_event.target) c JOIN pg_attribute a ON a.attrelid = v_event.target AND a.attnum = c.attnum
    WHERE a.attgenerated = '' AND c.attname <> ALL (v_event.columns);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'pghistory: % does not hold every column of % (missing: %)', event_table, v_event.target, v_missing
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'revert() needs a history of every column (track without fields/exclude).';
    END IF;
    SELECT string_agg(quote_ident(c.attname), ', ' ORDER BY c.attnum) INTO v_columns
    FROM @extschema@._columns(v_event.target) c JOIN pg_attribute a ON a.attrelid = v_event.target AND a.attnum = c.attnum
    WHERE a.attgenerated = '';
    EXECUTE format('INSERT INTO %1$s AS t (%2$s) OVERRIDING SYSTEM VALUE SELECT %2$s FROM %3$s AS e WHERE e.pgh_id = $1 '
                   'ON CONFLICT (%4$I) DO UPDATE SET (%2$s) = ROW(%5$s) RETURNING t.xmax = 0',
                   v_event.target, v_columns, event_table, v_key.attname,
                   (SELECT string_agg('excluded.' || x, ', ') FROM unnest(string_to_array(v_columns, ', ')) AS x))
        INTO v_inserted
        USING pgh_id;
    IF v_inserted IS NULL THEN
        RAISE EXCEPTION 'pghistory: % has no event with pgh_id %', event_table, pgh_id
            USING ERRCODE = 'no_data_found', HINT = 'Pick an event from that table.';
    END IF;
    RETURN CASE WHEN v_inserted THEN 'inserted' ELSE 'updated' END;
END
$function$;
COMMENT ON FUNCTION @extschema@.revert(regclass, bigint) IS
    'Put the object of an event back as that event recorded it (update, or insert if deleted); returns what it did';


CREATE FUNCTION @extschema@.prune(target regclass DEFAULT NULL, older_than interval DEFAULT NULL,
                                  keep_last integer DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Delete old events: those older than older_than, except the keep_last newest of each object.
-- Append-only histories are pruned only when their owner names the table.
DECLARE
    v_event     @extschema@._event_table;
    v_partition record;
    v_count     bigint;
    v_total     bigint := 0;
BEGIN
    IF older_than IS NULL AND keep_last IS NULL THEN
        RAISE EXCEPTION 'pghistory: prune() needs older_than or keep_last'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'E.g. pghistory.prune(older_than => ''90 days'') or pghistory.prune(''t'', keep_last => 10).';
    END IF;
    IF keep_last < 0 THEN
        RAISE EXCEPTION 'pghistory: keep_last must not be negative, not %', keep_last
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass how many events per object to keep.';
    END IF;
    IF target IS NOT NULL THEN
        PERFORM @extschema@._check_owner(target, 'prune');
        IF NOT EXISTS (SELECT FROM @extschema@._event_table e WHERE e.target = prune.target) THEN
            RAISE EXCEPTION 'pghistory: % is not tracked', target
                USING ERRCODE = 'undefined_object', HINT = 'See SELECT * FROM pghistory.tracking.';
        END IF;
    END IF;
    FOR v_event IN
        SELECT e.* FROM @extschema@._event_table e JOIN pg_class c ON c.oid = e.event_table
        WHERE (prune.target IS NULL OR e.target = prune.target) AND pg_has_role(current_user, c.relowner, 'USAGE')
          AND (NOT e.append_only OR prune.target IS NOT NULL)
        ORDER BY e.event_table::text
    LOOP
        IF v_event.append_only THEN
            PERFORM set_config('pghistory.busy', 'on', true);
            EXECUTE format('ALTER TABLE %s DISABLE TRIGGER pghistory_append_only', v_event.event_table);
        END IF;
        IF v_event.partition_by IS NOT NULL THEN
            PERFORM set_config('pghistory.busy', 'on', true);
            PERFORM @extschema@._add_partitions(v_event.event_table, v_event.partition_by, v_event.append_only);
            -- Whole periods older than older_than go at once (with keep_last, rows are chosen one by one).
            FOR v_partition IN
                SELECT p.relid::regclass AS relation
                FROM pg_partition_tree(v_event.event_table) AS p JOIN pg_class c ON c.oid = p.relid
                WHERE p.isleaf AND keep_last IS NULL AND older_than IS NOT NULL
                  AND (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
                      <= now() - older_than
            LOOP
                EXECUTE format('SELECT count(*) FROM %s', v_partition.relation) INTO v_count;
                EXECUTE format('DROP TABLE %s', v_partition.relation);
                v_total := v_total + v_count;
            END LOOP;
        END IF;
        EXECUTE format('DELETE FROM %1$s AS e WHERE ($1 IS NULL OR e.pgh_created_at < now() - $1) '
                       'AND ($2 IS NULL OR e.pgh_id NOT IN (SELECT k.pgh_id FROM (SELECT p.pgh_id, row_number() OVER '
                       '(%2$s ORDER BY p.pgh_id DESC) AS n FROM %1$s AS p) AS k WHERE k.n <= $2))',
                       v_event.event_table,
                       CASE WHEN v_event.obj_field IS NULL THEN '' ELSE format('PARTITION BY p.%I', v_event.obj_field) END)
            USING older_than, keep_last;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_total := v_total + v_count;
        IF v_event.append_only THEN
            EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER pghistory_append_only', v_event.event_table);
        END IF;
        PERFORM set_config('pghistory.busy', '', true);
    END LOOP;
    RETURN v_total;
END
$function$;
COMMENT ON FUNCTION @extschema@.prune(regclass, interval, integer) IS
    'Delete events older than older_than, keeping the keep_last newest per object; returns how many were deleted';


CREATE FUNCTION @extschema@.backfill(target regclass, model_name text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Record the current state of every row as a 'backfill' event, so that history (and as_of) covers rows
-- that existed before tracking began. Goes through the rows by primary key in batches, reporting
-- progress as NOTICEs. Without model_name: every event table of target that records inserts.
DECLARE
    v_event @extschema@._event_table;
    v_key   record;
    v_name  text[];
    v_named regclass;
    v_last  text;
    v_batch bigint;
    v_done  bigint;
    v_total bigint := 0;
    v_rows  bigint := (SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = target);
BEGIN
    IF model_name IS NOT NULL THEN
        v_name := @extschema@._resolve_event_table(target, model_name);
        v_named := to_regclass(format('%I.%I', v_name[1], v_name[2]));
        IF NOT EXISTS (SELECT FROM @extschema@._event_table e WHERE e.target = backfill.target AND e.event_table = v_named) THEN
            RAISE EXCEPTION 'pghistory: % has no event table named "%"', target, model_name
                USING ERRCODE = 'undefined_object',
                      HINT = format('Event tables of %s: %s.', target,
                                    coalesce((SELECT string_agg(e.event_table::text, ', ') FROM @extschema@._event_table e
                                              WHERE e.target = backfill.target), 'none'));
        END IF;
    END IF;
    SELECT * INTO v_key FROM @extschema@._primary_key(target);
    FOR v_event IN
        SELECT e.* FROM @extschema@._event_table e
        WHERE e.target = backfill.target AND e.trigger_function IS NOT NULL
          AND (model_name IS NULL AND EXISTS (SELECT FROM @extschema@._tracker t WHERE t.event_table = e.event_table
                                              AND t.operation IN ('insert', 'insert_or_update'))
               OR e.event_table = v_named)
        ORDER BY e.event_table::text
    LOOP
        IF v_key IS NULL THEN
            EXECUTE format('INSERT INTO %s (%s) SELECT %L, %s FROM %s AS t FOR SHARE', v_event.event_table,
                           @extschema@._event_columns(v_event), 'backfill',
                           @extschema@._event_values(v_event, 't', @extschema@._context_expression(v_event)), target);
            GET DIAGNOSTICS v_batch = ROW_COUNT;
            v_total := v_total + v_batch;
            CONTINUE;
        END IF;
        v_last := NULL;
        v_done := 0;
        LOOP
            -- FOR SHARE: a write to a row of the batch commits before the row is read (its event then
            -- comes first) or waits for this transaction (its event comes after): never a stale
            -- backfill event after a newer one (bench/soak.py).
            EXECUTE format('WITH batch AS (SELECT * FROM %1$s AS t WHERE $1 IS NULL OR t.%2$I > $1::%3$s ORDER BY t.%2$I LIMIT 10000 FOR SHARE), '
                           'recorded AS (INSERT INTO %4$s (%5$s) SELECT %6$L, %7$s FROM batch AS t) '
                           'SELECT count(*), max(t.%2$I)::text FROM batch AS t',
                           target, v_key.attname, v_key.type_sql, v_event.event_table, @extschema@._event_columns(v_event),
                           'backfill', @extschema@._event_values(v_event, 't', @extschema@._context_expression(v_event)))
                INTO v_batch, v_last
                USING v_last;
            EXIT WHEN v_batch = 0;
            v_done := v_done + v_batch;
            RAISE NOTICE 'pghistory: backfill of %: % rows%', v_event.event_table, v_done,
                         CASE WHEN v_rows > 0 THEN format(' of about %s', v_rows) ELSE '' END;
        END LOOP;
        v_total := v_total + v_done;
    END LOOP;
    IF v_total = 0 AND NOT EXISTS (SELECT FROM @extschema@._event_table e WHERE e.target = backfill.target) THEN
        RAISE EXCEPTION 'pghistory: % is not tracked', target
            USING ERRCODE = 'undefined_object', HINT = 'Track it first: SELECT pghistory.track(...).';
    END IF;
    RETURN v_total;
END
$function$;
COMMENT ON FUNCTION @extschema@.backfill(regclass, text) IS
    'Record the current state of every row as a backfill event (so history covers rows older than the tracking); returns how many';
