\echo Use "CREATE EXTENSION pghistory" to load this file. \quit
--
-- pghistory 1.2: row history for PostgreSQL tables.
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
    RETURN '1.2';
COMMENT ON FUNCTION @extschema@.version() IS 'The version of the pghistory SQL installed in this database';
--------------------------------------------------------------------------------------------------
-- Registry
--------------------------------------------------------------------------------------------------

-- One row per event table. Kept after untrack() so that tracking again appends to the same history.
CREATE TABLE @extschema@._event_table (
    event_table      regclass PRIMARY KEY,
    target           regclass NOT NULL,
    columns          name[] NOT NULL,          -- tracked columns of target, in table order
    attnums          smallint[] NOT NULL,      -- their attribute numbers, to follow renames
    fields           name[],                   -- the fields => list as given (NULL: all columns)
    exclude          name[],                   -- the exclude => list as given
    obj_field        name,                     -- object reference column, NULL for none
    obj_key          name,                     -- the primary key column of target it copies
    context_mode     text NOT NULL CHECK (context_mode IN ('id', 'json', 'none')),
    context_field    name,
    append_only      boolean NOT NULL,
    level            text NOT NULL CHECK (level IN ('auto', 'row', 'statement')),
    partition_by     text CHECK (partition_by IN ('day', 'week', 'month')),   -- NULL: not partitioned
    trigger_function regprocedure,             -- NULL while untracked
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    generated_by     text,                     -- the pghistory version that generated trigger_function
    generated_for    text[]                    -- {target, event_table} as named in that code
);
CREATE INDEX ON @extschema@._event_table (target);

-- One row per tracker of an event table.
CREATE TABLE @extschema@._tracker (
    target       regclass NOT NULL,
    label        text NOT NULL,
    event_table  regclass NOT NULL REFERENCES @extschema@._event_table ON DELETE CASCADE,
    operation    text NOT NULL
                 CONSTRAINT _tracker_operation_check
                 CHECK (operation IN ('insert', 'update', 'delete', 'insert_or_update', 'truncate', 'manual')),
    snapshot     text NOT NULL CONSTRAINT _tracker_snapshot_check CHECK (snapshot IN ('old', 'new')),
    timing       text CONSTRAINT _tracker_timing_check CHECK (timing IN ('after', 'before')),   -- NULL for manual
    condition    text,                         -- as given (helper tokens unexpanded)
    trigger_when text,                         -- the expanded WHEN clause, NULL for always
    trigger_name name,                         -- NULL for manual trackers
    level        text CHECK (level IN ('row', 'statement')),   -- how it is captured; NULL for manual
    PRIMARY KEY (target, label)
);
CREATE INDEX ON @extschema@._tracker (event_table);

