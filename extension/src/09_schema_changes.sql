--------------------------------------------------------------------------------------------------
-- Schema changes: sync, verify
--------------------------------------------------------------------------------------------------


CREATE FUNCTION @extschema@._column_map(p_event @extschema@._event_table)
    RETURNS TABLE (name name, current_name name, type_sql text, history_type text)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- Where each tracked column is now: found by name (attribute numbers change in a dump and
    -- restore), else by its attribute number (a rename). current_name is NULL once it was dropped.
    SELECT u.name, coalesce(by_name.attname, by_num.attname),
           format_type(coalesce(by_name.atttypid, by_num.atttypid), coalesce(by_name.atttypmod, by_num.atttypmod)),
           (SELECT format_type(h.atttypid, h.atttypmod) FROM pg_attribute h
            WHERE h.attrelid = p_event.event_table AND h.attname = u.name AND NOT h.attisdropped)
    FROM unnest(p_event.columns, p_event.attnums) AS u(name, num)
    LEFT JOIN pg_attribute by_name ON by_name.attrelid = p_event.target AND by_name.attname = u.name
                                  AND by_name.attnum > 0 AND NOT by_name.attisdropped
    LEFT JOIN pg_attribute by_num ON by_name.attnum IS NULL AND by_num.attrelid = p_event.target
                                 AND by_num.attnum = u.num AND NOT by_num.attisdropped
                                 AND by_num.attname <> ALL (p_event.columns)
$function$;


