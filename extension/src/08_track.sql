--------------------------------------------------------------------------------------------------
-- track / untrack
--------------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.track(
    target        regclass,
    trackers      @extschema@.tracker[] DEFAULT NULL,
    fields        text[] DEFAULT NULL,
    exclude       text[] DEFAULT NULL,
    model_name    text DEFAULT NULL,
    obj_field     text DEFAULT 'pgh_obj_id',
    context_field text DEFAULT NULL,
    context_mode  text DEFAULT 'id',
    append_only   boolean DEFAULT false,
    level         text DEFAULT 'auto',
    partition_by  text DEFAULT NULL)
    RETURNS regclass
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Declare the history of a table: create or update its event table, registry rows and triggers.
-- Everything happens in the caller's transaction, so a failure leaves nothing behind.
DECLARE
    v_trackers  @extschema@.tracker[];
    v_tracker   @extschema@.tracker;
    v_name      text[];
    v_operations text;
    v_twins     text[];
    v_table     regclass;
    v_event     @extschema@._event_table;
    v_old       @extschema@._event_table;
    v_owner     regrole := (SELECT c.relowner::regrole FROM pg_class c WHERE c.oid = target);
    v_columns   name[];
    v_column    record;
    v_clash     text;
    v_when      text;
    v_trigger   name;
    v_grantee   regrole;
    v_adopted   boolean := false;
    v_new_columns name[];
