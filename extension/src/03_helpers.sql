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
