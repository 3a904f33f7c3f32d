--------------------------------------------------------------------------------------------------
-- Code generation: the trigger function of an event table
--------------------------------------------------------------------------------------------------


CREATE FUNCTION @extschema@._event_columns(p_event @extschema@._event_table)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- The column list every writer of an event table inserts into (label first).
    SELECT array_to_string(
        ARRAY['pgh_label']
        || CASE WHEN p_event.obj_field IS NULL THEN '{}'::text[] ELSE ARRAY[quote_ident(p_event.obj_field)] END
        || CASE WHEN p_event.context_mode = 'none' THEN '{}'::text[] ELSE ARRAY[quote_ident(p_event.context_field)] END
        || ARRAY(SELECT quote_ident(c) FROM unnest(p_event.columns) AS c),
        ', ')
$function$;


CREATE FUNCTION @extschema@._event_values(p_event @extschema@._event_table, p_row text, p_context text)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- The values matching _event_columns() (after the label), read from the row variable or alias
    -- p_row; p_context is the expression giving the context id (or metadata in json mode).
    SELECT array_to_string(
        CASE WHEN p_event.obj_field IS NULL THEN '{}'::text[] ELSE ARRAY[format('%s.%I', p_row, p_event.obj_key)] END
        || CASE WHEN p_event.context_mode = 'none' THEN '{}'::text[] ELSE ARRAY[p_context] END
        || ARRAY(SELECT format('%s.%I', p_row, c) FROM unnest(p_event.columns) AS c),
        ', ')
$function$;


CREATE FUNCTION @extschema@._context_expression(p_event @extschema@._event_table)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- What an event stores as its context: the id, or in json mode the metadata itself.
    SELECT CASE p_event.context_mode WHEN 'id' THEN '@extschema@.current_context_id()'
                                     WHEN 'json' THEN '@extschema@.current_context()' END
$function$;


CREATE FUNCTION @extschema@._trigger_function_name(p_event_table regclass)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- schema.pghistory_<event table>_trigger(), beside the event table.
    SELECT format('%I.%I()', n.nspname, @extschema@._choose_name('pghistory_' || c.relname, '_trigger'))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = p_event_table
$function$;


CREATE FUNCTION @extschema@._statement_twins(p_event_table regclass)
    RETURNS text[]
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Labels of the trackers of a partitioned table captured both per statement (through the table)
-- and per row (straight to a partition); see _create_trigger_function.
SELECT coalesce(array_agg(t.label ORDER BY t.label), '{}')
FROM @extschema@._tracker t JOIN pg_class c ON c.oid = t.target
WHERE t.event_table = p_event_table AND t.level = 'statement' AND c.relkind = 'p'
  AND t.operation IN ('insert', 'update', 'delete');
$function$;


CREATE FUNCTION @extschema@._statement_check_needed(p_event @extschema@._event_table)
    RETURNS boolean
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Whether the statements on a tracked table must check it first: when no enabled event trigger of
-- ours follows its schema changes.
SELECT EXISTS (SELECT FROM @extschema@._tracker t
               WHERE t.event_table = p_event.event_table AND t.operation <> 'manual')
   AND NOT EXISTS (SELECT FROM pg_event_trigger g JOIN pg_proc p ON p.oid = g.evtfoid
                   WHERE g.evtname = 'pghistory_ddl_end' AND g.evtenabled <> 'D'
                     AND p.proname = '_ddl_end_trigger' AND p.pronamespace = '@extschema@'::regnamespace);
$function$;


-- The generated trigger function, fragment by fragment. Each _gen_* function returns lines of
-- PL/pgSQL, each line starting with a newline (so '' is "nothing"), indented for where it goes;
-- _create_trigger_function() puts them together in the order they run. What comes out for each
-- kind of table is in tests/expected/18_generated_code.out.
--   row level:       arguments (label, snapshot); one INSERT ... VALUES per row.
--   statement level: argument (label); one INSERT ... SELECT over the transition tables per
--                    statement, with the tracker's condition as WHERE. OLD and NEW rows of an update
--                    are paired by position: PostgreSQL appends both images of a row together, so
--                    this holds even when the primary key changes.
--   partitioned table: both. A statement through the table itself is recorded by its statement
--                    triggers, which see a row moving between partitions as one update; its row
--                    triggers (cloned onto every partition) skip those rows and record the writes
--                    made straight to a partition. Statement triggers without arguments mark where
--                    such a statement begins and ends: a stack of trigger depths in a setting.

CREATE FUNCTION @extschema@._gen_if(p_condition text, p_code text)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- IF p_condition THEN p_code END IF; at the depth of the statement branches, p_code one deeper.
    SELECT E'\n        IF ' || p_condition || ' THEN' || replace(p_code, E'\n', E'\n    ') || E'\n        END IF;'
