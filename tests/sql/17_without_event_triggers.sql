-- An extension created by a role that is not a superuser has no event triggers to follow schema
-- changes. Then a statement on a tracked table whose columns or name changed fails with a
-- pghistory: error that says to run pghistory.sync(); nothing is written half-way, and after
-- sync() the history goes on under the new names.
\set VERBOSITY terse
CREATE ROLE regress_pgh_owner;
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS pghistory;   -- left empty by the files before: the role creates its own
RESET client_min_messages;
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_pgh_owner', current_database()); END $$;
SET ROLE regress_pgh_owner;
CREATE EXTENSION pghistory;
SELECT count(*) AS event_triggers FROM pg_event_trigger;
CREATE SCHEMA test_no_event_triggers;
SET search_path = test_no_event_triggers;
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Row-level and statement-level trackers, and a truncate tracker.
CREATE TABLE item (id int PRIMARY KEY, name text, qty int);
SELECT pghistory.track('item', pghistory.insert_event(), pghistory.update_event(), pghistory.delete_event(),
                       pghistory.truncate_event(), pghistory.after_insert_or_update('saved'));
INSERT INTO item VALUES (1, 'bolt', 10);

-- A renamed column: every kind of write is refused until sync().
ALTER TABLE item RENAME COLUMN qty TO quantity;
INSERT INTO item VALUES (2, 'nut', 5);
\echo :LAST_ERROR_SQLSTATE
UPDATE item SET quantity = 11;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM item;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE item;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows_kept FROM item;
SELECT pghistory.sync('item');
INSERT INTO item VALUES (2, 'nut', 5);

-- An added column (every column is tracked), a dropped one, a changed type.
ALTER TABLE item ADD COLUMN price numeric;
UPDATE item SET price = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.sync('item');
UPDATE item SET price = 1.5 WHERE id = 1;
ALTER TABLE item DROP COLUMN name;
DELETE FROM item WHERE id = 2;
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.sync('item');
DELETE FROM item WHERE id = 2;
ALTER TABLE item ALTER COLUMN quantity TYPE bigint;
UPDATE item SET quantity = 12;
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.sync('item');
UPDATE item SET quantity = 12;

-- Renaming the table matters only to the truncate tracker, which names it; the event table's name
-- matters to every tracker.
ALTER TABLE item RENAME TO stock;
UPDATE stock SET quantity = 13;
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.sync('stock');
ALTER TABLE item_event RENAME TO stock_history;
UPDATE stock SET quantity = 14;
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.sync('stock');
UPDATE stock SET quantity = 14;
TRUNCATE stock;

-- Columns that are not tracked can change freely.
CREATE TABLE note (id int PRIMARY KEY, body text, draft text);
SELECT pghistory.track('note', fields => ARRAY['body']);
ALTER TABLE note RENAME COLUMN draft TO scratch;
ALTER TABLE note ADD COLUMN tag text;
ALTER TABLE note RENAME TO memo;
INSERT INTO memo VALUES (1, 'hello', 'x', 'y');

SELECT pgh_label, id, name, quantity, price FROM stock_history ORDER BY pgh_id;
SELECT pgh_label, pgh_obj_id, body FROM note_event ORDER BY pgh_id;
SELECT * FROM pghistory.verify();

-- Leave the database as it was for the next file. (Without the event trigger that empties
-- pghistory.events first, DROP ... CASCADE of an event table would reach that view, a member of the
-- extension, and so drop the extension: untrack with drop_events instead.)
\set VERBOSITY terse
SELECT pghistory.untrack('stock', drop_events => true), pghistory.untrack('memo', drop_events => true);
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_no_event_triggers CASCADE;
DROP EXTENSION pghistory;
DROP SCHEMA pghistory;   -- CREATE EXTENSION made it, owned by this role
RESET ROLE;
DO $$ BEGIN EXECUTE format('REVOKE CREATE ON DATABASE %I FROM regress_pgh_owner', current_database()); END $$;
DROP ROLE regress_pgh_owner;
