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
