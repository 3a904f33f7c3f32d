-- Dropping tables: history is never in the way of a write, and what was tracked is forgotten cleanly.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_drop;
SET search_path = test_drop;

CREATE TABLE orders (id int PRIMARY KEY, status text);
SELECT pghistory.track('orders');
INSERT INTO orders VALUES (1, 'new');

-- Dropping the event table removes the triggers that wrote to it: writes go on.
DROP TABLE orders_event;
INSERT INTO orders VALUES (2, 'new');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'orders'::regclass;
SELECT count(*) AS registered FROM pghistory.tracking;
-- ... and the table can be tracked again from scratch.
SELECT pghistory.track('orders');
UPDATE orders SET status = 'paid' WHERE id = 2;
SELECT pgh_label, pgh_obj_id, status FROM orders_event;

-- Dropping the tracked table keeps its history as a plain table.
DROP TABLE orders;
SELECT pgh_label, pgh_obj_id, status FROM orders_event;
SELECT count(*) AS registered FROM pghistory.tracking;
SELECT count(*) AS generated_functions FROM pg_proc WHERE proname LIKE 'pghistory_orders%';

-- Without the event trigger (an extension created by a non-superuser has none), track() cleans up.
ALTER EVENT TRIGGER pghistory_ddl_end DISABLE;
CREATE TABLE invoice (id int PRIMARY KEY);
SELECT pghistory.track('invoice');
DROP TABLE invoice_event;
SELECT count(*) AS stale FROM pghistory._event_table;
CREATE TABLE other (id int PRIMARY KEY);
SELECT pghistory.track('other');
SELECT target FROM pghistory.tracking;
INSERT INTO invoice VALUES (1);
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'invoice'::regclass;
ALTER EVENT TRIGGER pghistory_ddl_end ENABLE;

-- Even DROP EXTENSION does not break writes: the generated triggers go on recording (without
-- context). After CREATE EXTENSION, track() takes the event table over and the history goes on.
CREATE TABLE kept (id int PRIMARY KEY, v int);
SELECT pghistory.track('kept', pghistory.insert_event(), pghistory.before_update('changed'));
SET client_min_messages = warning;
DROP EXTENSION pghistory;
RESET client_min_messages;
INSERT INTO kept VALUES (1, 1);
UPDATE kept SET v = 2;
SELECT pgh_label, v FROM kept_event ORDER BY pgh_id;
CREATE EXTENSION pghistory;
SELECT pghistory.track('kept', pghistory.insert_event(), pghistory.before_update('changed'));
UPDATE kept SET v = 3;
SELECT pgh_id, pgh_label, v FROM kept_event ORDER BY pgh_id;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'kept'::regclass;
-- And when the event table went too, track() starts a new history and replaces the triggers that
-- still called the function it generates again.
SET client_min_messages = warning;
DROP EXTENSION pghistory;
RESET client_min_messages;
DROP TABLE kept_event;
CREATE EXTENSION pghistory;
SELECT pghistory.track('kept', pghistory.insert_event(), pghistory.before_update('changed'));
UPDATE kept SET v = 4;
SELECT pgh_id, pgh_label, v FROM kept_event ORDER BY pgh_id;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'kept'::regclass;

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_drop CASCADE;
DROP EXTENSION pghistory;