BEGIN
    IF target IS NULL THEN
        RAISE EXCEPTION 'pghistory: target table is NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass the table to track, e.g. ''public.orders''.';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = target) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'pghistory: % is not a table', target
            USING ERRCODE = 'wrong_object_type', HINT = 'Only ordinary and partitioned tables can be tracked.';
    END IF;
    PERFORM @extschema@._check_owner(target, 'track');
    PERFORM set_config('pghistory.busy', 'on', true);   -- our own DDL must not re-enter sync()
    PERFORM @extschema@._forget_dropped();

    -- Options
    IF fields IS NOT NULL AND exclude IS NOT NULL THEN
        RAISE EXCEPTION 'pghistory: fields and exclude cannot both be given (tracking %)', target
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use fields => to list the tracked columns, or exclude => to leave some out.';
    END IF;
    IF context_mode IS NULL OR context_mode NOT IN ('id', 'json', 'none') THEN
        RAISE EXCEPTION 'pghistory: unknown context_mode "%"', context_mode
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''id'' (default), ''json'' or ''none''.';
    END IF;
    IF level IS NULL OR level NOT IN ('auto', 'row', 'statement') THEN
        RAISE EXCEPTION 'pghistory: unknown level "%"', level
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''auto'' (default), ''row'' or ''statement''.';
    END IF;
    IF partition_by NOT IN ('day', 'week', 'month') THEN
        RAISE EXCEPTION 'pghistory: unknown partition_by "%"', partition_by
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''day'', ''week'' or ''month'' (or leave it out).';
    END IF;
    IF append_only IS NULL THEN
        RAISE EXCEPTION 'pghistory: append_only must be true or false'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Leave it out for false.';
    END IF;
    PERFORM @extschema@._check_columns(target, fields, 'fields');
    PERFORM @extschema@._check_columns(target, exclude, 'exclude');

    -- Trackers: default insert + update; each one checked again (a ROW() built by hand skips constructors).
    v_trackers := ARRAY(SELECT @extschema@._tracker(t.label, t.operation, t.snapshot, t.timing, t.condition)
                        FROM unnest(CASE WHEN cardinality(trackers) > 0 THEN trackers
                                         ELSE ARRAY[@extschema@.insert_event(), @extschema@.update_event()] END)
                             WITH ORDINALITY AS t(label, operation, snapshot, timing, condition, n)
                        ORDER BY t.n);
    SELECT t.label INTO v_clash FROM unnest(v_trackers) AS t GROUP BY t.label HAVING count(*) > 1 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pghistory: label "%" is given to two trackers of %', v_clash, target
            USING ERRCODE = 'duplicate_object', HINT = 'Labels are unique per tracked table: rename one.';
    END IF;

    -- Event table name, and whether it is ours to (re)use
    v_name := @extschema@._resolve_event_table(target, model_name);
    v_table := to_regclass(format('%I.%I', v_name[1], v_name[2]));
    SELECT * INTO v_old FROM @extschema@._event_table e WHERE e.event_table = v_table;
    -- An unregistered table of the event table's shape, owned by the table's owner, is taken over: the
    -- history of a table tracked before a DROP EXTENSION / CREATE EXTENSION goes on where it was.
    IF v_table IS NOT NULL AND v_old IS NULL
       AND (SELECT c.relowner = v_owner AND c.relkind IN ('r', 'p') FROM pg_class c WHERE c.oid = v_table)
       AND 3 = (SELECT count(*) FROM pg_attribute a
                WHERE a.attrelid = v_table AND NOT a.attisdropped
                  AND (a.attname, a.atttypid) IN (('pgh_id', 'bigint'::regtype), ('pgh_created_at', 'timestamptz'::regtype),
                                                  ('pgh_label', 'text'::regtype)))
       AND NOT EXISTS (SELECT FROM @extschema@._event_table e WHERE e.event_table = v_table) THEN
        v_adopted := true;
    ELSIF v_table IS NOT NULL AND (v_old IS NULL OR v_old.target <> target) THEN
        RAISE EXCEPTION 'pghistory: relation %.% already exists and is not an event table of %',
                        quote_ident(v_name[1]), quote_ident(v_name[2]), target
            USING ERRCODE = 'duplicate_table',
                  HINT = 'Pass model_name => ''...'' to name the event table differently.';
    END IF;
    IF (v_table IS NOT NULL AND (SELECT relkind = 'p' FROM pg_class WHERE oid = v_table) <> (partition_by IS NOT NULL))
       OR (v_old.event_table IS NOT NULL AND v_old.partition_by IS DISTINCT FROM partition_by) THEN
        RAISE EXCEPTION 'pghistory: % is %, and stays so', v_table,
                        CASE WHEN partition_by IS NULL THEN 'partitioned' ELSE 'not partitioned by ' || partition_by END
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Track into a new event table (model_name => ...) to change how history is partitioned.';
    END IF;
    SELECT t.label INTO v_clash FROM @extschema@._tracker t
    WHERE t.target = track.target AND t.event_table IS DISTINCT FROM v_table
      AND t.label IN (SELECT u.label FROM unnest(v_trackers) AS u)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pghistory: label "%" is already used by another event table of %', v_clash, target
            USING ERRCODE = 'duplicate_object',
                  HINT = format('Labels are unique per tracked table; see SELECT * FROM %s.tracking.', '@extschema@');
    END IF;

    -- Tracked columns, in table order
    v_columns := ARRAY(SELECT c.attname FROM @extschema@._columns(target) c
                       WHERE (fields IS NULL OR c.attname = ANY (fields))
                         AND (exclude IS NULL OR c.attname <> ALL (exclude))
                       ORDER BY c.attnum);
    v_event := ROW(NULL, target, v_columns,
                   ARRAY(SELECT c.attnum FROM @extschema@._columns(target) c WHERE c.attname = ANY (v_columns) ORDER BY c.attnum),
                   fields, exclude, NULL, NULL, context_mode,
                   coalesce(context_field, CASE context_mode WHEN 'json' THEN 'pgh_context' ELSE 'pgh_context_id' END),
                   append_only, level, partition_by, NULL, coalesce(v_old.created_at, now()));
    IF context_mode = 'none' THEN
        v_event.context_field := NULL;
    END IF;
    IF obj_field IS NOT NULL THEN
        SELECT a.attname INTO v_event.obj_key
        FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = target AND i.indisprimary AND i.indnatts = 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'pghistory: % has no single-column primary key for obj_field "%"', target, obj_field
                USING ERRCODE = 'invalid_table_definition',
                      HINT = 'Pass obj_field => NULL to record events without an object reference.';
        END IF;
        v_event.obj_field := obj_field;
    END IF;
    SELECT n INTO v_clash
    FROM unnest(ARRAY['pgh_id', 'pgh_created_at', 'pgh_label', v_event.obj_field, v_event.context_field]) AS n
    WHERE n = ANY (v_columns) OR n IN (SELECT m FROM unnest(ARRAY[v_event.obj_field, v_event.context_field]) m
                                       WHERE m IN ('pgh_id', 'pgh_created_at', 'pgh_label'))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pghistory: column "%" of the event table of % would be defined twice', v_clash, target
            USING ERRCODE = 'duplicate_column',
                  HINT = 'Exclude that column, or rename the event column with obj_field => / context_field =>.';
    END IF;

    -- Create the event table, or bring an existing one up to the new configuration (history stays).
    IF v_table IS NULL THEN
        -- Partitioned by time, the primary key must hold the partition key too.
        EXECUTE format('CREATE TABLE %I.%I (pgh_id bigint GENERATED BY DEFAULT AS IDENTITY, '
                       'pgh_created_at timestamptz NOT NULL DEFAULT now(), pgh_label text NOT NULL, '
                       'PRIMARY KEY (pgh_id%s))%s',
                       v_name[1], v_name[2],
                       CASE WHEN partition_by IS NOT NULL THEN ', pgh_created_at' ELSE '' END,
                       CASE WHEN partition_by IS NOT NULL THEN ' PARTITION BY RANGE (pgh_created_at)' ELSE '' END);
        v_table := format('%I.%I', v_name[1], v_name[2])::regclass;
        IF v_owner <> current_user::regrole THEN
            EXECUTE format('ALTER TABLE %s OWNER TO %s', v_table, v_owner);
        END IF;
        -- Only the owner reads history until granted: undo default privileges a schema may hand out.
        EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', v_table);
        FOR v_grantee IN
            SELECT DISTINCT a.grantee::regrole FROM pg_class c, aclexplode(c.relacl) a
            WHERE c.oid = v_table AND a.grantee <> c.relowner AND a.grantee <> 0
        LOOP
            EXECUTE format('REVOKE ALL ON %s FROM %s', v_table, v_grantee);
        END LOOP;
        EXECUTE format('COMMENT ON TABLE %s IS %L', v_table, format('pghistory: events of %s', target));
    ELSIF v_adopted THEN
        -- Triggers still calling the function a previous installation generated for it
        FOR v_trigger IN
            SELECT g.tgname FROM pg_trigger g
            WHERE g.tgrelid = target AND g.tgfoid = to_regprocedure(@extschema@._trigger_function_name(v_table))
        LOOP
            EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, target);
        END LOOP;
    ELSE
        PERFORM @extschema@._drop_triggers(v_table);
    END IF;
    v_event.event_table := v_table;

    v_new_columns := ARRAY(SELECT n FROM unnest(ARRAY[v_event.obj_field, v_event.context_field]) AS n
                           WHERE n IS NOT NULL AND NOT EXISTS (SELECT FROM pg_attribute a
                                                               WHERE a.attrelid = v_table AND a.attname = n AND NOT a.attisdropped));
    FOR v_column IN
        SELECT x.name, x.type_sql
        FROM (SELECT v_event.obj_field AS name,
                     (SELECT c.type_sql FROM @extschema@._columns(target) c WHERE c.attname = v_event.obj_key) AS type_sql,
                     0 AS ord
              UNION ALL
              SELECT v_event.context_field, CASE context_mode WHEN 'json' THEN 'jsonb' ELSE 'uuid' END, 1
              UNION ALL
              SELECT c.attname, c.type_sql, 2 + c.attnum FROM @extschema@._columns(target) c
              WHERE c.attname = ANY (v_columns)) x
        WHERE x.name IS NOT NULL
          AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = v_table AND a.attname = x.name AND NOT a.attisdropped)
        ORDER BY x.ord
    LOOP
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', v_table, v_column.name, v_column.type_sql);
    END LOOP;
    -- Indexes: the object reference, and its text form too where that is not the column itself
    -- (pghistory.events filters on it); the context id only where one is set.
    IF v_event.obj_field = ANY (v_new_columns) THEN
        EXECUTE format('CREATE INDEX %I ON %s (%I)', @extschema@._choose_name(v_name[2] || '_' || v_event.obj_field, '_idx'),
                       v_table, v_event.obj_field);
        IF (SELECT a.atttypid NOT IN ('text'::regtype, 'varchar'::regtype) AND p.provolatile = 'i'
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_proc p ON p.oid = t.typoutput
            WHERE a.attrelid = v_table AND a.attname = v_event.obj_field) THEN
            EXECUTE format('CREATE INDEX %I ON %s ((%I::text))',
                           @extschema@._choose_name(v_name[2] || '_' || v_event.obj_field, '_text_idx'),
                           v_table, v_event.obj_field);
        END IF;
    END IF;
    IF context_mode = 'id' AND v_event.context_field = ANY (v_new_columns) THEN
        EXECUTE format('CREATE INDEX %I ON %s (%I) WHERE %I IS NOT NULL',
                       @extschema@._choose_name(v_name[2] || '_' || v_event.context_field, '_idx'),
                       v_table, v_event.context_field, v_event.context_field);
    END IF;

    -- Append-only guard, enabled ALWAYS so that session_replication_role cannot switch it off.
    FOR v_column IN   -- (the guards of the table, and of its partitions where they are not clones)
        SELECT t.tgname, t.tgrelid::regclass AS relation FROM pg_trigger t
        WHERE (t.tgrelid = v_table OR t.tgrelid IN (SELECT relid FROM pg_partition_tree(v_table))) AND t.tgparentid = 0
          AND t.tgname LIKE 'pghistory\_append\_only%'
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_column.tgname, v_column.relation);
    END LOOP;
    IF append_only THEN
        EXECUTE format('CREATE TRIGGER pghistory_append_only BEFORE UPDATE OR DELETE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION @extschema@._append_only_trigger()', v_table);
        EXECUTE format('CREATE TRIGGER pghistory_append_only_truncate BEFORE TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._append_only_trigger()', v_table);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER pghistory_append_only', v_table);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER pghistory_append_only_truncate', v_table);
        PERFORM @extschema@._guard_partition(p.relid, true) FROM pg_partition_tree(v_table) AS p WHERE p.relid <> v_table;
    END IF;

    IF partition_by IS NOT NULL THEN
        PERFORM @extschema@._add_partitions(v_table, partition_by, append_only);
    END IF;

    -- Registry, then the generated function and one trigger per tracker.
    IF v_old IS NULL OR v_adopted THEN
        INSERT INTO @extschema@._event_table SELECT v_event.*;
    ELSE
        UPDATE @extschema@._event_table e SET (columns, attnums, fields, exclude, obj_field, obj_key, context_mode,
                                              context_field, append_only, level, partition_by)
            = (v_event.columns, v_event.attnums, v_event.fields, v_event.exclude, v_event.obj_field, v_event.obj_key,
               v_event.context_mode, v_event.context_field, v_event.append_only, v_event.level, v_event.partition_by)
        WHERE e.event_table = v_table;
    END IF;
    v_event.trigger_function := @extschema@._create_trigger_function(v_event);
    IF v_owner <> current_user::regrole THEN
        EXECUTE format('ALTER FUNCTION %s OWNER TO %s', v_event.trigger_function, v_owner);
    END IF;
    UPDATE @extschema@._event_table e SET trigger_function = v_event.trigger_function WHERE e.event_table = v_table;

    -- One row trigger per tracker first: CREATE TRIGGER ... WHEN checks each condition against the
    -- table (and says what is wrong). Trackers captured per statement then swap theirs below.
    FOREACH v_tracker IN ARRAY v_trackers LOOP
        v_when := NULL;
        v_trigger := NULL;
        IF v_tracker.operation = 'truncate' THEN
            v_trigger := @extschema@._choose_name('pghistory_' || v_tracker.label, '');
        ELSIF v_tracker.operation <> 'manual' THEN
            -- Update events fire only when a tracked column changed, unless a condition says otherwise.
            v_when := @extschema@._expand_condition(
                target,
                coalesce(v_tracker.condition,
                         CASE WHEN v_tracker.operation = 'update' AND cardinality(v_columns) > 0
                              THEN @extschema@.any_change() END),
                v_columns);
            v_trigger := @extschema@._choose_name('pghistory_' || v_tracker.label, '');
            BEGIN
                EXECUTE format('CREATE TRIGGER %I %s %s ON %s FOR EACH ROW %s EXECUTE FUNCTION %s(%L, %L)',
                               v_trigger, v_tracker.timing,
                               replace(upper(v_tracker.operation), '_', ' '), target,
                               CASE WHEN v_when IS NOT NULL THEN format('WHEN (%s)', v_when) ELSE '' END,
                               v_event.trigger_function::oid::regproc, v_tracker.label, v_tracker.snapshot);
            EXCEPTION WHEN invalid_object_definition OR undefined_column OR undefined_table OR undefined_function
                           OR syntax_error OR datatype_mismatch OR undefined_object OR ambiguous_column THEN
                DECLARE
                    v_state   text;
                    v_message text;
                BEGIN
                    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
                    RAISE EXCEPTION 'pghistory: invalid condition for tracker "%" of %: %', v_tracker.label, target, v_message
                        USING ERRCODE = v_state,
                              DETAIL = format('Condition: %s', v_when),
                              HINT = CASE WHEN v_tracker.operation IN ('insert', 'insert_or_update')
                                          THEN 'A condition over OLD/NEW is a trigger WHEN clause; an insert has no OLD row.'
                                          WHEN v_tracker.operation = 'delete'
                                          THEN 'A condition over OLD/NEW is a trigger WHEN clause; a delete has no NEW row.'
                                          ELSE 'A condition is a trigger WHEN clause over OLD and NEW columns; qualify functions with their schema.' END;
                END;
            END;
        END IF;
        INSERT INTO @extschema@._tracker (target, label, event_table, operation, snapshot, timing, condition,
                                          trigger_when, trigger_name, level)
        VALUES (target, v_tracker.label, v_table, v_tracker.operation, v_tracker.snapshot, v_tracker.timing,
                v_tracker.condition, v_when, v_trigger,
                CASE WHEN v_tracker.operation = 'manual' THEN NULL
                     WHEN v_tracker.operation = 'truncate' THEN 'statement'
                     -- Transition tables exist only for AFTER triggers with one event, and not on
                     -- partitions; on inheritance parents a statement trigger would miss writes to a
                     -- child. A partitioned table has both kinds (see _create_trigger_function).
                     WHEN track.level = 'row' OR v_tracker.timing = 'before' OR v_tracker.operation = 'insert_or_update'
                          OR (SELECT c.relispartition OR (c.relhassubclass AND c.relkind <> 'p') FROM pg_class c WHERE c.oid = target)
                     THEN 'row'
                     ELSE 'statement' END);
    END LOOP;

    -- Generated again now that the trackers are registered: statement-level branches, checks.
    PERFORM @extschema@._create_trigger_function(v_event);
    v_twins := @extschema@._statement_twins(v_table);
    -- Statement-level capture: one INSERT ... SELECT per statement instead of one per row.
    IF EXISTS (SELECT FROM @extschema@._tracker t WHERE t.event_table = v_table AND t.level = 'statement') THEN
        FOR v_tracker IN
            SELECT t.label, t.operation, NULL, NULL, NULL FROM @extschema@._tracker t
            WHERE t.event_table = v_table AND t.level = 'statement'
        LOOP
            v_trigger := @extschema@._choose_name('pghistory_' || v_tracker.label, '');
            IF v_tracker.operation = 'truncate' THEN
                EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%L)',
                               v_trigger, target, v_event.trigger_function::oid::regproc, v_tracker.label);
                CONTINUE;
            END IF;
            IF v_tracker.label = ANY (v_twins) THEN
                v_trigger := @extschema@._choose_name('pghistory_' || v_tracker.label, '_parent');
            ELSE
                EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, target);
            END IF;
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%L)',
                           v_trigger, upper(v_tracker.operation), target,
                           CASE v_tracker.operation WHEN 'insert' THEN 'NEW TABLE AS pgh_new'
                                                    WHEN 'delete' THEN 'OLD TABLE AS pgh_old'
                                                    ELSE 'OLD TABLE AS pgh_old NEW TABLE AS pgh_new' END,
                           v_event.trigger_function::oid::regproc, v_tracker.label);
        END LOOP;
    END IF;
    -- Statement begin (and end) triggers: to check the table first where no event trigger follows
    -- its schema changes, and on a partitioned table to mark statements through it.
    SELECT string_agg(DISTINCT upper(o.operation), ' OR ') INTO v_operations
    FROM @extschema@._tracker t, string_to_table(t.operation, '_or_') AS o(operation)
    WHERE t.event_table = v_table AND t.operation NOT IN ('manual', 'truncate')
      AND (t.label = ANY (v_twins) OR @extschema@._statement_check_needed(v_event));
    IF v_operations IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER %I BEFORE %s ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                       @extschema@._choose_name('pghistory_' || v_name[2], '_begin'), v_operations, target,
                       v_event.trigger_function::oid::regproc);
    END IF;
    SELECT string_agg(DISTINCT upper(t.operation), ' OR ') INTO v_operations
    FROM @extschema@._tracker t WHERE t.event_table = v_table AND t.label = ANY (v_twins);
    IF v_operations IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                       @extschema@._choose_name('pghistory_' || v_name[2], '_end'), v_operations, target,
                       v_event.trigger_function::oid::regproc);
    END IF;
    PERFORM set_config('pghistory.busy', '', true);
    RETURN v_table;
