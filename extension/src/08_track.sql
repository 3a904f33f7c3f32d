--------------------------------------------------------------------------------------------------
-- track / untrack
--------------------------------------------------------------------------------------------------

-- track() runs these phases in order (see track() below); each is a function of its own.

CREATE FUNCTION @extschema@._check_track_options(p_target regclass, p_fields text[], p_exclude text[],
        p_context_mode text, p_level text, p_partition_by text, p_append_only boolean)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Options of track(): each bad value named, with what to use instead.
BEGIN
    IF p_fields IS NOT NULL AND p_exclude IS NOT NULL THEN
        RAISE EXCEPTION 'pghistory: fields and exclude cannot both be given (tracking %)', p_target
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use fields => to list the tracked columns, or exclude => to leave some out.';
    END IF;
    IF p_context_mode IS NULL OR p_context_mode NOT IN ('id', 'json', 'none') THEN
        RAISE EXCEPTION 'pghistory: unknown context_mode "%"', p_context_mode
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''id'' (default), ''json'' or ''none''.';
    END IF;
    IF p_level IS NULL OR p_level NOT IN ('auto', 'row', 'statement') THEN
        RAISE EXCEPTION 'pghistory: unknown level "%"', p_level
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''auto'' (default), ''row'' or ''statement''.';
    END IF;
    IF p_partition_by NOT IN ('day', 'week', 'month') THEN
        RAISE EXCEPTION 'pghistory: unknown partition_by "%"', p_partition_by
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''day'', ''week'' or ''month'' (or leave it out).';
    END IF;
    IF p_append_only IS NULL THEN
        RAISE EXCEPTION 'pghistory: append_only must be true or false'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Leave it out for false.';
    END IF;
    PERFORM @extschema@._check_columns(p_target, p_fields, 'fields');
    PERFORM @extschema@._check_columns(p_target, p_exclude, 'exclude');
END
$function$;


CREATE FUNCTION @extschema@._checked_trackers(p_target regclass, p_trackers @extschema@.tracker[])
    RETURNS @extschema@.tracker[]
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- The trackers to record: by default insert + update; each one checked again (a ROW() built by hand
-- skips the constructors), labels unique.
DECLARE
    v_trackers @extschema@.tracker[];
    v_clash    text;
BEGIN
    v_trackers := ARRAY(SELECT @extschema@._tracker(t.label, t.operation, t.snapshot, t.timing, t.condition)
                        FROM unnest(CASE WHEN cardinality(p_trackers) > 0 THEN p_trackers
                                         ELSE ARRAY[@extschema@.insert_event(), @extschema@.update_event()] END)
                             WITH ORDINALITY AS t(label, operation, snapshot, timing, condition, n)
                        ORDER BY t.n);
    SELECT t.label INTO v_clash FROM unnest(v_trackers) AS t GROUP BY t.label HAVING count(*) > 1 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pghistory: label "%" is given to two trackers of %', v_clash, p_target
            USING ERRCODE = 'duplicate_object', HINT = 'Labels are unique per tracked table: rename one.';
    END IF;
    RETURN v_trackers;
END
$function$;


CREATE FUNCTION @extschema@._claim_event_table(p_target regclass, p_model_name text, p_partition_by text,
        p_trackers @extschema@.tracker[],
        OUT event_name text[], OUT existing regclass, OUT registered boolean, OUT adopted boolean,
        OUT registered_at timestamptz)
    RETURNS record
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- The event table's {schema, name}, the table if it exists already, and whether it is ours to
-- (re)use: registered for this table, or adopted (see below). Refuses anything else.
DECLARE
    v_old   @extschema@._event_table;
    v_owner regrole := (SELECT c.relowner::regrole FROM pg_class c WHERE c.oid = p_target);
    v_clash text;
