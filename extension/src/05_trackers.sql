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