END
$function$;
COMMENT ON FUNCTION @extschema@.track(regclass, @extschema@.tracker[], text[], text[], text, text, text, text, boolean, text, text) IS
    'Record the history of a table: creates or updates its event table and triggers; returns the event table';


-- track(target, tracker1, ..., trackerN, options...): the trailing-trackers call form, for N = 1..8.
DO $do$
DECLARE
    v_n int;
BEGIN
    FOR v_n IN 1..8 LOOP
        EXECUTE format($sql$
CREATE FUNCTION @extschema@.track(
    target regclass, %1$s,
    fields text[] DEFAULT NULL, exclude text[] DEFAULT NULL, model_name text DEFAULT NULL,
    obj_field text DEFAULT 'pgh_obj_id', context_field text DEFAULT NULL, context_mode text DEFAULT 'id',
    append_only boolean DEFAULT false, level text DEFAULT 'auto', partition_by text DEFAULT NULL)
    RETURNS regclass
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
    RETURN @extschema@.track(target, ARRAY[%2$s], fields, exclude, model_name, obj_field, context_field,
                             context_mode, append_only, level, partition_by)$sql$,
            (SELECT string_agg(format('tracker%s @extschema@.tracker', i), ', ') FROM generate_series(1, v_n) i),
            (SELECT string_agg(format('tracker%s', i), ', ') FROM generate_series(1, v_n) i));
    END LOOP;