BEGIN
    event_name := @extschema@._resolve_event_table(p_target, p_model_name);
    existing := to_regclass(format('%I.%I', event_name[1], event_name[2]));
    SELECT * INTO v_old FROM @extschema@._event_table e WHERE e.event_table = existing;
    registered := v_old.event_table IS NOT NULL;
    registered_at := v_old.created_at;
    -- An unregistered table of the event table's shape, owned by the table's owner, is taken over: the
    -- history of a table tracked before a DROP EXTENSION / CREATE EXTENSION goes on where it was.
    adopted := existing IS NOT NULL AND NOT registered
       AND (SELECT c.relowner = v_owner AND c.relkind IN ('r', 'p') FROM pg_class c WHERE c.oid = existing)
       AND 3 = (SELECT count(*) FROM pg_attribute a
                WHERE a.attrelid = existing AND NOT a.attisdropped
                  AND (a.attname, a.atttypid) IN (('pgh_id', 'bigint'::regtype), ('pgh_created_at', 'timestamptz'::regtype),
                                                  ('pgh_label', 'text'::regtype)));
    IF existing IS NOT NULL AND NOT adopted AND (NOT registered OR v_old.target <> p_target) THEN
        RAISE EXCEPTION 'pghistory: relation %.% already exists and is not an event table of %',
                        quote_ident(event_name[1]), quote_ident(event_name[2]), p_target
            USING ERRCODE = 'duplicate_table',
                  HINT = 'Pass model_name => ''...'' to name the event table differently.';
    END IF;
    IF (existing IS NOT NULL AND (SELECT relkind = 'p' FROM pg_class WHERE oid = existing) <> (p_partition_by IS NOT NULL))
       OR (registered AND v_old.partition_by IS DISTINCT FROM p_partition_by) THEN
        RAISE EXCEPTION 'pghistory: % is %, and stays so', existing,
                        CASE WHEN p_partition_by IS NULL THEN 'partitioned' ELSE 'not partitioned by ' || p_partition_by END
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Track into a new event table (model_name => ...) to change how history is partitioned.';
    END IF;
    SELECT t.label INTO v_clash FROM @extschema@._tracker t
    WHERE t.target = p_target AND t.event_table IS DISTINCT FROM existing
      AND t.label IN (SELECT u.label FROM unnest(p_trackers) AS u)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pghistory: label "%" is already used by another event table of %', v_clash, p_target
            USING ERRCODE = 'duplicate_object',
                  HINT = format('Labels are unique per tracked table; see SELECT * FROM %s.tracking.', '@extschema@');
    END IF;
END
$function$;


CREATE FUNCTION @extschema@._event_row(p_target regclass, p_fields text[], p_exclude text[], p_obj_field text,
        p_context_field text, p_context_mode text, p_append_only boolean, p_level text, p_partition_by text,
        p_created_at timestamptz)
    RETURNS @extschema@._event_table
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- The registry row of an event table, but for its name and generated function: which columns it
-- records (in table order), the object reference and the context column.
DECLARE
    v_event @extschema@._event_table;
    v_clash text;
BEGIN
    v_event.target := p_target;
    v_event.columns := ARRAY(SELECT c.attname FROM @extschema@._columns(p_target) c
                             WHERE (p_fields IS NULL OR c.attname = ANY (p_fields))
                               AND (p_exclude IS NULL OR c.attname <> ALL (p_exclude))
                             ORDER BY c.attnum);
    v_event.attnums := ARRAY(SELECT c.attnum FROM @extschema@._columns(p_target) c
                             WHERE c.attname = ANY (v_event.columns) ORDER BY c.attnum);
    v_event.fields := p_fields;
    v_event.exclude := p_exclude;
    v_event.context_mode := p_context_mode;
    IF p_context_mode <> 'none' THEN
        v_event.context_field := coalesce(p_context_field, CASE p_context_mode WHEN 'json' THEN 'pgh_context' ELSE 'pgh_context_id' END);
    END IF;
    v_event.append_only := p_append_only;
    v_event.level := p_level;
    v_event.partition_by := p_partition_by;
    v_event.created_at := coalesce(p_created_at, now());
    IF p_obj_field IS NOT NULL THEN
        SELECT a.attname INTO v_event.obj_key
        FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = p_target AND i.indisprimary AND i.indnatts = 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'pghistory: % has no single-column primary key for obj_field "%"', p_target, p_obj_field
                USING ERRCODE = 'invalid_table_definition',
                      HINT = 'Pass obj_field => NULL to record events without an object reference.';
        END IF;
        v_event.obj_field := p_obj_field;
    END IF;
    SELECT n INTO v_clash
    FROM unnest(ARRAY['pgh_id', 'pgh_created_at', 'pgh_label', v_event.obj_field, v_event.context_field]) AS n
    WHERE n = ANY (v_event.columns) OR n IN (SELECT m FROM unnest(ARRAY[v_event.obj_field, v_event.context_field]) m
                                             WHERE m IN ('pgh_id', 'pgh_created_at', 'pgh_label'))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pghistory: column "%" of the event table of % would be defined twice', v_clash, p_target
            USING ERRCODE = 'duplicate_column',
                  HINT = 'Exclude that column, or rename the event column with obj_field => / context_field =>.';
    END IF;
    RETURN v_event;
