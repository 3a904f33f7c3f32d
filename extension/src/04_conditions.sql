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