$function$;


CREATE FUNCTION @extschema@._gen_schema_check(p_event @extschema@._event_table)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Without the event trigger that follows schema changes (an extension created by a role that is not
-- a superuser), each statement first checks that the columns and names this code was generated for
-- are still there, so that it fails with a pghistory: error, not a missing column. '' otherwise.
DECLARE
    v_stamp_sql text;
    v_stamp     text;
BEGIN
    IF NOT @extschema@._statement_check_needed(p_event) THEN
        RETURN '';
    END IF;
    -- "name type" of the tracked columns and the key, and of any column added after them when
    -- every column is tracked (an added one is a change then)
    v_stamp_sql := format('SELECT string_agg(a.attname || %L || format_type(a.atttypid, a.atttypmod), %L ORDER BY a.attnum) '
                          'FROM pg_attribute a WHERE a.attrelid = %s AND NOT a.attisdropped AND (a.attnum = ANY (%L)%s)',
                          ' ', ',', p_event.target::oid,
                          p_event.attnums || (SELECT a.attnum FROM pg_attribute a
                                              WHERE a.attrelid = p_event.target AND a.attname = p_event.obj_key),
                          CASE WHEN p_event.fields IS NULL
                               THEN format(' OR a.attnum > %s', (SELECT max(a.attnum) FROM pg_attribute a WHERE a.attrelid = p_event.target))
                               ELSE '' END);
    EXECUTE v_stamp_sql INTO v_stamp;
    RETURN format($check$
        IF ((%1$s) IS DISTINCT FROM %2$L OR to_regclass(%3$L) IS DISTINCT FROM %4$s::oid::regclass%5$s) THEN
            RAISE EXCEPTION 'pghistory: %% changed since its tracking was set up', %6$s::oid::regclass
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'Its columns or name, or the name of its event table, are not what its history records.',
                      HINT = format('Run SELECT pghistory.sync(%%L); (no event trigger does it here: the extension was not created by a superuser).',
                                    %6$s::oid::regclass::text);
        END IF;$check$,
        v_stamp_sql, v_stamp, p_event.event_table::text, p_event.event_table::oid,
        -- the truncate branch reads the table by name too
        CASE WHEN EXISTS (SELECT FROM @extschema@._tracker t
                          WHERE t.event_table = p_event.event_table AND t.operation = 'truncate')
             THEN format(E'\n                                   OR to_regclass(%L) IS DISTINCT FROM %s::oid::regclass',
                         p_event.target::text, p_event.target::oid)
             ELSE '' END,
        p_event.target::oid);
END
$function$;


CREATE FUNCTION @extschema@._via_parent_setting(p_event_table regclass)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- The setting that holds the trigger depths of the statements running through a partitioned table.
    SELECT 'pghistory.via_' || left(md5(p_event_table::text), 16)
$function$;


