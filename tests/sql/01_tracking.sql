-- Default tracking: track() creates <table>_event beside the table, with insert and update trackers
-- over every column. Each event stores the row as it was written.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_tracking;
SET search_path = test_tracking;

CREATE TABLE tracked_model (id serial PRIMARY KEY, int_field integer, char_field text);
SELECT pghistory.track('tracked_model');

-- The event table: pgh_ columns, the object reference, the context, then the tracked columns.
SELECT attname, format_type(atttypid, atttypmod), attnotnull
FROM pg_attribute WHERE attrelid = 'tracked_model_event'::regclass AND attnum > 0 ORDER BY attnum;
SELECT indexdef FROM pg_indexes WHERE tablename = 'tracked_model_event' ORDER BY indexname;

INSERT INTO tracked_model (int_field, char_field) VALUES (1, 'one'), (2, 'two');
UPDATE tracked_model SET int_field = 10 WHERE id = 1;
-- An update that changes nothing records nothing.
UPDATE tracked_model SET int_field = 10 WHERE id = 1;
-- Deletes are not tracked by default.
DELETE FROM tracked_model WHERE id = 2;
SELECT pgh_id, pgh_label, pgh_obj_id, id, int_field, char_field FROM tracked_model_event ORDER BY pgh_id;
-- pgh_created_at is the transaction time.
SELECT count(*) FROM tracked_model_event WHERE pgh_created_at > now() - interval '1 hour';

-- fields => tracks some columns: updates of other columns record nothing.
CREATE TABLE fields_model (id int PRIMARY KEY, int_field integer, char_field text);
SELECT pghistory.track('fields_model', fields => ARRAY['int_field']);
SELECT attname FROM pg_attribute WHERE attrelid = 'fields_model_event'::regclass AND attnum > 0 ORDER BY attnum;
INSERT INTO fields_model VALUES (1, 1, 'a');
UPDATE fields_model SET char_field = 'b';
UPDATE fields_model SET int_field = 2;
SELECT pgh_label, pgh_obj_id, int_field FROM fields_model_event ORDER BY pgh_id;

-- exclude => tracks every column but those.
CREATE TABLE exclude_model (id int PRIMARY KEY, int_field integer, char_field text);
SELECT pghistory.track('exclude_model', exclude => ARRAY['int_field']);
SELECT attname FROM pg_attribute WHERE attrelid = 'exclude_model_event'::regclass AND attnum > 0 ORDER BY attnum;
INSERT INTO exclude_model VALUES (1, 1, 'a');
UPDATE exclude_model SET int_field = 2;
UPDATE exclude_model SET char_field = 'b';
SELECT pgh_label, pgh_obj_id, id, char_field FROM exclude_model_event ORDER BY pgh_id;

-- The registry, as psql users see it.
SELECT target, event_table, fields, obj_field, context_mode, active,
       jsonb_path_query_array(trackers, '$[*].label') AS labels
FROM pghistory.tracking ORDER BY event_table::text;

-- A rolled-back write leaves no event.
BEGIN;
INSERT INTO tracked_model (int_field) VALUES (99);
ROLLBACK;
SELECT count(*) FROM tracked_model_event WHERE int_field = 99;

-- A 10,000-row bulk update produces 10,000 events.
INSERT INTO tracked_model (int_field) SELECT g FROM generate_series(1, 10000) g;
UPDATE tracked_model SET char_field = 'bulk' WHERE int_field <= 10000 AND id > 2;
SELECT pgh_label, count(*) FROM tracked_model_event WHERE id > 2 GROUP BY pgh_label ORDER BY 1;

-- Writers need no privilege on the event table; nobody but the owner may read it until granted.
CREATE ROLE regress_pgh_writer;
GRANT USAGE ON SCHEMA test_tracking TO regress_pgh_writer;
GRANT INSERT, UPDATE, SELECT ON tracked_model TO regress_pgh_writer;
GRANT USAGE ON SEQUENCE tracked_model_id_seq TO regress_pgh_writer;
SET ROLE regress_pgh_writer;
INSERT INTO tracked_model (int_field, char_field) VALUES (-1, 'by writer');
SELECT count(*) FROM tracked_model_event;
RESET ROLE;
SELECT pgh_label, int_field, char_field FROM tracked_model_event WHERE int_field = -1;
DROP OWNED BY regress_pgh_writer;
DROP ROLE regress_pgh_writer;

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_tracking CASCADE;
DROP EXTENSION pghistory;