END
$function$;


CREATE FUNCTION @extschema@._prepare_event_table(p_event @extschema@._event_table, p_name text[], p_existing regclass,
                                                 p_adopted boolean)
    RETURNS regclass
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Create the event table, or bring an existing one up to the new configuration (history stays):
-- its columns, its indexes, and none of the triggers that recorded into it until now.
DECLARE
    v_table   regclass := p_existing;
    v_owner   regrole := (SELECT c.relowner::regrole FROM pg_class c WHERE c.oid = p_event.target);
    v_grantee regrole;
    v_trigger name;
    v_column  record;
    v_new_columns name[];
    v_index   regclass;
BEGIN
    IF v_table IS NULL THEN
        -- Partitioned by time, the primary key must hold the partition key too.
        EXECUTE format('CREATE TABLE %I.%I (pgh_id bigint GENERATED BY DEFAULT AS IDENTITY, '
                       'pgh_created_at timestamptz NOT NULL DEFAULT now(), pgh_label text NOT NULL, '
                       'PRIMARY KEY (pgh_id%s))%s',
                       p_name[1], p_name[2],
                       CASE WHEN p_event.partition_by IS NOT NULL THEN ', pgh_created_at' ELSE '' END,
                       CASE WHEN p_event.partition_by IS NOT NULL THEN ' PARTITION BY RANGE (pgh_created_at)' ELSE '' END);
        v_table := format('%I.%I', p_name[1], p_name[2])::regclass;
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
        EXECUTE format('COMMENT ON TABLE %s IS %L', v_table, format('pghistory: events of %s', p_event.target));
    ELSIF NOT p_adopted THEN
        PERFORM @extschema@._drop_triggers(v_table);
    END IF;
    IF p_existing IS NULL OR p_adopted THEN
        -- Triggers still calling the function a previous installation generated for it (DROP
        -- EXTENSION keeps them recording; their event table may have been dropped since)
        FOR v_trigger IN
            SELECT g.tgname FROM pg_trigger g
            WHERE g.tgrelid = p_event.target AND g.tgfoid = to_regprocedure(@extschema@._trigger_function_name(v_table))
        LOOP
            EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, p_event.target);
        END LOOP;
    END IF;

    v_new_columns := ARRAY(SELECT n FROM unnest(ARRAY[p_event.obj_field, p_event.context_field]) AS n
                           WHERE n IS NOT NULL AND NOT EXISTS (SELECT FROM pg_attribute a
                                                               WHERE a.attrelid = v_table AND a.attname = n AND NOT a.attisdropped));
    FOR v_column IN
        SELECT x.name, x.type_sql
        FROM (SELECT p_event.obj_field AS name,
                     (SELECT c.type_sql FROM @extschema@._columns(p_event.target) c WHERE c.attname = p_event.obj_key) AS type_sql,
                     0 AS ord
              UNION ALL
              SELECT p_event.context_field, CASE p_event.context_mode WHEN 'json' THEN 'jsonb' ELSE 'uuid' END, 1
              UNION ALL
              SELECT c.attname, c.type_sql, 2 + c.attnum FROM @extschema@._columns(p_event.target) c
              WHERE c.attname = ANY (p_event.columns)) x
        WHERE x.name IS NOT NULL
          AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = v_table AND a.attname = x.name AND NOT a.attisdropped)
        ORDER BY x.ord
    LOOP
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', v_table, v_column.name, v_column.type_sql);
    END LOOP;
    -- Indexes: the object reference once, in the form pghistory.events filters on (its text form,
    -- where that is not the column itself; a second index on the column would be a sixth of every
    -- event's bytes, bench/README.md); the context id only where one is set.
    IF p_event.obj_field = ANY (v_new_columns) THEN
        IF (SELECT a.atttypid NOT IN ('text'::regtype, 'varchar'::regtype) AND p.provolatile = 'i'
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_proc p ON p.oid = t.typoutput
            WHERE a.attrelid = v_table AND a.attname = p_event.obj_field) THEN
            EXECUTE format('CREATE INDEX %I ON %s ((%I::text))',
                           @extschema@._choose_name(p_name[2] || '_' || p_event.obj_field, '_text_idx'),
                           v_table, p_event.obj_field);
        ELSE
            EXECUTE format('CREATE INDEX %I ON %s (%I)', @extschema@._choose_name(p_name[2] || '_' || p_event.obj_field, '_idx'),
                           v_table, p_event.obj_field);
        END IF;
    END IF;
    -- pghistory 1.0 and 1.1 indexed the object reference twice, as itself and in its text form: the
    -- first of the two, as they named and made it, goes (sync() brings their event tables to 1.2).
    IF NOT p_event.obj_field = ANY (v_new_columns) THEN
        SELECT i.indexrelid::regclass INTO v_index
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_attribute a ON a.attrelid = i.indrelid
        WHERE i.indrelid = v_table AND i.indnatts = 1 AND NOT i.indisunique AND i.indexprs IS NULL
          AND i.indpred IS NULL AND a.attnum = i.indkey[0] AND a.attname = p_event.obj_field
          AND c.relname = @extschema@._choose_name(p_name[2] || '_' || p_event.obj_field, '_idx')
          AND EXISTS (SELECT FROM pg_index t JOIN pg_class tc ON tc.oid = t.indexrelid
                      WHERE t.indrelid = v_table AND t.indexprs IS NOT NULL
                        AND tc.relname = @extschema@._choose_name(p_name[2] || '_' || p_event.obj_field, '_text_idx'));
        IF v_index IS NOT NULL THEN
            EXECUTE format('DROP INDEX %s', v_index);
        END IF;
    END IF;
    IF p_event.context_mode = 'id' AND p_event.context_field = ANY (v_new_columns) THEN
        EXECUTE format('CREATE INDEX %I ON %s (%I) WHERE %I IS NOT NULL',
                       @extschema@._choose_name(p_name[2] || '_' || p_event.context_field, '_idx'),
                       v_table, p_event.context_field, p_event.context_field);
    END IF;
    RETURN v_table;
END
$function$;


CREATE FUNCTION @extschema@._guard_event_table(p_event_table regclass, p_append_only boolean)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Append-only guard, enabled ALWAYS so that session_replication_role cannot switch it off; dropped
-- (with those of partitions that are not clones) when the history is no longer append-only.
DECLARE
    v_trigger record;
BEGIN
    FOR v_trigger IN
        SELECT t.tgname, t.tgrelid::regclass AS relation FROM pg_trigger t
        WHERE (t.tgrelid = p_event_table OR t.tgrelid IN (SELECT relid FROM pg_partition_tree(p_event_table)))
          AND t.tgparentid = 0 AND t.tgname LIKE 'pghistory\_append\_only%'
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_trigger.tgname, v_trigger.relation);
    END LOOP;
    IF p_append_only THEN
        EXECUTE format('CREATE TRIGGER pghistory_append_only BEFORE UPDATE OR DELETE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION @extschema@._append_only_trigger()', p_event_table);
        EXECUTE format('CREATE TRIGGER pghistory_append_only_truncate BEFORE TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._append_only_trigger()', p_event_table);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER pghistory_append_only', p_event_table);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER pghistory_append_only_truncate', p_event_table);
        PERFORM @extschema@._guard_partition(p.relid, true) FROM pg_partition_tree(p_event_table) AS p WHERE p.relid <> p_event_table;
    END IF;
