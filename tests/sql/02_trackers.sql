-- Trackers and labels: which operations are recorded, under which label, and which row image.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_trackers;
SET search_path = test_trackers;

-- Custom labels; snapshot => 'old' stores the row as it was before the update.
CREATE TABLE snapshot_model (id int PRIMARY KEY, val text);
SELECT pghistory.track('snapshot_model',
    pghistory.insert_event('created'),
    pghistory.update_event('before_change', snapshot => 'old'),
    pghistory.update_event('after_change'),
    pghistory.delete_event('removed'));
INSERT INTO snapshot_model VALUES (1, 'first');
UPDATE snapshot_model SET val = 'second';
DELETE FROM snapshot_model;
SELECT pgh_label, pgh_obj_id, val FROM snapshot_model_event ORDER BY pgh_id, pgh_label;

-- Only deletes.
CREATE TABLE delete_model (id int PRIMARY KEY, val text);
SELECT pghistory.track('delete_model', pghistory.delete_event());
INSERT INTO delete_model VALUES (1, 'a'), (2, 'b');
UPDATE delete_model SET val = 'c';
DELETE FROM delete_model WHERE id = 2;
SELECT pgh_label, pgh_obj_id, val FROM delete_model_event ORDER BY pgh_id;

-- The trackers as one array argument.
CREATE TABLE array_model (id int PRIMARY KEY, val text);
SELECT pghistory.track('array_model', trackers => ARRAY[pghistory.insert_event(), pghistory.delete_event()]);
SELECT jsonb_path_query_array(trackers, '$[*].label') FROM pghistory.tracking WHERE target = 'array_model'::regclass;

-- row_event: any operation, timing and snapshot; and the short forms after_*/before_*.
CREATE TABLE row_model (id int PRIMARY KEY, val text);
SELECT pghistory.track('row_model',
    pghistory.row_event('ins', 'insert'),
    pghistory.row_event('upd_old', 'update', snapshot => 'old', timing => 'before'),
    pghistory.after_update('upd_new'),
    pghistory.before_delete('del'),
    pghistory.after_insert_or_update('any_write'));
INSERT INTO row_model VALUES (1, 'a');
UPDATE row_model SET val = 'b';
DELETE FROM row_model;
SELECT pgh_label, val FROM row_model_event ORDER BY pgh_id;
SELECT t->>'label' AS label, t->>'operation' AS operation, t->>'snapshot' AS snapshot, t->>'timing' AS timing
FROM pghistory.tracking, jsonb_array_elements(trackers) t WHERE target = 'row_model'::regclass ORDER BY 1;

-- A before trigger records the row and lets the write go on.
SELECT count(*) FROM row_model;

-- Manual events: create_event() snapshots the current row under a manual_event label.
CREATE TABLE my_user (id int PRIMARY KEY, username text, email text);
SELECT pghistory.track('my_user', pghistory.manual_event('user_create'), pghistory.update_event());
INSERT INTO my_user VALUES (1, 'ann', 'ann@example.com');
SELECT pghistory.create_event('my_user', 1, 'user_create') > 0 AS created;
-- The key may also be given as text (e.g. from a client that does not know its type).
SELECT pghistory.create_event('my_user', '1', 'user_create') > 0 AS created;
-- Any tracker's label works too, e.g. to backfill an update event.
SELECT pghistory.create_event('my_user'::regclass, 1, 'update') > 0 AS created;
SELECT pgh_label, pgh_obj_id, username, email FROM my_user_event ORDER BY pgh_id;

-- Re-tracking the same event table replaces its configuration; the history stays.
SELECT pghistory.track('my_user', pghistory.manual_event('user_create'), pghistory.delete_event());
DELETE FROM my_user;
SELECT pgh_label, pgh_obj_id FROM my_user_event ORDER BY pgh_id;
SELECT jsonb_path_query_array(trackers, '$[*].label') FROM pghistory.tracking WHERE target = 'my_user'::regclass;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'my_user'::regclass ORDER BY tgname;

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_trackers CASCADE;
DROP EXTENSION pghistory;