END
$do$;


CREATE FUNCTION @extschema@.untrack(target regclass, model_name text DEFAULT NULL, drop_events boolean DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Stop recording (one event table, or all of the table); the history stays unless drop_events.
DECLARE
    v_name  text[];
    v_named regclass;
    v_table regclass;
    v_count int := 0;
BEGIN
    PERFORM @extschema@._check_owner(target, 'untrack');
    PERFORM set_config('pghistory.busy', 'on', true);
    PERFORM @extschema@._forget_dropped();
    IF model_name IS NOT NULL THEN
        v_name := @extschema@._resolve_event_table(target, model_name);
        v_named := to_regclass(format('%I.%I', v_name[1], v_name[2]));
    END IF;
    FOR v_table IN
        SELECT e.event_table FROM @extschema@._event_table e
        WHERE e.target = untrack.target AND (model_name IS NULL OR e.event_table = v_named)
    LOOP
        v_count := v_count + 1;
        PERFORM @extschema@._drop_triggers(v_table);
        IF drop_events THEN
            DELETE FROM @extschema@._event_table WHERE event_table = v_table;   -- the view lets go of it
            EXECUTE format('DROP TABLE %s', v_table);
        END IF;
    END LOOP;
    IF v_count = 0 THEN
        RAISE EXCEPTION 'pghistory: % has no event table%', target,
                        CASE WHEN model_name IS NOT NULL THEN format(' named "%s"', model_name) ELSE '' END
            USING ERRCODE = 'undefined_object',
                  HINT = format('Event tables of %s: %s.', target,
                                coalesce((SELECT string_agg(e.event_table::text, ', ') FROM @extschema@._event_table e
                                          WHERE e.target = untrack.target), 'none'));
    END IF;
    PERFORM set_config('pghistory.busy', '', true);
END
$function$;
COMMENT ON FUNCTION @extschema@.untrack(regclass, text, boolean) IS
    'Stop recording the history of a table (one event table or all); drop_events also drops the history';
