-- pghistory.related_events(): an object's events merged with those of the tracked rows that
-- reference it by a foreign key (an order and its lines), oldest first; only what the caller may read.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_related;
SET search_path = test_related;

CREATE TABLE customer (id int PRIMARY KEY, name text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customer, status text);
CREATE TABLE order_line (id int PRIMARY KEY, order_id int REFERENCES orders, qty int);
CREATE TABLE note (id serial PRIMARY KEY, order_id int REFERENCES orders, body text);  -- not tracked
SELECT pghistory.track('customer');
SELECT pghistory.track('orders');
SELECT pghistory.track('order_line', pghistory.insert_event(), pghistory.update_event(), pghistory.delete_event());

INSERT INTO customer VALUES (1, 'ann'), (2, 'bob');
INSERT INTO orders VALUES (10, 1, 'new'), (11, 2, 'new');
INSERT INTO order_line VALUES (100, 10, 1), (101, 10, 2), (102, 11, 5);
INSERT INTO note (order_id, body) VALUES (10, 'call first');
UPDATE orders SET status = 'paid' WHERE id = 10;
UPDATE order_line SET qty = 3 WHERE id = 100;
UPDATE order_line SET order_id = 11 WHERE id = 101;    -- the line moves to the other order
DELETE FROM order_line WHERE id = 100;

-- Order 10: its own events and those of its lines while they belonged to it (line 101 until it moved).
SELECT pgh_model, pgh_label, pgh_obj_id, pgh_diff FROM pghistory.related_events('orders', '10');

-- Order 11: line 102, and line 101 from the moment it pointed here.
SELECT pgh_model, pgh_label, pgh_obj_id, pgh_diff FROM pghistory.related_events('orders', '11');

-- One level only: a customer's orders, not their lines.
SELECT pgh_model, pgh_label, pgh_obj_id FROM pghistory.related_events('customer', '1');

-- The rows are rows of pghistory.events.
SELECT count(*) AS related, count(e.pgh_slug) AS same_in_events
FROM pghistory.related_events('orders', '10') r
LEFT JOIN pghistory.events e ON e.pgh_slug = r.pgh_slug AND e.pgh_data = r.pgh_data
     AND e.pgh_diff IS NOT DISTINCT FROM r.pgh_diff AND e.pgh_created_at = r.pgh_created_at;

-- An object without history, an untracked table, bad input.
SELECT count(*) FROM pghistory.related_events('orders', '999');
SELECT count(*) FROM pghistory.related_events('note', '1');
SELECT count(*) FROM pghistory.related_events('orders', 'ten');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM pghistory.related_events(NULL, '1');
\echo :LAST_ERROR_SQLSTATE

-- A role that may read the orders' history but not the lines' sees only the orders' events.
CREATE ROLE related_reader;
GRANT USAGE ON SCHEMA test_related TO related_reader;
GRANT SELECT ON orders_event TO related_reader;
SET ROLE related_reader;
SELECT pgh_model, pgh_label, pgh_obj_id FROM pghistory.related_events('orders', '10');
RESET ROLE;

-- A self-reference (a manager and their reports) lists the object's own events once.
CREATE TABLE employee (id int PRIMARY KEY, manager_id int REFERENCES employee, name text);
SELECT pghistory.track('employee');
INSERT INTO employee VALUES (1, NULL, 'boss'), (2, 1, 'dev'), (3, 1, 'ops');
UPDATE employee SET name = 'chief' WHERE id = 1;
SELECT pgh_label, pgh_obj_id, pgh_diff FROM pghistory.related_events('employee', '1');

RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_related CASCADE;
DROP ROLE related_reader;
DROP EXTENSION pghistory;