CREATE FUNCTION @extschema@._rename_in_condition(p_condition text, p_old name, p_new name)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- Follow a column rename in a stored condition: OLD.col / NEW.col references, and the column
    -- lists of any_change()-style placeholders (JSON strings, which also match NEW."Quoted Name").
    SELECT replace(
        regexp_replace(p_condition,
                       '((?:OLD|NEW)\.)' || regexp_replace(quote_ident(p_old), '([.^$*+?()\[\]{}|\\])', '\\\1', 'g')
                           || '(?![[:alnum:]_$"])',
                       '\1' || replace(quote_ident(p_new), '\', '\\'), 'gi'),
        to_jsonb(p_old::text)::text, to_jsonb(p_new::text)::text)
$function$;


CREATE FUNCTION @extschema@.sync(target regclass DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Bring event tables and triggers in step with schema changes of the tracked tables: a renamed column
-- is renamed in the history, an added one is added (when every column is tracked), a dropped one
-- stays for past events, a changed type is changed where the old values cast. Where the extension was
-- created by a superuser, an event trigger runs this after every ALTER TABLE.
DECLARE
    v_event   @extschema@._event_table;
    v_column  record;
    v_fields  name[];
    v_exclude name[];
BEGIN
    IF target IS NOT NULL THEN
        PERFORM @extschema@._check_owner(target, 'sync');
        IF NOT EXISTS (SELECT FROM @extschema@._event_table e WHERE e.target = sync.target) THEN
            RAISE EXCEPTION 'pghistory: % is not tracked', target
                USING ERRCODE = 'undefined_object', HINT = 'See SELECT * FROM pghistory.tracking.';
        END IF;
    END IF;
    PERFORM @extschema@._forget_dropped();
    FOR v_event IN
        SELECT e.* FROM @extschema@._event_table e JOIN pg_class c ON c.oid = e.target
        WHERE (sync.target IS NULL OR e.target = sync.target) AND e.trigger_function IS NOT NULL
          AND pg_has_role(current_user, c.relowner, 'USAGE')
        ORDER BY e.event_table::text
    LOOP
        PERFORM set_config('pghistory.busy', 'on', true);
        v_fields := v_event.fields;
        v_exclude := v_event.exclude;
        FOR v_column IN
            SELECT m.name AS old_name, m.current_name AS new_name, m.current_name IS NULL AS dropped,
                   m.type_sql, m.history_type
            FROM @extschema@._column_map(v_event) m
        LOOP
            IF v_column.dropped THEN
                -- The history column stays for past events; the table no longer has it.
                v_fields := array_remove(v_fields, v_column.old_name);
                v_exclude := array_remove(v_exclude, v_column.old_name);
                CONTINUE;
            END IF;
            IF v_column.new_name <> v_column.old_name THEN
                EXECUTE format('ALTER TABLE %s RENAME COLUMN %I TO %I', v_event.event_table, v_column.old_name, v_column.new_name);
                v_fields := array_replace(v_fields, v_column.old_name, v_column.new_name);
                v_exclude := array_replace(v_exclude, v_column.old_name, v_column.new_name);
                UPDATE @extschema@._tracker t
                SET condition = @extschema@._rename_in_condition(t.condition, v_column.old_name, v_column.new_name)
                WHERE t.event_table = v_event.event_table AND t.condition IS NOT NULL;
            END IF;
            IF v_column.history_type IS DISTINCT FROM v_column.type_sql THEN
                BEGIN
                    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I TYPE %s USING %I::%s', v_event.event_table,
                                   v_column.new_name, v_column.type_sql, v_column.new_name, v_column.type_sql);
                EXCEPTION WHEN cannot_coerce OR datatype_mismatch OR invalid_text_representation
                               OR numeric_value_out_of_range OR string_data_right_truncation THEN
                    RAISE EXCEPTION 'pghistory: the history of column "%" of % cannot be converted to %',
                                    v_column.new_name, v_event.target, v_column.type_sql
                        USING ERRCODE = 'datatype_mismatch',
                              HINT = format('Convert %s.%I yourself (ALTER TABLE ... USING), then run pghistory.sync(%L).',
                                            v_event.event_table, v_column.new_name, v_event.target::text);
                END;
            END IF;
        END LOOP;
        -- Track again with the stored configuration: new column lists, trigger function and triggers.
        PERFORM @extschema@.track(
            v_event.target,
            ARRAY(SELECT ROW(t.label, t.operation, t.snapshot, t.timing, t.condition)::@extschema@.tracker
                  FROM @extschema@._tracker t WHERE t.event_table = v_event.event_table ORDER BY t.label),
            v_fields, v_exclude, v_event.event_table::text, v_event.obj_field, v_event.context_field,
            v_event.context_mode, v_event.append_only, v_event.level, v_event.partition_by);
    END LOOP;
END
$function$;
COMMENT ON FUNCTION @extschema@.sync(regclass) IS
    'Follow schema changes of tracked tables (all you own, or one): renames, added, dropped and retyped columns';


CREATE FUNCTION @extschema@.verify()
    RETURNS TABLE (target regclass, event_table regclass, problem text, kind text)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- Everything that would let history be lost, forged or bypassed, one row per problem: what to
    -- do in words (problem), and what it is as a stable code (kind) for programs to filter on.
    -- Triggers missing or disabled
    SELECT t.target, t.event_table,
           format('trigger %I of tracker "%s" is %s', t.trigger_name, t.label,
                  CASE WHEN g.oid IS NULL THEN 'missing' ELSE 'disabled' END),
           CASE WHEN g.oid IS NULL THEN 'trigger_missing' ELSE 'trigger_disabled' END
    FROM @extschema@._tracker t
    LEFT JOIN pg_trigger g ON g.tgrelid = t.target AND g.tgname = t.trigger_name
    WHERE t.trigger_name IS NOT NULL AND (g.oid IS NULL OR g.tgenabled = 'D')
    UNION ALL
    SELECT e.target, e.event_table, format('trigger %I on %s is disabled', g.tgname, g.tgrelid::regclass),
           'trigger_disabled'
    FROM @extschema@._event_table e
    JOIN pg_trigger g ON g.tgfoid = e.trigger_function AND g.tgenabled = 'D'
    WHERE NOT EXISTS (SELECT FROM @extschema@._tracker t
                      WHERE t.event_table = e.event_table AND t.target = g.tgrelid AND t.trigger_name = g.tgname)
    UNION ALL
    -- Code generated by an older version (after ALTER EXTENSION pghistory UPDATE)
    SELECT e.target, e.event_table, format('its trigger function was generated by an older pghistory: run pghistory.sync(%L)',
                                           e.target::text),
           'stale_code'
    FROM @extschema@._event_table e
    JOIN pg_proc p ON p.oid = e.trigger_function
    WHERE e.generated_by IS DISTINCT FROM @extschema@.version()
    UNION ALL
    -- Columns out of step with the table (renamed, retyped or added while no event trigger ran)
    SELECT e.target, e.event_table, format('column %I %s: run pghistory.sync(%L)', coalesce(m.current_name, m.name),
                                           CASE WHEN m.current_name IS NULL THEN 'was dropped from the table'
                                                ELSE 'is out of step with its history' END,
                                           e.target::text),
           'column_mismatch'
    FROM @extschema@._event_table e
    CROSS JOIN LATERAL @extschema@._column_map(e) AS m
    WHERE e.trigger_function IS NOT NULL
      AND (m.current_name IS DISTINCT FROM m.name OR m.history_type IS DISTINCT FROM m.type_sql)
    UNION ALL
    SELECT e.target, e.event_table, format('column %I is not tracked yet: run pghistory.sync(%L)', a.attname, e.target::text),
           'column_added'
    FROM @extschema@._event_table e
    JOIN pg_attribute a ON a.attrelid = e.target AND a.attnum > 0 AND NOT a.attisdropped
    WHERE e.trigger_function IS NOT NULL AND e.fields IS NULL AND a.attname <> ALL (e.columns)
      AND a.attnum <> ALL (e.attnums) AND a.attname <> ALL (coalesce(e.exclude, '{}'))
    UNION ALL
    -- Roles other than the owner that may change history
    SELECT e.target, e.event_table, format('role %s may %s the history', a.grantee::regrole, a.privilege_type),
           'privilege'
    FROM @extschema@._event_table e
    JOIN pg_class c ON c.oid = e.event_table
    CROSS JOIN LATERAL aclexplode(c.relacl) AS a
    WHERE a.grantee <> c.relowner AND a.grantee <> 0 AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
    UNION ALL
    SELECT e.target, e.event_table, format('PUBLIC may %s the history', a.privilege_type), 'privilege'
    FROM @extschema@._event_table e
    JOIN pg_class c ON c.oid = e.event_table
    CROSS JOIN LATERAL aclexplode(c.relacl) AS a
    WHERE a.grantee = 0 AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
    UNION ALL
    -- The generated function callable by others
    SELECT e.target, e.event_table, format('function %s may be executed by %s', e.trigger_function,
                                           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END),
           'privilege'
    FROM @extschema@._event_table e
    JOIN pg_proc p ON p.oid = e.trigger_function
    CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
    WHERE a.grantee <> p.proowner
    UNION ALL
    -- Not in the events view (e.g. after pg_restore, which restores the registry but not the view)
    SELECT e.target, e.event_table, 'it is not in pghistory.events: run pghistory.sync()', 'events_view'
    FROM @extschema@._event_table e
    WHERE strpos(pg_get_viewdef(to_regclass('@extschema@.events')), e.event_table::text || ' e') = 0
    UNION ALL
    -- Append-only guards missing or not enabled ALWAYS
    SELECT e.target, e.event_table, format('append-only guard %I is %s', n.name,
                                           CASE WHEN g.oid IS NULL THEN 'missing' ELSE 'not enabled ALWAYS' END),
           'append_only_guard'
    FROM @extschema@._event_table e
    CROSS JOIN (VALUES ('pghistory_append_only'), ('pghistory_append_only_truncate')) AS n(name)
    LEFT JOIN pg_trigger g ON g.tgrelid = e.event_table AND g.tgname = n.name
    WHERE e.append_only AND (g.oid IS NULL OR g.tgenabled <> 'A')
$function$;
COMMENT ON FUNCTION @extschema@.verify() IS
    'Problems that would let history be lost, forged or bypassed (missing or disabled triggers, columns out of step, privileges, guards), each with a stable kind code; no rows when all is well';


CREATE FUNCTION @extschema@._needs_sync(p_event_table regclass)
    RETURNS boolean
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- Whether the generated code no longer matches the tables: a column renamed, retyped or added
    -- (verify() reports those), or a table that the code names renamed or moved (the registry keeps
    -- the names it was generated for: the event table, and the tracked table in a truncate branch).
    -- Nothing else: pg_restore's own ALTER TABLEs, run before the tables are complete, must not
    -- start a sync (nor do rows restored without generated_for, from an older version's dump).
    SELECT EXISTS (SELECT FROM @extschema@.verify() v
                   WHERE v.event_table = p_event_table AND v.kind IN ('column_mismatch', 'column_added'))
        OR EXISTS (SELECT FROM @extschema@._event_table e
                   WHERE e.event_table = p_event_table AND e.trigger_function IS NOT NULL
                     AND (e.generated_for[2] <> e.event_table::text
                          OR (e.generated_for[1] <> e.target::text
                              AND EXISTS (SELECT FROM @extschema@._tracker t
                                          WHERE t.event_table = e.event_table AND t.operation = 'truncate'))))
$function$;
