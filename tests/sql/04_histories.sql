-- Several histories of one table, untrack and tracking again.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_histories;
SET search_path = test_histories;

CREATE TABLE item (id int PRIMARY KEY, name text, price numeric);
-- Full history in item_event, and a second event table with only price changes.
SELECT pghistory.track('item');
SELECT pghistory.track('item', pghistory.update_event('price_changed', condition => pghistory.any_change('price')),
                       fields => ARRAY['price'], model_name => 'item_price_history');
INSERT INTO item VALUES (1, 'pen', 2);
UPDATE item SET name = 'blue pen';
UPDATE item SET price = 3;
SELECT pgh_label, name, price FROM item_event ORDER BY pgh_id;
SELECT pgh_label, price FROM item_price_history ORDER BY pgh_id;
SELECT event_table, fields FROM pghistory.tracking WHERE target = 'item'::regclass ORDER BY 1;

-- untrack(model_name => ...) stops one history; writes go on, that history stays readable.
SELECT pghistory.untrack('item', model_name => 'item_price_history');
UPDATE item SET price = 4;
SELECT pgh_label, price FROM item_price_history ORDER BY pgh_id;
SELECT count(*) FROM item_event WHERE price = 4;
SELECT event_table, active FROM pghistory.tracking WHERE target = 'item'::regclass ORDER BY 1;

-- untrack() of everything; tracking again appends to the same history.
SELECT pghistory.untrack('item');
UPDATE item SET price = 5;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'item'::regclass;
SELECT pghistory.track('item');
UPDATE item SET price = 6;
SELECT pgh_id, pgh_label, price FROM item_event ORDER BY pgh_id;

-- Re-tracking with more fields adds the columns; earlier events have NULL there.
CREATE TABLE note (id int PRIMARY KEY, a text, b text);
SELECT pghistory.track('note', fields => ARRAY['a']);
INSERT INTO note VALUES (1, 'a1', 'b1');
SELECT pghistory.track('note', fields => ARRAY['a', 'b']);
UPDATE note SET b = 'b2';
SELECT pgh_label, a, b FROM note_event ORDER BY pgh_id;

-- drop_events => true removes the history too.
SELECT pghistory.untrack('note', drop_events => true);
SELECT to_regclass('note_event') IS NULL AS dropped, count(*) AS registered
FROM pghistory.tracking WHERE target = 'note'::regclass;

-- append_only => true: history cannot be changed or truncated, whatever the role or replication mode.
CREATE TABLE ledger (id int PRIMARY KEY, amount numeric);
SELECT pghistory.track('ledger', append_only => true);
INSERT INTO ledger VALUES (1, 10);
UPDATE ledger_event SET amount = 0;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM ledger_event;
TRUNCATE ledger_event;
SET session_replication_role = replica;
DELETE FROM ledger_event;
RESET session_replication_role;
SELECT pgh_label, amount FROM ledger_event;
SELECT pghistory.untrack('ledger', drop_events => true);
SELECT to_regclass('ledger_event') IS NULL AS dropped;

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_histories CASCADE;
DROP EXTENSION pghistory;
