-- Travelling in history: the table as it was (as_of), putting an object back (revert), recording
-- rows that predate tracking (backfill), and keeping history bounded (prune).
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_travel;
SET search_path = test_travel;

CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric);
INSERT INTO orders VALUES (1, 'old', 5);          -- before tracking began
SELECT pghistory.track('orders', pghistory.insert_event(), pghistory.update_event(), pghistory.delete_event());
-- backfill() records the rows that were there before, so that as_of() sees them.
SELECT pghistory.backfill('orders');
SELECT pgh_label, id, status FROM orders_event;

SELECT clock_timestamp() AS t0 \gset
INSERT INTO orders VALUES (2, 'new', 10), (3, 'new', 30);
SELECT clock_timestamp() AS t1 \gset
UPDATE orders SET status = 'paid' WHERE id = 2;
DELETE FROM orders WHERE id = 3;
SELECT clock_timestamp() AS t2 \gset
UPDATE orders SET total = 12 WHERE id = 2;

SELECT * FROM pghistory.as_of(NULL::orders, :'t0') ORDER BY id;
SELECT * FROM pghistory.as_of(NULL::orders, :'t1') ORDER BY id;
SELECT * FROM pghistory.as_of(NULL::orders, :'t2') ORDER BY id;
-- Now equals the table itself.
SELECT count(*) AS differences FROM (
    (SELECT * FROM pghistory.as_of(NULL::orders, now()) EXCEPT SELECT * FROM orders)
    UNION ALL (SELECT * FROM orders EXCEPT SELECT * FROM pghistory.as_of(NULL::orders, now()))) d;

-- revert(): put an object back as an event recorded it. Of an update ...
SELECT pgh_id AS paid_event FROM orders_event WHERE pgh_label = 'update' AND id = 2 AND total = 10 \gset
SELECT pghistory.revert('orders_event', :paid_event);
SELECT * FROM orders WHERE id = 2;
-- ... of a delete (the row comes back) ...
SELECT pgh_id AS delete_event FROM orders_event WHERE pgh_label = 'delete' \gset
SELECT pghistory.revert('orders_event', :delete_event);
SELECT * FROM orders ORDER BY id;
-- ... of an object that changed since (it is put back whole).
UPDATE orders SET status = 'shipped', total = 99 WHERE id = 1;
SELECT pgh_id AS backfill_event FROM orders_event WHERE pgh_label = 'backfill' \gset
SELECT pghistory.revert('orders_event', :backfill_event);
SELECT * FROM orders WHERE id = 1;
-- Reverts are writes like any other: they are in the history.
SELECT pgh_label, id, status, total FROM orders_event WHERE pgh_id > :delete_event ORDER BY pgh_id;

-- prune(): keep the 2 newest events per object ...
SELECT pgh_obj_id, count(*) FROM orders_event GROUP BY 1 ORDER BY 1;
SELECT pghistory.prune('orders', keep_last => 2);
SELECT pgh_obj_id, count(*) FROM orders_event GROUP BY 1 ORDER BY 1;
-- ... or only events older than an interval (none here).
SELECT pghistory.prune(older_than => '1 day');
-- Append-only history is pruned only when its owner names the table.
CREATE TABLE ledger (id int PRIMARY KEY, amount int);
SELECT pghistory.track('ledger', append_only => true);
INSERT INTO ledger VALUES (1, 1);
UPDATE ledger SET amount = 2;
SELECT pghistory.prune(keep_last => 1);
SELECT pghistory.prune('ledger', keep_last => 1);
DELETE FROM ledger_event;
SELECT * FROM pghistory.verify();

-- What cannot be answered is an error that says what is missing.
CREATE TABLE partial (id int PRIMARY KEY, a int, b int);
SELECT pghistory.track('partial', fields => ARRAY['a']);
SELECT * FROM pghistory.as_of(NULL::partial, now());
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.revert('partial_event', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pghistory.as_of(NULL::ledger, now());
SELECT pghistory.prune('orders');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.revert('orders_event', 123456);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pghistory.as_of(1, now());
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.backfill('orders', model_name => 'nope');
\echo :LAST_ERROR_SQLSTATE

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_travel CASCADE;
DROP EXTENSION pghistory;