END
$function$;


CREATE FUNCTION @extschema@._capture_level(p_target regclass, p_level text, p_operation text, p_timing text,
                                           p_whole_row boolean)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- How a tracker is captured, row or statement level: the one place where it is decided.
    -- Per statement (one INSERT ... SELECT over the transition tables) unless level => 'row' asks
    -- otherwise or PostgreSQL forbids it: transition tables exist only for AFTER triggers with one
    -- event, and not on partitions; on inheritance parents a statement trigger would miss writes to
    -- a child. A partitioned table gets row triggers too (see 06_codegen.sql). NULL for manual.
    SELECT CASE WHEN p_operation = 'manual' THEN NULL
                WHEN p_operation = 'truncate' THEN 'statement'
                WHEN p_level = 'row' OR p_timing = 'before' OR p_operation = 'insert_or_update'
                     OR (SELECT c.relispartition OR (c.relhassubclass AND c.relkind <> 'p') FROM pg_class c WHERE c.oid = p_target)
                THEN 'row'
                -- auto, an update compared as a whole row (p_whole_row): per row, as an ORM writes. Its WHEN
                -- clause skips a row that did not change before any function runs, and a one-row statement
                -- pays for no transition tables (bench/README.md; a bulk UPDATE is cheaper per statement:
                -- level => 'statement'). Not where the WHEN clause would name columns (PostgreSQL then
                -- refuses ALTER COLUMN ... TYPE), nor on a partitioned table, whose statement triggers
                -- record a row moving between partitions as one update.
                WHEN p_level = 'auto' AND p_operation = 'update' AND p_whole_row
                     AND (SELECT c.relkind <> 'p' FROM pg_class c WHERE c.oid = p_target)
                THEN 'row'
                ELSE 'statement' END