-- Table owners write their own registry rows through track(); nobody may touch other owners' rows.
-- Rows left by a dropped table (no event trigger to clean them) may be deleted by anyone.
ALTER TABLE @extschema@._event_table ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@._tracker ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON @extschema@._event_table FOR SELECT USING (true);
-- An event table row must name a table and an event table that both belong to the caller.
CREATE POLICY owner_insert ON @extschema@._event_table FOR INSERT
    WITH CHECK (2 = (SELECT count(*) FROM pg_catalog.pg_class c
                     WHERE c.oid IN (target, event_table) AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')));
CREATE POLICY owner_update ON @extschema@._event_table FOR UPDATE
    USING (2 = (SELECT count(*) FROM pg_catalog.pg_class c
                WHERE c.oid IN (target, event_table) AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')));
CREATE POLICY owner_delete ON @extschema@._event_table FOR DELETE
    USING (NOT EXISTS (SELECT FROM pg_catalog.pg_class c
                       WHERE c.oid = target AND NOT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')));
CREATE POLICY read_all ON @extschema@._tracker FOR SELECT USING (true);
CREATE POLICY owner_insert ON @extschema@._tracker FOR INSERT
    WITH CHECK (EXISTS (SELECT FROM pg_catalog.pg_class c
                        WHERE c.oid = target AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')));
CREATE POLICY owner_update ON @extschema@._tracker FOR UPDATE
    USING (EXISTS (SELECT FROM pg_catalog.pg_class c
                   WHERE c.oid = target AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')));
CREATE POLICY owner_delete ON @extschema@._tracker FOR DELETE
    USING (NOT EXISTS (SELECT FROM pg_catalog.pg_class c
                       WHERE c.oid = target AND NOT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')));
--------------------------------------------------------------------------------------------------
-- Context: who and why, attached to events
--------------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.context (
    id          uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    metadata    jsonb NOT NULL DEFAULT '{}',
    set_by      name NOT NULL DEFAULT session_user,       -- the role that set it
    backend_pid integer NOT NULL DEFAULT pg_catalog.pg_backend_pid()
);
COMMENT ON TABLE @extschema@.context IS
    'pghistory contexts: metadata (who, why) shared by the events of one transaction; written only by set_context() and tracked writes';

-- Registry and contexts belong in a dump (the guard lets the same script run outside CREATE EXTENSION).
DO $do$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pghistory') THEN
        PERFORM pg_catalog.pg_extension_config_dump('@extschema@._event_table', '');
        PERFORM pg_catalog.pg_extension_config_dump('@extschema@._tracker', '');
        PERFORM pg_catalog.pg_extension_config_dump('@extschema@.context', '');
    END IF;
END
$do$;


CREATE FUNCTION @extschema@.current_context_id()
    RETURNS uuid
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
AS $function$
-- The id of this transaction's context, or NULL. The context lives in two transaction-local settings,
-- pghistory.context_id and pghistory.context_metadata (the protocol django-pghistory's client speaks);
-- its row in pghistory.context is written here, once per change of the settings, and only by the
-- session that created it.
-- Every event written in a context calls this, so it is kept cheap: no SET clause (a SET saves and
-- restores the setting on every call), hence every name is schema-qualified, operators and types
-- included, so that a caller's search_path reaches nothing (tests/python/test_search_path.py). The
-- id is checked against the uuid pattern before its cast, so that only the JSON cast needs an
-- exception block (each entry is a subtransaction).
DECLARE
    v_raw_id       pg_catalog.text := pg_catalog.current_setting('pghistory.context_id', true);
    v_raw_metadata pg_catalog.text := pg_catalog.current_setting('pghistory.context_metadata', true);
    v_id           pg_catalog.uuid;
    v_metadata     pg_catalog.jsonb;
BEGIN
    IF v_raw_id IS NULL OR v_raw_id OPERATOR(pg_catalog.=) '' THEN
        RETURN NULL;
    END IF;
    -- Fast path: the row already holds these settings (the marker is transaction-local too).
    IF pg_catalog.current_setting('pghistory.context_synced', true)
           OPERATOR(pg_catalog.=) pg_catalog.concat(v_raw_id, ' ', v_raw_metadata) THEN
        RETURN v_raw_id::pg_catalog.uuid;
    END IF;

    IF v_raw_id OPERATOR(pg_catalog.~) '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' THEN
        v_id := v_raw_id::pg_catalog.uuid;
    ELSE  -- the other spellings uuid accepts ({...}, no hyphens), or not a uuid
        BEGIN
            v_id := v_raw_id::pg_catalog.uuid;
        EXCEPTION WHEN invalid_text_representation THEN
            RAISE EXCEPTION 'pghistory: setting pghistory.context_id is not a uuid: "%"', v_raw_id
                USING ERRCODE = 'invalid_text_representation',
                      HINT = 'Set it to a uuid (SET LOCAL pghistory.context_id = ''...''), or call pghistory.set_context(metadata).';
        END;
    END IF;
    IF v_raw_metadata IS NULL OR v_raw_metadata OPERATOR(pg_catalog.=) '' THEN
        v_metadata := '{}'::pg_catalog.jsonb;
    ELSE
        BEGIN
            v_metadata := v_raw_metadata::pg_catalog.jsonb;
        EXCEPTION WHEN invalid_text_representation THEN
            RAISE EXCEPTION 'pghistory: setting pghistory.context_metadata is not valid JSON: "%"', v_raw_metadata
                USING ERRCODE = 'invalid_text_representation',
                      HINT = 'Set it to a JSON object, or call pghistory.set_context(metadata).';
        END;
    END IF;
    IF pg_catalog.jsonb_typeof(v_metadata) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'pghistory: setting pghistory.context_metadata is not a JSON object: %', v_metadata
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Context metadata is a JSON object such as {"user": 42}.';
    END IF;

    -- Reusing an id is allowed only from the session that created it (django-pghistory keeps one id
    -- across the transactions of a context block); any other session is refused, never merged.
    INSERT INTO @extschema@.context AS c (id, metadata)
    VALUES (v_id, v_metadata)
    ON CONFLICT (id) DO UPDATE
        SET metadata = excluded.metadata, updated_at = pg_catalog.now()
        WHERE c.set_by OPERATOR(pg_catalog.=) excluded.set_by
          AND c.backend_pid OPERATOR(pg_catalog.=) excluded.backend_pid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pghistory: context "%" belongs to another session', v_id
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Use a new id per context: pghistory.set_context(metadata) creates one.';
    END IF;

    PERFORM pg_catalog.set_config('pghistory.context_synced', pg_catalog.concat(v_raw_id, ' ', v_raw_metadata), true);
    RETURN v_id;
END
$function$;
COMMENT ON FUNCTION @extschema@.current_context_id() IS
    'The id of the context active in this transaction (NULL if none), recording it in pghistory.context';


CREATE FUNCTION @extschema@.current_context()
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
AS $function$
-- The metadata of this transaction's context, as it is now (what context_mode => 'json' stores).
-- Called per event like current_context_id(), and qualified like it instead of a SET clause.
DECLARE
    v_raw_metadata pg_catalog.text;
BEGIN
    IF @extschema@.current_context_id() IS NULL THEN   -- validates the settings
        RETURN NULL;
    END IF;
    v_raw_metadata := pg_catalog.current_setting('pghistory.context_metadata', true);
    IF v_raw_metadata IS NULL OR v_raw_metadata OPERATOR(pg_catalog.=) '' THEN
        RETURN '{}'::pg_catalog.jsonb;
    END IF;
    RETURN v_raw_metadata::pg_catalog.jsonb;
END
$function$;
COMMENT ON FUNCTION @extschema@.current_context() IS
    'The metadata of the context active in this transaction (NULL if none)';


CREATE FUNCTION @extschema@.set_context(metadata jsonb, lazy boolean DEFAULT false)
    RETURNS uuid
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Merge metadata into this transaction's context, starting one if none is active. As the extension
-- owner, so that a new context's row is written here at once: a plain INSERT of a new id, where
-- current_context_id() would validate the settings and upsert (bench/README.md, "Context").
-- lazy => true writes nothing: only the transaction-local settings change, and the row is written
-- by current_context_id() when the transaction records an event (the protocol of section 6, as
-- pghist's Python side speaks it); so a transaction that writes no event may be read-only (a standby).
DECLARE
    v_id       uuid;
    v_metadata text := metadata::text;
    v_raw_id   text;
BEGIN
    IF metadata IS NULL OR jsonb_typeof(metadata) <> 'object' THEN
        RAISE EXCEPTION 'pghistory: context metadata must be a JSON object, not %', coalesce(v_metadata, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass an object, e.g. pghistory.set_context(''{"user": 42}'').';
    END IF;
    IF lazy THEN
        v_raw_id := current_setting('pghistory.context_id', true);
        IF coalesce(v_raw_id, '') = '' THEN
            v_id := gen_random_uuid();
            PERFORM set_config('pghistory.context_id', v_id::text, true),
                    set_config('pghistory.context_metadata', v_metadata, true);
            RETURN v_id;
        END IF;
        -- Merged into the active context's settings; the next event records the merged metadata.
        PERFORM set_config('pghistory.context_metadata',
                           (coalesce(nullif(current_setting('pghistory.context_metadata', true), ''), '{}')::jsonb
                            || metadata)::text, true);
        RETURN v_raw_id::uuid;
    END IF;
    v_id := @extschema@.current_context_id();   -- validates settings a client may have set
    IF v_id IS NULL THEN
        v_id := gen_random_uuid();
        INSERT INTO @extschema@.context (id, metadata) VALUES (v_id, metadata);
        PERFORM set_config('pghistory.context_id', v_id::text, true),
                set_config('pghistory.context_metadata', v_metadata, true),
                set_config('pghistory.context_synced', v_id::text || ' ' || v_metadata, true);
        RETURN v_id;
    ELSE
        PERFORM set_config('pghistory.context_metadata', (@extschema@.current_context() || metadata)::text, true);
    END IF;
    RETURN @extschema@.current_context_id();
END
$function$;
COMMENT ON FUNCTION @extschema@.set_context(jsonb, boolean) IS
    'Merge metadata (a JSON object) into the context of this transaction, starting one if needed; returns its id. lazy => true writes nothing until an event is recorded';


CREATE FUNCTION @extschema@.clear_context()
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- End the active context before the transaction does; later events carry none.
BEGIN
    PERFORM set_config('pghistory.context_id', '', true);
    PERFORM set_config('pghistory.context_metadata', '', true);
    PERFORM set_config('pghistory.context_synced', '', true);
END
$function$;
COMMENT ON FUNCTION @extschema@.clear_context() IS
    'End the context of this transaction: events written afterwards carry no context';
--------------------------------------------------------------------------------------------------
-- Internal helpers
--------------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@._choose_name(p_base text, p_suffix text)
    RETURNS name
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- PostgreSQL truncates names to 63 bytes silently, so two long table names could map to one event
-- table. Long names keep a readable prefix plus a hash of the whole name instead.
DECLARE
    v_full text := p_base || p_suffix;
    v_hash text := '_' || left(md5(p_base || p_suffix), 8);
    v_base text := p_base;
BEGIN
    IF octet_length(v_full) <= 63 THEN
        RETURN v_full;
    END IF;
    WHILE octet_length(v_base || v_hash || p_suffix) > 63 LOOP
        v_base := left(v_base, -1);   -- whole characters, so multibyte names stay valid
    END LOOP;
    RETURN v_base || v_hash || p_suffix;
END
$function$;


CREATE FUNCTION @extschema@._columns(p_target regclass)
    RETURNS TABLE (attname name, attnum smallint, type_sql text, atttypid oid)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- The live columns of a table, in table order, with their full types.
    SELECT a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.atttypid
    FROM pg_attribute a
    WHERE a.attrelid = p_target AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
$function$;


CREATE FUNCTION @extschema@._check_columns(p_target regclass, p_names text[], p_option text)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Every name must be a column of the table: a typo must not silently track nothing.
DECLARE
    v_missing text;
BEGIN
    SELECT n INTO v_missing
    FROM unnest(p_names) AS n
    WHERE n IS NULL OR n NOT IN (SELECT c.attname FROM @extschema@._columns(p_target) c)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pghistory: column "%" of % does not exist (in %)', v_missing, p_target, p_option
            USING ERRCODE = 'undefined_column',
                  HINT = format('Columns of %s: %s.', p_target,
                                (SELECT string_agg(quote_ident(c.attname), ', ') FROM @extschema@._columns(p_target) c));
    END IF;
END
$function$;


CREATE FUNCTION @extschema@._has_equality(p_type oid)
    RETURNS boolean
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- Whether IS DISTINCT FROM works on the type (json, xml, point... have no equality operator).
    SELECT CASE
        WHEN t.typtype = 'd' THEN @extschema@._has_equality(t.typbasetype)
        WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN @extschema@._has_equality(t.typelem)
        WHEN t.typtype IN ('e', 'r', 'm') THEN true
        WHEN t.typtype = 'c' THEN false
        ELSE EXISTS (SELECT FROM pg_opclass o JOIN pg_am a ON a.oid = o.opcmethod
                     WHERE a.amname = 'btree' AND o.opcdefault AND o.opcintype = t.oid)
    END
    FROM pg_type t WHERE t.oid = p_type
$function$;


CREATE FUNCTION @extschema@._auto_columns(p_target regclass)
    RETURNS name[]
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- Columns whose value the server sets itself, left out by exclude_auto: date/timestamp columns
    -- with a default that reads the clock, or named in the code of another BEFORE UPDATE trigger.
    SELECT coalesce(array_agg(a.attname ORDER BY a.attnum), '{}')
    FROM pg_attribute a
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = p_target AND a.attnum > 0 AND NOT a.attisdropped
      AND a.atttypid IN ('date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype)
      AND (pg_get_expr(d.adbin, d.adrelid) ~* '(now|clock_timestamp|statement_timestamp|transaction_timestamp)\(|current_timestamp|current_date|localtimestamp'
           OR EXISTS (SELECT FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid
                      WHERE tg.tgrelid = p_target AND NOT tg.tgisinternal
                        AND tg.tgname !~ '^pghistory_'
                        AND tg.tgtype & 1 = 1        -- row level
                        AND tg.tgtype & 2 = 2        -- before
                        AND tg.tgtype & 16 = 16      -- update
                        AND strpos(lower(p.prosrc), lower(a.attname)) > 0))
$function$;
--------------------------------------------------------------------------------------------------
-- Conditions
--------------------------------------------------------------------------------------------------


CREATE FUNCTION @extschema@._condition_token(p_kind text, p_fields text[], p_exclude text[], p_exclude_auto boolean)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
    -- any_change() and friends cannot know the table they will be used on, so they return a
    -- placeholder (a SQL comment, so it composes with other text) that track() expands.
    SELECT format('/*pghistory:%s %s*/', p_kind,
                  jsonb_build_object('fields', coalesce(p_fields, '{}'),
                                     'exclude', coalesce(p_exclude, '{}'),
                                     'exclude_auto', coalesce(p_exclude_auto, false)))
$function$;


CREATE FUNCTION @extschema@._expand_condition(p_target regclass, p_condition text, p_tracked name[])
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Replace each any_change()/all_change()/... placeholder with the comparisons it stands for.
DECLARE
    v_sql     text := p_condition;
    v_match   text[];   -- whole placeholder, kind, JSON spec
    v_spec    jsonb;
    v_fields  text[];
    v_exclude text[];
    v_parts   text[];
BEGIN
    LOOP
        v_match := regexp_match(v_sql, '(/\*pghistory:(\w+) (\{.*?\})\*/)');
        EXIT WHEN v_match IS NULL;
        v_spec := v_match[3]::jsonb;
        v_fields := ARRAY(SELECT jsonb_array_elements_text(v_spec->'fields'));
        v_exclude := ARRAY(SELECT jsonb_array_elements_text(v_spec->'exclude'));
        PERFORM @extschema@._check_columns(p_target, v_fields, v_match[2] || '()');
        PERFORM @extschema@._check_columns(p_target, v_exclude, v_match[2] || '(exclude)');
        IF cardinality(v_fields) = 0 THEN
            v_fields := p_tracked;
        END IF;

        SELECT array_agg(format(CASE WHEN @extschema@._has_equality(c.atttypid)
                                     THEN 'OLD.%1$I %2$s NEW.%1$I'
                                     ELSE 'OLD.%1$I::text %2$s NEW.%1$I::text' END,
                                c.attname,
                                CASE WHEN v_match[2] IN ('any_change', 'all_change')
                                     THEN 'IS DISTINCT FROM' ELSE 'IS NOT DISTINCT FROM' END)
                         ORDER BY c.attnum)
        INTO v_parts
        FROM @extschema@._columns(p_target) c
        WHERE c.attname = ANY (v_fields)
          AND c.attname <> ALL (v_exclude)
          AND NOT (coalesce((v_spec->>'exclude_auto')::boolean, false)
                   AND c.attname = ANY (@extschema@._auto_columns(p_target)));
        IF v_parts IS NULL THEN
            RAISE EXCEPTION 'pghistory: %() has no column left to compare on %', v_match[2], p_target
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Name at least one column that is not excluded.';
        END IF;

        -- Every column, all comparable: compare whole rows. Same result, and a trigger WHEN clause that
        -- names no column lets ALTER COLUMN ... TYPE through (PostgreSQL refuses it for named ones).
        IF v_match[2] IN ('any_change', 'all_dont_change')
           AND cardinality(v_parts) = (SELECT count(*) FROM @extschema@._columns(p_target))
           AND (SELECT bool_and(@extschema@._has_equality(c.atttypid)) FROM @extschema@._columns(p_target) c) THEN
            v_parts := ARRAY[CASE v_match[2] WHEN 'any_change' THEN 'OLD.* IS DISTINCT FROM NEW.*'
                                             ELSE 'OLD.* IS NOT DISTINCT FROM NEW.*' END];
        END IF;
        v_sql := overlay(v_sql PLACING
                         '(' || array_to_string(v_parts, CASE WHEN v_match[2] IN ('any_change', 'any_dont_change')
                                                              THEN ' OR ' ELSE ' AND ' END) || ')'
                         FROM strpos(v_sql, v_match[1]) FOR length(v_match[1]));
    END LOOP;
    RETURN v_sql;
END
$function$;


-- Condition helpers: any_change('a', 'b') or any_change(fields => ..., exclude => ..., exclude_auto => ...).
-- With no fields they compare every tracked column; the comparison is built by track().
CREATE FUNCTION @extschema@.any_change(VARIADIC fields text[])
    RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._condition_token('any_change', fields, NULL, false);
CREATE FUNCTION @extschema@.any_change(fields text[] DEFAULT NULL, exclude text[] DEFAULT NULL, exclude_auto boolean DEFAULT false)
    RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._condition_token('any_change', fields, exclude, exclude_auto);
CREATE FUNCTION @extschema@.all_change(VARIADIC fields text[])
    RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._condition_token('all_change', fields, NULL, false);
CREATE FUNCTION @extschema@.all_change(fields text[] DEFAULT NULL, exclude text[] DEFAULT NULL, exclude_auto boolean DEFAULT false)
    RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._condition_token('all_change', fields, exclude, exclude_auto);
CREATE FUNCTION @extschema@.any_dont_change(VARIADIC fields text[])
    RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._condition_token('any_dont_change', fields, NULL, false);
CREATE FUNCTION @extschema@.any_dont_change(fields text[] DEFAULT NULL, exclude text[] DEFAULT NULL, exclude_auto boolean DEFAULT false)
    RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._condition_token('any_dont_change', fields, exclude, exclude_auto);
CREATE FUNCTION @extschema@.all_dont_change(VARIADIC fields text[])
    RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._condition_token('all_dont_change', fields, NULL, false);
CREATE FUNCTION @extschema@.all_dont_change(fields text[] DEFAULT NULL, exclude text[] DEFAULT NULL, exclude_auto boolean DEFAULT false)
    RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._condition_token('all_dont_change', fields, exclude, exclude_auto);
COMMENT ON FUNCTION @extschema@.any_change(text[]) IS 'Condition: any of these columns changed';
COMMENT ON FUNCTION @extschema@.any_change(text[], text[], boolean) IS
    'Condition: any of these columns (default: the tracked ones, minus exclude, minus auto-set timestamps) changed';
COMMENT ON FUNCTION @extschema@.all_change(text[]) IS 'Condition: all of these columns changed';
COMMENT ON FUNCTION @extschema@.all_change(text[], text[], boolean) IS
    'Condition: all of these columns (default: the tracked ones, minus exclude, minus auto-set timestamps) changed';
COMMENT ON FUNCTION @extschema@.any_dont_change(text[]) IS 'Condition: at least one of these columns did not change';
COMMENT ON FUNCTION @extschema@.any_dont_change(text[], text[], boolean) IS
    'Condition: at least one of these columns (default: the tracked ones) did not change';
COMMENT ON FUNCTION @extschema@.all_dont_change(text[]) IS 'Condition: none of these columns changed';
COMMENT ON FUNCTION @extschema@.all_dont_change(text[], text[], boolean) IS
    'Condition: none of these columns (default: the tracked ones) changed';


CREATE FUNCTION @extschema@._check_condition(p_target regclass, p_operation text, p_when text)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- A condition is a trigger WHEN clause (row level) or the WHERE of the generated INSERT ... SELECT
-- (statement level); either way it must obey the rules of a WHEN clause. They are checked here
-- with CREATE TRIGGER's own messages and SQLSTATEs, but without creating a trigger: PREPARE parses
-- a query in which OLD and NEW are the table (it plans nothing and runs nothing).
DECLARE
    v_bare    text;
    v_state   text;
    v_message text;
BEGIN
    -- Subqueries: a subquery is "(" then SELECT, VALUES, TABLE or WITH, outside literals, quoted
    -- names and comments (all reserved words, so never a column name there).
    v_bare := regexp_replace(regexp_replace(regexp_replace(p_when, '''(?:[^'']|'''')*''', ' ', 'g'),
                                            '"(?:[^"]|"")*"', ' ', 'g'),
                             '--[^\n]*', ' ', 'g');
    IF v_bare ~* '\(\s*(?:\(\s*)*(?:select|values|table|with)\M' THEN
        RAISE EXCEPTION 'cannot use subquery in trigger WHEN condition' USING ERRCODE = 'feature_not_supported';
    END IF;
    -- Names, types, and no aggregates, window functions or set-returning functions: a JOIN
    -- condition has those rules too, under another name.
    BEGIN
        EXECUTE format('PREPARE pghistory_condition_check AS SELECT FROM ONLY %1$s AS old JOIN ONLY %1$s AS new ON (%2$s)',
                       p_target, p_when);
        EXECUTE 'DEALLOCATE pghistory_condition_check';
    EXCEPTION WHEN grouping_error OR windowing_error OR feature_not_supported OR datatype_mismatch THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
        RAISE EXCEPTION '%', replace(replace(v_message, 'in JOIN conditions', 'in trigger WHEN conditions'),
                                     'argument of JOIN/ON', 'argument of WHEN')
            USING ERRCODE = v_state;
    END;
    -- An insert has no OLD row, a delete no NEW row.
    IF p_operation IN ('insert', 'insert_or_update', 'delete') THEN
        BEGIN
            EXECUTE format('PREPARE pghistory_condition_check AS SELECT FROM ONLY %s AS %s WHERE (%s)',
                           p_target, CASE WHEN p_operation = 'delete' THEN 'old' ELSE 'new' END, p_when);
            EXECUTE 'DEALLOCATE pghistory_condition_check';
        EXCEPTION WHEN undefined_table THEN
            RAISE EXCEPTION '%', CASE WHEN p_operation = 'delete' THEN 'DELETE trigger''s WHEN condition cannot reference NEW values'
                                      ELSE 'INSERT trigger''s WHEN condition cannot reference OLD values' END
                USING ERRCODE = 'invalid_object_definition';
        END;
    END IF;
END
$function$;


CREATE FUNCTION @extschema@._with_condition(p_target regclass, p_label text, p_operation text, p_when text, p_sql text)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Run p_sql (the check of a condition, or the CREATE TRIGGER ... WHEN that uses it) and report what
-- is wrong with the condition as a pghistory error that names the tracker; the SQLSTATE stays
-- PostgreSQL's.
DECLARE
    v_state   text;
    v_message text;
BEGIN
    EXECUTE p_sql;
EXCEPTION WHEN invalid_object_definition OR undefined_column OR undefined_table OR undefined_function
               OR syntax_error OR datatype_mismatch OR undefined_object OR ambiguous_column THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
    RAISE EXCEPTION 'pghistory: invalid condition for tracker "%" of %: %', p_label, p_target, v_message
        USING ERRCODE = v_state,
              DETAIL = format('Condition: %s', p_when),
              HINT = CASE WHEN p_operation IN ('insert', 'insert_or_update')
                          THEN 'A condition over OLD/NEW is a trigger WHEN clause; an insert has no OLD row.'
                          WHEN p_operation = 'delete'
                          THEN 'A condition over OLD/NEW is a trigger WHEN clause; a delete has no NEW row.'
                          ELSE 'A condition is a trigger WHEN clause over OLD and NEW columns; qualify functions with their schema.' END;
END
$function$;
--------------------------------------------------------------------------------------------------
-- Types
--------------------------------------------------------------------------------------------------

-- What one tracker records: built by insert_event(), update_event() and friends, passed to track().
CREATE TYPE @extschema@.tracker AS (
    label     text,   -- pgh_label of its events, unique per tracked table
    operation text,   -- insert, update, delete, insert_or_update, truncate, manual
    snapshot  text,   -- old or new: which row image is stored
    timing    text,   -- after or before (NULL for manual)
    condition text    -- SQL boolean over OLD/NEW (a trigger WHEN clause), NULL for always
);
COMMENT ON TYPE @extschema@.tracker IS
    'A pghistory tracker: what to record (label, operation, snapshot, timing, condition); build it with insert_event(), update_event(), ...';


--------------------------------------------------------------------------------------------------
-- Trackers
--------------------------------------------------------------------------------------------------


CREATE FUNCTION @extschema@._tracker(p_label text, p_operation text, p_snapshot text, p_timing text, p_condition text)
    RETURNS @extschema@.tracker
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- The one place where a tracker is checked: every constructor and track() go through it.
DECLARE
    v_operation text := lower(p_operation);
    v_snapshot  text := lower(coalesce(p_snapshot, CASE WHEN lower(p_operation) IN ('delete', 'truncate') THEN 'old' ELSE 'new' END));
    v_timing    text := lower(p_timing);
BEGIN
    IF p_label IS NULL OR p_label = '' THEN
        RAISE EXCEPTION 'pghistory: a tracker needs a label'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass label => ''...''; it is stored in pgh_label of every event.';
    END IF;
    IF v_operation IS NULL OR v_operation NOT IN ('insert', 'update', 'delete', 'insert_or_update', 'truncate', 'manual') THEN
        RAISE EXCEPTION 'pghistory: unknown operation "%" for tracker "%"', p_operation, p_label
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use insert, update, delete, insert_or_update or truncate.';
    END IF;
    IF v_snapshot NOT IN ('old', 'new') THEN
        RAISE EXCEPTION 'pghistory: unknown snapshot "%" for tracker "%"', p_snapshot, p_label
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use snapshot => ''old'' (the row before the change) or ''new'' (after).';
    END IF;
    IF v_snapshot = 'old' AND v_operation IN ('insert', 'insert_or_update', 'manual') THEN
        RAISE EXCEPTION 'pghistory: tracker "%" cannot store the old row of an %', p_label, replace(v_operation, '_', ' ')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'An inserted row has no old version: use snapshot => ''new''.';
    END IF;
    IF v_snapshot = 'new' AND v_operation IN ('delete', 'truncate') THEN
        RAISE EXCEPTION 'pghistory: tracker "%" cannot store the new row of a %', p_label, v_operation
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A deleted or truncated row has no new version: use snapshot => ''old''.';
    END IF;
    IF v_operation = 'manual' THEN
        IF p_condition IS NOT NULL THEN
            RAISE EXCEPTION 'pghistory: manual tracker "%" cannot have a condition', p_label
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Manual events are written only by pghistory.create_event().';
        END IF;
        v_timing := NULL;
    ELSIF v_operation = 'truncate' THEN
        IF p_condition IS NOT NULL THEN
            RAISE EXCEPTION 'pghistory: truncate tracker "%" cannot have a condition', p_label
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'A truncation records every row of the table.';
        END IF;
        v_timing := 'before';   -- the rows must still be there
    ELSIF v_timing IS NULL OR v_timing NOT IN ('after', 'before') THEN
        RAISE EXCEPTION 'pghistory: unknown timing "%" for tracker "%"', p_timing, p_label
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use timing => ''after'' or ''before''.';
    END IF;
    RETURN ROW(p_label, v_operation, v_snapshot, v_timing, p_condition)::@extschema@.tracker;
END
$function$;

CREATE FUNCTION @extschema@.insert_event(label text DEFAULT 'insert', condition text DEFAULT NULL)
    RETURNS @extschema@.tracker
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._tracker(label, 'insert', 'new', 'after', condition);
COMMENT ON FUNCTION @extschema@.insert_event(text, text) IS
    'Tracker: after each insert, store the new row (default label insert)';

CREATE FUNCTION @extschema@.update_event(label text DEFAULT 'update', snapshot text DEFAULT 'new', condition text DEFAULT NULL)
    RETURNS @extschema@.tracker
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._tracker(label, 'update', snapshot, 'after', condition);
COMMENT ON FUNCTION @extschema@.update_event(text, text, text) IS
    'Tracker: after each update that changes a tracked column (or meets condition), store the new (or old) row';

CREATE FUNCTION @extschema@.delete_event(label text DEFAULT 'delete', condition text DEFAULT NULL)
    RETURNS @extschema@.tracker
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._tracker(label, 'delete', 'old', 'after', condition);
COMMENT ON FUNCTION @extschema@.delete_event(text, text) IS
    'Tracker: after each delete, store the old row (default label delete)';

CREATE FUNCTION @extschema@.manual_event(label text)
    RETURNS @extschema@.tracker
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._tracker(label, 'manual', 'new', NULL, NULL);
COMMENT ON FUNCTION @extschema@.manual_event(text) IS
    'Tracker with no trigger: its events are written by pghistory.create_event()';

CREATE FUNCTION @extschema@.truncate_event(label text DEFAULT 'truncate')
    RETURNS @extschema@.tracker
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._tracker(label, 'truncate', 'old', 'before', NULL);
COMMENT ON FUNCTION @extschema@.truncate_event(text) IS
    'Tracker: before a TRUNCATE, store every row of the table (default label truncate), so truncation never erases history';

CREATE FUNCTION @extschema@.row_event(label text, operation text, snapshot text DEFAULT NULL,
                                      condition text DEFAULT NULL, timing text DEFAULT 'after')
    RETURNS @extschema@.tracker
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._tracker(label, operation, snapshot, timing, condition);
COMMENT ON FUNCTION @extschema@.row_event(text, text, text, text, text) IS
    'Tracker for any row operation (insert, update, delete, insert_or_update), before or after it';

CREATE FUNCTION @extschema@.after_insert(label text, condition text DEFAULT NULL)
    RETURNS @extschema@.tracker LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._tracker(label, 'insert', 'new', 'after', condition);
CREATE FUNCTION @extschema@.after_update(label text, condition text DEFAULT NULL)
    RETURNS @extschema@.tracker LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._tracker(label, 'update', 'new', 'after', condition);
CREATE FUNCTION @extschema@.after_delete(label text, condition text DEFAULT NULL)
    RETURNS @extschema@.tracker LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._tracker(label, 'delete', 'old', 'after', condition);
CREATE FUNCTION @extschema@.before_update(label text, condition text DEFAULT NULL)
    RETURNS @extschema@.tracker LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._tracker(label, 'update', 'new', 'before', condition);
CREATE FUNCTION @extschema@.before_delete(label text, condition text DEFAULT NULL)
    RETURNS @extschema@.tracker LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._tracker(label, 'delete', 'old', 'before', condition);
CREATE FUNCTION @extschema@.after_insert_or_update(label text, condition text DEFAULT NULL)
    RETURNS @extschema@.tracker LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    RETURN @extschema@._tracker(label, 'insert_or_update', 'new', 'after', condition);
COMMENT ON FUNCTION @extschema@.after_insert(text, text) IS 'Tracker: after insert, store the new row under label';
COMMENT ON FUNCTION @extschema@.after_update(text, text) IS 'Tracker: after update, store the new row under label';
COMMENT ON FUNCTION @extschema@.after_delete(text, text) IS 'Tracker: after delete, store the old row under label';
COMMENT ON FUNCTION @extschema@.before_update(text, text) IS 'Tracker: before update, store the new row under label';
COMMENT ON FUNCTION @extschema@.before_delete(text, text) IS 'Tracker: before delete, store the old row under label';
COMMENT ON FUNCTION @extschema@.after_insert_or_update(text, text) IS
    'Tracker: after insert or update, store the new row under label';
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
--------------------------------------------------------------------------------------------------
-- Event tables: guards, partitions, names, ownership
--------------------------------------------------------------------------------------------------


CREATE FUNCTION @extschema@._append_only_trigger()
    RETURNS trigger
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Guard of append-only event tables; enabled ALWAYS, so session_replication_role does not switch it off.
BEGIN
    RAISE EXCEPTION 'pghistory: event table % is append-only', coalesce(pg_partition_root(TG_RELID), TG_RELID)::regclass
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Only its owner removes such history: pghistory.prune(''table'', ...) or pghistory.untrack(..., drop_events => true).';
END
$function$;


CREATE FUNCTION @extschema@._add_partitions(p_event_table regclass, p_period text, p_append_only boolean)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Keep a time-partitioned event table ready: a partition for this period and the next three, and a
-- default partition so that a write never fails when nobody created its period in time. Events that
-- went to the default partition move into their period's partition when it is created. Runs from
-- track(), sync() and prune(); call one of those periodically (e.g. daily) on partitioned histories.
DECLARE
    v_schema  name := (SELECT relnamespace::regnamespace::name FROM pg_class WHERE oid = p_event_table);
    v_name    name := (SELECT relname FROM pg_class WHERE oid = p_event_table);
    v_default regclass;
    v_start   timestamptz;
    v_end     timestamptz;
    v_part    name;
BEGIN
    v_default := to_regclass(format('%I.%I', v_schema, @extschema@._choose_name(v_name, '_default')));
    IF v_default IS NULL THEN
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s DEFAULT',
                       v_schema, @extschema@._choose_name(v_name, '_default'), p_event_table);
        v_default := to_regclass(format('%I.%I', v_schema, @extschema@._choose_name(v_name, '_default')));
        PERFORM @extschema@._guard_partition(v_default, p_append_only);
    END IF;
    FOR v_start IN
        SELECT date_trunc(p_period, now()) + make_interval(days => CASE p_period WHEN 'day' THEN i ELSE 0 END,
                                                            weeks => CASE p_period WHEN 'week' THEN i ELSE 0 END,
                                                            months => CASE p_period WHEN 'month' THEN i ELSE 0 END)
        FROM generate_series(0, 3) AS i
    LOOP
        v_end := v_start + CASE p_period WHEN 'day' THEN interval '1 day' WHEN 'week' THEN interval '1 week'
                                         ELSE interval '1 month' END;
        v_part := @extschema@._choose_name(v_name, to_char(v_start, '"_p"YYYYMMDD'));
        CONTINUE WHEN to_regclass(format('%I.%I', v_schema, v_part)) IS NOT NULL;
        -- Rows of that period in the default partition would block the new one: move them over.
        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', p_event_table, v_default);
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                       v_schema, v_part, p_event_table, v_start, v_end);
        EXECUTE format('WITH moved AS (DELETE FROM %1$s WHERE pgh_created_at >= %2$L AND pgh_created_at < %3$L RETURNING *) '
                       'INSERT INTO %4$I.%5$I SELECT * FROM moved', v_default, v_start, v_end, v_schema, v_part);
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s DEFAULT', p_event_table, v_default);
        PERFORM @extschema@._guard_partition(format('%I.%I', v_schema, v_part)::regclass, p_append_only);
    END LOOP;
END
$function$;


CREATE FUNCTION @extschema@._guard_partition(p_partition regclass, p_append_only boolean)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Row guards are cloned to partitions; TRUNCATE guards are not, so each partition gets its own.
BEGIN
    IF p_append_only AND NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = p_partition
                                     AND tgname = 'pghistory_append_only_truncate') THEN
        EXECUTE format('CREATE TRIGGER pghistory_append_only_truncate BEFORE TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._append_only_trigger()', p_partition);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER pghistory_append_only_truncate', p_partition);
    END IF;
END
$function$;


CREATE FUNCTION @extschema@._resolve_event_table(p_target regclass, p_model_name text)
    RETURNS text[]
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- {schema, name} of an event table: model_name (optionally schema-qualified), else <table>_event
-- beside the tracked table; names over 63 bytes are shortened with a hash, never truncated.
DECLARE
    v_parts text[];
BEGIN
    IF p_model_name IS NULL THEN
        RETURN ARRAY[(SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_target),
                     @extschema@._choose_name((SELECT relname FROM pg_class WHERE oid = p_target), '_event')];
    END IF;
    BEGIN
        v_parts := parse_ident(p_model_name);
    EXCEPTION WHEN invalid_parameter_value THEN
        v_parts := NULL;
    END;
    IF cardinality(v_parts) = 1 THEN
        RETURN ARRAY[(SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_target),
                     @extschema@._choose_name(v_parts[1], '')];
    ELSIF cardinality(v_parts) = 2 THEN
        IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = v_parts[1]) THEN
            RAISE EXCEPTION 'pghistory: schema "%" of model_name "%" does not exist', v_parts[1], p_model_name
                USING ERRCODE = 'invalid_schema_name',
                      HINT = 'Create the schema first, or leave it out to use the schema of the tracked table.';
        END IF;
        RETURN ARRAY[v_parts[1], @extschema@._choose_name(v_parts[2], '')];
    END IF;
    RAISE EXCEPTION 'pghistory: invalid model_name "%"', p_model_name
        USING ERRCODE = 'invalid_name',
              HINT = 'Use a table name, optionally schema-qualified: ''my_history'' or ''audit.my_history''; quote names with double quotes.';
END
$function$;


CREATE FUNCTION @extschema@._check_owner(p_target regclass, p_action text)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Tracking a table is its owner's decision, as is any trigger on it.
BEGIN
    IF NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = p_target AND pg_has_role(current_user, c.relowner, 'USAGE')) THEN
        RAISE EXCEPTION 'pghistory: must be owner of table % to % it', p_target, p_action
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Run it as the owner of %s (%s) or a member of that role.', p_target,
                                (SELECT c.relowner::regrole FROM pg_class c WHERE c.oid = p_target));
    END IF;
    -- Serialise track/untrack of one table: two sessions must not interleave their DDL.
    PERFORM pg_advisory_xact_lock(hashtext('pghistory.track'), hashtext(p_target::oid::text));
END
$function$;
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
--------------------------------------------------------------------------------------------------
-- Event triggers
--------------------------------------------------------------------------------------------------


CREATE FUNCTION @extschema@._forget_dropped()
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- A dropped tracked table or event table leaves registry rows (and, for an event table, triggers that
-- would make every write fail). The event trigger below calls this at once where the extension was
-- created by a superuser; track() and untrack() call it too. Only what the caller owns is touched.
DECLARE
    v_item record;
BEGIN
    FOR v_item IN
        SELECT g.tgname, g.tgrelid::regclass AS relation FROM @extschema@._event_table e
        JOIN pg_trigger g ON g.tgfoid = e.trigger_function AND g.tgparentid = 0
        JOIN pg_class c ON c.oid = g.tgrelid AND pg_has_role(current_user, c.relowner, 'USAGE')
        WHERE NOT EXISTS (SELECT FROM pg_class x WHERE x.oid = e.event_table)
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_item.tgname, v_item.relation);
    END LOOP;
    FOR v_item IN
        SELECT e.trigger_function FROM @extschema@._event_table e
        JOIN pg_proc p ON p.oid = e.trigger_function AND pg_has_role(current_user, p.proowner, 'USAGE')
        WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = e.event_table)
           OR NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = e.target)
    LOOP
        EXECUTE format('DROP FUNCTION %s', v_item.trigger_function);
    END LOOP;
    DELETE FROM @extschema@._tracker t
    WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.event_table)
       OR NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.target);
    DELETE FROM @extschema@._event_table e
    WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = e.event_table)
       OR NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = e.target);
END
$function$;


CREATE FUNCTION @extschema@._drop_start_trigger()
    RETURNS event_trigger
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Before a DROP: pghistory.events reads every event table, so it would block dropping one. Empty it
-- for the command; _ddl_end_trigger() rebuilds it (all in the dropping transaction). As the
-- extension owner, who alone may rebuild the view.
BEGIN
    IF to_regclass('@extschema@.events') IS NOT NULL THEN
        PERFORM @extschema@._refresh_events_view(true);
    END IF;
END
$function$;


CREATE FUNCTION @extschema@._ddl_end_trigger()
    RETURNS event_trigger
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- After a DROP: forget what was tracked in what went, and rebuild pghistory.events.
-- After ALTER TABLE on a tracked table or an event table: sync() it in the same transaction when the
-- change concerns history (other changes, such as DISABLE TRIGGER, are left for verify() to report).
DECLARE
    v_target regclass;
BEGIN
    IF TG_TAG <> 'ALTER TABLE' THEN
        PERFORM @extschema@._forget_dropped();   -- which rebuilds pghistory.events (its trigger)
        RETURN;
    END IF;
    IF current_setting('pghistory.busy', true) = 'on' THEN
        RETURN;   -- ALTER TABLE issued by track()/sync()/prune() themselves
    END IF;
    FOR v_target IN
        SELECT DISTINCT e.target FROM pg_event_trigger_ddl_commands() d
        JOIN @extschema@._event_table e ON d.objid IN (e.target, e.event_table)
        WHERE d.classid = 'pg_class'::regclass AND e.trigger_function IS NOT NULL
          AND @extschema@._needs_sync(e.event_table)
    LOOP
        PERFORM @extschema@.sync(v_target);
    END LOOP;
END
$function$;


-- Event triggers need a superuser. Without them, track()/untrack() tidy up after dropped tables and
-- pghistory.sync() follows schema changes when called.
DO $do$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        CREATE EVENT TRIGGER pghistory_ddl_end ON ddl_command_end
            WHEN TAG IN ('ALTER TABLE', 'DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
            EXECUTE FUNCTION @extschema@._ddl_end_trigger();
        CREATE EVENT TRIGGER pghistory_drop_start ON ddl_command_start
            WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
            EXECUTE FUNCTION @extschema@._drop_start_trigger();
    END IF;
END
$do$;
--------------------------------------------------------------------------------------------------
-- Grants
--------------------------------------------------------------------------------------------------

-- Everyone may call the API and read the registry. track() and friends run with the caller's rights
-- (the objects they create belong to the table's owner) and call the "_" helpers, so the helpers
-- that run with the caller's rights stay executable: each is pure or checks ownership itself, and
-- row-level security keeps registry rows writable only by the owners of the tables they describe.
-- What runs with the extension owner's rights is executable by nobody else: triggers and event
-- triggers run without EXECUTE. (set_context() and current_context_id() are such functions of the
-- API: they write the session's context row.)
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
GRANT SELECT ON @extschema@.tracking, @extschema@.events, @extschema@.context TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@._event_table, @extschema@._tracker TO PUBLIC;
REVOKE ALL ON FUNCTION @extschema@._refresh_events_view(boolean), @extschema@._registry_trigger(),
                       @extschema@._drop_start_trigger(), @extschema@._ddl_end_trigger() FROM PUBLIC;
-- (_append_only_trigger stays executable: table owners attach it through track(), and all it does is
-- refuse a write.)