CREATE FUNCTION @extschema@._gen_statement_bounds(p_event @extschema@._event_table, p_check text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- What the triggers without arguments do as a statement begins (BEFORE) and ends (AFTER): check the
-- table first (p_check), and on a partitioned table push and pop the statement's trigger depth.
DECLARE
    v_twins text[] := @extschema@._statement_twins(p_event.event_table);
    v_code  text := '';
BEGIN
    IF p_check <> '' THEN
        v_code := @extschema@._gen_if('TG_WHEN = ''BEFORE''', p_check);
    END IF;
    IF v_twins <> '{}' THEN
        v_code := v_code || format($marks$
        IF TG_OP = ANY (%2$L::text[]) THEN
            PERFORM set_config(%1$L, CASE WHEN TG_WHEN = 'BEFORE'
                THEN concat_ws(',', nullif(current_setting(%1$L, true), ''), pg_trigger_depth())
                ELSE regexp_replace(coalesce(current_setting(%1$L, true), ''), '(^|,)' || pg_trigger_depth() || '$', '') END, true);
        END IF;$marks$,
            @extschema@._via_parent_setting(p_event.event_table),
            ARRAY(SELECT DISTINCT upper(t.operation) FROM @extschema@._tracker t
                  WHERE t.event_table = p_event.event_table AND t.label = ANY (v_twins)));
    END IF;
    IF v_code = '' THEN
        RETURN '';
    END IF;
    RETURN format($bounds$
    IF TG_NARGS = 0 THEN   -- a statement begins or ends%s
        RETURN NULL;
    END IF;$bounds$, v_code);
END
$function$;


CREATE FUNCTION @extschema@._gen_skip_via_parent(p_event @extschema@._event_table)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- On a partitioned table the row triggers leave to the statement triggers what runs through it.
    SELECT CASE WHEN twins <> '{}' THEN format($skip$
    IF TG_LEVEL = 'ROW' AND TG_ARGV[0] = ANY (%2$L::text[])
       AND pg_trigger_depth()::text = ANY (string_to_array(current_setting(%1$L, true), ',')) THEN
        RETURN NULL;   -- recorded by the statement trigger of the partitioned table
    END IF;$skip$, @extschema@._via_parent_setting(p_event.event_table), twins)
    ELSE '' END
    FROM @extschema@._statement_twins(p_event.event_table) AS twins
$function$;


CREATE FUNCTION @extschema@._gen_context(p_event @extschema@._event_table)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- Without an active context (the common case) this reads one setting and calls nothing: cheap
    -- per row, and tracked writes keep working even if the extension is dropped.
    SELECT CASE WHEN p_event.context_mode = 'none' THEN '' ELSE format($context$
    IF pg_catalog.current_setting('pghistory.context_id', true) OPERATOR(pg_catalog.<>) '' THEN
        v_context := %s;
    END IF;$context$, @extschema@._context_expression(p_event)) END
$function$;


CREATE FUNCTION @extschema@._gen_statement_branch(p_event @extschema@._event_table, p_tracker @extschema@._tracker)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- One tracker captured per statement: INSERT ... SELECT from its transition table(s), with its
    -- condition as WHERE. An update of one row needs no pairing of old and new rows.
    SELECT format(CASE WHEN p_tracker.operation = 'update' THEN $update$
        IF TG_ARGV[0] OPERATOR(pg_catalog.=) %1$L THEN
            IF (SELECT count(*) FROM (SELECT FROM pgh_new LIMIT 2) AS n) = 1 THEN   -- one row: nothing to pair
                INSERT INTO %2$s (%3$s)
                SELECT %1$L, %4$s
                FROM pgh_old AS old, pgh_new AS new
                WHERE %6$s;
            ELSE
                INSERT INTO %2$s (%3$s)
                SELECT %1$L, %4$s
                FROM %5$s
                WHERE %6$s;
            END IF;
        END IF;$update$ ELSE $branch$
        IF TG_ARGV[0] OPERATOR(pg_catalog.=) %1$L THEN
            INSERT INTO %2$s (%3$s)
            SELECT %1$L, %4$s
            FROM %5$s
            WHERE %6$s;
        END IF;$branch$ END,
        p_tracker.label, p_event.event_table, @extschema@._event_columns(p_event),
        @extschema@._event_values(p_event, p_tracker.snapshot, 'v_context'),
        CASE p_tracker.operation
            WHEN 'insert' THEN 'pgh_new AS new'
            WHEN 'delete' THEN 'pgh_old AS old'
            WHEN 'truncate' THEN format('%s AS old', p_event.target)
            -- FULL JOIN (both sides have the same rows) can only be a hash or merge join: the plan is
            -- cached from the first, maybe one-row, statement and must not be a nested loop.
            ELSE '(SELECT row_number() OVER () AS pgh_row, * FROM pgh_old) AS old '
                 'FULL JOIN (SELECT row_number() OVER () AS pgh_row, * FROM pgh_new) AS new ON new.pgh_row = old.pgh_row' END,
        coalesce(p_tracker.trigger_when, 'true'))
$function$;


CREATE FUNCTION @extschema@._gen_statement_level(p_event @extschema@._event_table, p_check text)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- The statement triggers: the TRUNCATE one checks the table first (no begin trigger runs for
    -- it), then the branch of the tracker that the argument names runs.
    SELECT E'\n    IF TG_LEVEL OPERATOR(pg_catalog.=) ''STATEMENT'' THEN'
        || CASE WHEN p_check <> '' AND EXISTS (SELECT FROM @extschema@._tracker t
                                               WHERE t.event_table = p_event.event_table AND t.operation = 'truncate')
                THEN @extschema@._gen_if('TG_OP = ''TRUNCATE''', p_check) ELSE '' END
        || coalesce((SELECT string_agg(@extschema@._gen_statement_branch(p_event, t), '' ORDER BY t.label)
                     FROM @extschema@._tracker t
                     WHERE t.event_table = p_event.event_table AND t.level = 'statement'), '')
        || E'\n        RETURN NULL;\n    END IF;'
$function$;


CREATE FUNCTION @extschema@._gen_row_level(p_event @extschema@._event_table)
    RETURNS text
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- The row triggers: one INSERT ... VALUES of the row (OLD or NEW) that their second argument names.
    SELECT format($row$
    IF TG_ARGV[1] OPERATOR(pg_catalog.=) 'old' THEN
        INSERT INTO %1$s (%2$s) VALUES (TG_ARGV[0], %3$s);
    ELSE
        INSERT INTO %1$s (%2$s) VALUES (TG_ARGV[0], %4$s);
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;$row$,
        p_event.event_table, @extschema@._event_columns(p_event),
        @extschema@._event_values(p_event, 'OLD', 'v_context'), @extschema@._event_values(p_event, 'NEW', 'v_context'))
$function$;


CREATE FUNCTION @extschema@._create_trigger_function(p_event @extschema@._event_table)
    RETURNS regprocedure
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Generate the trigger function of an event table from the fragments above: explicit column lists,
-- no dynamic SQL at run time. SECURITY DEFINER as the table owner, so writers need no privilege on
-- the event table; search_path pinned where the body needs it (below), then jit = off too: the
-- planner overestimates the row-number join of the pairing quadratically, so a 100k-row UPDATE
-- would be JIT-compiled every time (~150 ms, bench/README.md).
DECLARE
    v_function text := @extschema@._trigger_function_name(p_event.event_table);
    v_check    text := @extschema@._gen_schema_check(p_event);
    v_body     text;
BEGIN
    v_body := format(E'\n-- Generated by pghistory %s for %s; it is regenerated on every track() and sync() of that table.',
                     @extschema@.version(), p_event.event_table)
        || E'\n-- use_column: in the statement branches OLD/NEW name the transition-table aliases, not the row variables.'
        || E'\n#variable_conflict use_column\n'
        || CASE WHEN p_event.context_mode = 'none' THEN ''
                ELSE format(E'DECLARE\n    v_context %s;', CASE p_event.context_mode WHEN 'json' THEN 'pg_catalog.jsonb' ELSE 'pg_catalog.uuid' END) END
        || E'\nBEGIN'
        || @extschema@._gen_statement_bounds(p_event, v_check)   -- triggers without arguments
        || @extschema@._gen_skip_via_parent(p_event)
        || @extschema@._gen_context(p_event)
        || @extschema@._gen_statement_level(p_event, v_check)    -- statement triggers: argument (label)
        || @extschema@._gen_row_level(p_event)                   -- row triggers: arguments (label, snapshot)
        || E'\nEND\n';
    -- OR REPLACE: a function left behind by a dropped event table of the same name is ours to reuse
    -- (one owned by another role cannot be replaced, so nothing foreign is adopted).
    -- search_path pinned (and jit) only where the body finds names through it: a condition or the
    -- pairing of an update captured per statement, the schema check, the statement marks of a
    -- partitioned table. Every other line is written schema-qualified, operators included, and row
    -- triggers carry their conditions in their WHEN clauses (parsed once, by track(), under its
    -- pinned path): nothing a writer puts on their search_path is found, and a call skips the
    -- settings switch that was the largest part of a row trigger's cost (bench/README.md;
    -- tests/python/test_search_path.py).
    EXECUTE format('CREATE OR REPLACE FUNCTION %s RETURNS trigger LANGUAGE plpgsql VOLATILE SECURITY DEFINER%s AS %L',
                   v_function,
                   CASE WHEN v_check <> '' OR @extschema@._statement_twins(p_event.event_table) <> '{}'
                             OR EXISTS (SELECT FROM @extschema@._tracker t
                                        WHERE t.event_table = p_event.event_table AND t.level = 'statement'
                                          AND (t.operation = 'update' OR t.trigger_when IS NOT NULL))
                        THEN ' SET search_path = pg_catalog, pg_temp SET jit = off' ELSE '' END,
                   v_body);
    -- Only the triggers may run it: nobody can call it or attach it to another table.
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_function);
    EXECUTE format('COMMENT ON FUNCTION %s IS %L', v_function,
                   format('pghistory: writes the events of %s (generated by pghistory.track)', p_event.event_table));
    RETURN v_function::regprocedure;
END
$function$;


CREATE FUNCTION @extschema@._drop_triggers(p_event_table regclass)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Remove what tracking attached for one event table (triggers, generated function); history stays.
DECLARE
    v_trigger  record;
    v_function regprocedure := (SELECT trigger_function FROM @extschema@._event_table WHERE event_table = p_event_table);
BEGIN
    FOR v_trigger IN   -- every trigger calling the generated function (clones on partitions go with theirs)
        SELECT g.tgname, g.tgrelid::regclass AS relation FROM pg_trigger g
        WHERE g.tgfoid = v_function AND g.tgparentid = 0
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_trigger.tgname, v_trigger.relation);
    END LOOP;
    DELETE FROM @extschema@._tracker WHERE event_table = p_event_table;
    IF v_function IS NOT NULL THEN
        EXECUTE format('DROP FUNCTION IF EXISTS %s', v_function);
        UPDATE @extschema@._event_table SET trigger_function = NULL WHERE event_table = p_event_table;
    END IF;
END
$function$;