$function$;


CREATE FUNCTION @extschema@._register_trackers(p_event @extschema@._event_table, p_trackers @extschema@.tracker[],
                                               p_level text)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- One registry row per tracker: its condition expanded and checked, its trigger's name, its level.
DECLARE
    v_tracker   @extschema@.tracker;
    v_when      text;
    -- Every update tracker compares whole rows: the default condition over every column, all
    -- comparable (_expand_condition). Then they may all go per row; else none does, so that the
    -- events of one statement keep their order.
    v_whole_row boolean := p_event.fields IS NULL AND p_event.exclude IS NULL
        AND NOT EXISTS (SELECT FROM unnest(p_trackers) AS t WHERE t.operation = 'update' AND t.condition IS NOT NULL)
        AND (SELECT bool_and(@extschema@._has_equality(c.atttypid)) FROM @extschema@._columns(p_event.target) c);
BEGIN
    FOREACH v_tracker IN ARRAY p_trackers LOOP
        v_when := NULL;
        IF v_tracker.operation NOT IN ('manual', 'truncate') THEN
            -- Update events fire only when a tracked column changed, unless a condition says otherwise.
            v_when := @extschema@._expand_condition(
                p_event.target,
                coalesce(v_tracker.condition,
                         CASE WHEN v_tracker.operation = 'update' AND cardinality(p_event.columns) > 0
                              THEN @extschema@.any_change() END),
                p_event.columns);
            IF v_when IS NOT NULL THEN
                PERFORM @extschema@._with_condition(p_event.target, v_tracker.label, v_tracker.operation, v_when,
                    format('SELECT @extschema@._check_condition(%L, %L, %L)', p_event.target, v_tracker.operation, v_when));
            END IF;
        END IF;
        INSERT INTO @extschema@._tracker (target, label, event_table, operation, snapshot, timing, condition,
                                          trigger_when, trigger_name, level)
        VALUES (p_event.target, v_tracker.label, p_event.event_table, v_tracker.operation, v_tracker.snapshot,
                v_tracker.timing, v_tracker.condition, v_when,
                CASE WHEN v_tracker.operation <> 'manual' THEN @extschema@._choose_name('pghistory_' || v_tracker.label, '') END,
                @extschema@._capture_level(p_event.target, p_level, v_tracker.operation, v_tracker.timing, v_whole_row));
    END LOOP;
END
$function$;


CREATE FUNCTION @extschema@._create_triggers(p_event @extschema@._event_table)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- The triggers calling the generated function, as the registry says: per row (the condition as
-- WHEN) or per statement (over transition tables), both on a partitioned table; then the triggers
-- without arguments that mark where a statement begins and ends.
DECLARE
    v_tracker    @extschema@._tracker;
    v_function   regproc := p_event.trigger_function::oid::regproc;
    v_twins      text[] := @extschema@._statement_twins(p_event.event_table);
    v_name       name := (SELECT c.relname FROM pg_class c WHERE c.oid = p_event.event_table);
    v_operations text;
