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