BEGIN
    FOR v_tracker IN
        SELECT * FROM @extschema@._tracker t WHERE t.event_table = p_event.event_table AND t.operation <> 'manual'
        ORDER BY t.label
    LOOP
        IF v_tracker.operation = 'truncate' THEN
            EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%L)',
                           v_tracker.trigger_name, p_event.target, v_function, v_tracker.label);
        ELSIF v_tracker.level = 'statement' THEN
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%L)',
                           CASE WHEN v_tracker.label = ANY (v_twins)
                                THEN @extschema@._choose_name('pghistory_' || v_tracker.label, '_parent')
                                ELSE v_tracker.trigger_name END,
                           upper(v_tracker.operation), p_event.target,
                           CASE v_tracker.operation WHEN 'insert' THEN 'NEW TABLE AS pgh_new'
                                                    WHEN 'delete' THEN 'OLD TABLE AS pgh_old'
                                                    ELSE 'OLD TABLE AS pgh_old NEW TABLE AS pgh_new' END,
                           v_function, v_tracker.label);
        END IF;
        IF v_tracker.level = 'row' OR v_tracker.label = ANY (v_twins) THEN
            PERFORM @extschema@._with_condition(p_event.target, v_tracker.label, v_tracker.operation, v_tracker.trigger_when,
                format('CREATE TRIGGER %I %s %s ON %s FOR EACH ROW %s EXECUTE FUNCTION %s(%L, %L)',
                       v_tracker.trigger_name, v_tracker.timing, replace(upper(v_tracker.operation), '_', ' '),
                       p_event.target,
                       CASE WHEN v_tracker.trigger_when IS NOT NULL THEN format('WHEN (%s)', v_tracker.trigger_when) ELSE '' END,
                       v_function, v_tracker.label, v_tracker.snapshot));
        END IF;
    END LOOP;
    -- Statement begin (and end) triggers: to check the table first where no event trigger follows
    -- its schema changes, and on a partitioned table to mark statements through it.
    SELECT string_agg(DISTINCT upper(o.operation), ' OR ') INTO v_operations
    FROM @extschema@._tracker t, string_to_table(t.operation, '_or_') AS o(operation)
    WHERE t.event_table = p_event.event_table AND t.operation NOT IN ('manual', 'truncate')
      AND (t.label = ANY (v_twins) OR @extschema@._statement_check_needed(p_event));
    IF v_operations IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER %I BEFORE %s ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                       @extschema@._choose_name('pghistory_' || v_name, '_begin'), v_operations, p_event.target, v_function);
    END IF;
    SELECT string_agg(DISTINCT upper(t.operation), ' OR ') INTO v_operations
    FROM @extschema@._tracker t WHERE t.event_table = p_event.event_table AND t.label = ANY (v_twins);
    IF v_operations IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                       @extschema@._choose_name('pghistory_' || v_name, '_end'), v_operations, p_event.target, v_function);
    END IF;
END
$function$;


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
    v_trackers @extschema@.tracker[];
    v_claim    record;
    v_event    @extschema@._event_table;
    v_owner    regrole := (SELECT c.relowner::regrole FROM pg_class c WHERE c.oid = target);
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

    -- Check everything asked for, and decide where the history goes.
    PERFORM @extschema@._check_track_options(target, fields, exclude, context_mode, level, partition_by, append_only);
    v_trackers := @extschema@._checked_trackers(target, trackers);
    v_claim := @extschema@._claim_event_table(target, model_name, partition_by, v_trackers);
    v_event := @extschema@._event_row(target, fields, exclude, obj_field, context_field, context_mode,
                                      append_only, level, partition_by, v_claim.registered_at);

    -- The event table (new, or brought up to date with its history kept), its guard and partitions.
    v_event.event_table := @extschema@._prepare_event_table(v_event, v_claim.event_name, v_claim.existing, v_claim.adopted);
    PERFORM @extschema@._guard_event_table(v_event.event_table, append_only);
    IF partition_by IS NOT NULL THEN
        PERFORM @extschema@._add_partitions(v_event.event_table, partition_by, append_only);
    END IF;

    -- The registry, from which the code and the triggers are made.
    IF NOT v_claim.registered OR v_claim.adopted THEN
        INSERT INTO @extschema@._event_table SELECT v_event.*;
    ELSE
        UPDATE @extschema@._event_table e SET (columns, attnums, fields, exclude, obj_field, obj_key, context_mode,
                                              context_field, append_only, level, partition_by)
            = (v_event.columns, v_event.attnums, v_event.fields, v_event.exclude, v_event.obj_field, v_event.obj_key,
               v_event.context_mode, v_event.context_field, v_event.append_only, v_event.level, v_event.partition_by)
        WHERE e.event_table = v_event.event_table;
    END IF;
    PERFORM @extschema@._register_trackers(v_event, v_trackers, level);

    -- The trigger function, generated once, and the triggers that call it.
    v_event.trigger_function := @extschema@._create_trigger_function(v_event);
    IF v_owner <> current_user::regrole THEN
        EXECUTE format('ALTER FUNCTION %s OWNER TO %s', v_event.trigger_function, v_owner);
    END IF;
    UPDATE @extschema@._event_table e
    SET (trigger_function, generated_by, generated_for)
        = (v_event.trigger_function, @extschema@.version(), ARRAY[track.target::text, v_event.event_table::text])
    WHERE e.event_table = v_event.event_table;
    PERFORM @extschema@._create_triggers(v_event);
    PERFORM set_config('pghistory.busy', '', true);
    RETURN v_event.event_table;
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
