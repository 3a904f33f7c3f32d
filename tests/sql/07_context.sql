-- Context: who and why. set_context() attaches metadata to every event of the transaction;
-- events carry its id (pgh_context_id) and pghistory.context holds the merged metadata.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_context;
SET search_path = test_context;

CREATE TABLE orders (id int PRIMARY KEY, status text);
SELECT pghistory.track('orders', pghistory.insert_event(), pghistory.update_event(), pghistory.delete_event());

-- Two events of one transaction share one context; metadata merges.
BEGIN;
SELECT pghistory.set_context('{"user": 42, "url": "/orders"}') IS NOT NULL AS started;
INSERT INTO orders VALUES (1, 'new');
SELECT pghistory.set_context('{"reason": "customer call"}') = pghistory.current_context_id() AS same_context;
UPDATE orders SET status = 'paid';
COMMIT;
SELECT count(DISTINCT pgh_context_id) AS contexts, count(*) AS events FROM orders_event;
SELECT c.metadata, c.set_by = current_user AS set_by_me
FROM pghistory.context c JOIN orders_event e ON e.pgh_context_id = c.id GROUP BY c.id;

-- The next transaction of the same connection starts clean.
INSERT INTO orders VALUES (2, 'new');
SELECT pgh_context_id IS NULL AS no_context FROM orders_event WHERE pgh_obj_id = 2;
SELECT pghistory.current_context_id() IS NULL AS none_active;

-- Each transaction gets its own context.
BEGIN;
SELECT pghistory.set_context('{"job": "nightly"}') IS NOT NULL;
UPDATE orders SET status = 'archived' WHERE id = 1;
COMMIT;
SELECT count(DISTINCT pgh_context_id) FROM orders_event WHERE pgh_obj_id = 1;

-- clear_context() ends it early.
BEGIN;
SELECT pghistory.set_context('{"user": 7}') IS NOT NULL;
UPDATE orders SET status = 'a' WHERE id = 2;
SELECT pghistory.clear_context();
UPDATE orders SET status = 'b' WHERE id = 2;
COMMIT;
SELECT status, pgh_context_id IS NOT NULL AS has_context FROM orders_event WHERE pgh_obj_id = 2 ORDER BY pgh_id;

-- A context set in a rolled-back savepoint is gone with it; the outer one stays.
BEGIN;
SELECT pghistory.set_context('{"user": 1}') IS NOT NULL;
SAVEPOINT s;
SELECT pghistory.set_context('{"user": 2, "temp": true}') IS NOT NULL;
ROLLBACK TO SAVEPOINT s;
UPDATE orders SET status = 'c' WHERE id = 2;
COMMIT;
SELECT c.metadata FROM orders_event e JOIN pghistory.context c ON c.id = e.pgh_context_id
WHERE e.pgh_obj_id = 2 AND e.status = 'c';

-- create_event() events carry the context too.
SELECT pghistory.track('orders', pghistory.manual_event('audit'), model_name => 'orders_audit');
BEGIN;
SELECT pghistory.set_context('{"auditor": "ann"}') IS NOT NULL;
SELECT pghistory.create_event('orders', 1, 'audit') IS NOT NULL;
COMMIT;
SELECT c.metadata FROM orders_audit e JOIN pghistory.context c ON c.id = e.pgh_context_id;

-- context_mode => 'json' stores the metadata as it was when each event was written.
CREATE TABLE payment (id int PRIMARY KEY, amount numeric);
SELECT pghistory.track('payment', context_mode => 'json');
SELECT attname FROM pg_attribute WHERE attrelid = 'payment_event'::regclass AND attname LIKE 'pgh_context%';
BEGIN;
SELECT pghistory.set_context('{"user": 1}') IS NOT NULL;
INSERT INTO payment VALUES (1, 10);
SELECT pghistory.set_context('{"step": 2}') IS NOT NULL;
UPDATE payment SET amount = 20;
COMMIT;
SELECT pgh_label, amount, pgh_context FROM payment_event ORDER BY pgh_id;

-- context_mode => 'none' stores no context.
CREATE TABLE plain (id int PRIMARY KEY);
SELECT pghistory.track('plain', context_mode => 'none');
SELECT count(*) FROM pg_attribute WHERE attrelid = 'plain_event'::regclass AND attname LIKE 'pgh_context%';

-- django-pghistory's protocol: the client sets transaction-local settings itself.
BEGIN;
SET LOCAL pghistory.context_id = '6b1c1a28-0d1e-4c8f-9d4a-2f0a1e3b5c7d';
SET LOCAL pghistory.context_metadata = '{"user": 5, "url": "/admin"}';
INSERT INTO orders VALUES (3, 'from django');
COMMIT;
SELECT e.pgh_context_id, c.metadata
FROM orders_event e JOIN pghistory.context c ON c.id = e.pgh_context_id WHERE e.pgh_obj_id = 3;
-- The same client may reuse its id in a later transaction (a django context block spans several).
BEGIN;
SET LOCAL pghistory.context_id = '6b1c1a28-0d1e-4c8f-9d4a-2f0a1e3b5c7d';
SET LOCAL pghistory.context_metadata = '{"user": 5, "url": "/admin", "step": 2}';
UPDATE orders SET status = 'edited' WHERE id = 3;
COMMIT;
SELECT metadata FROM pghistory.context WHERE id = '6b1c1a28-0d1e-4c8f-9d4a-2f0a1e3b5c7d';
-- set_context() merges into such a context.
BEGIN;
SET LOCAL pghistory.context_id = '0e3f6a3c-1111-4c8f-9d4a-2f0a1e3b5c7d';
SET LOCAL pghistory.context_metadata = '{"user": 5}';
SELECT pghistory.set_context('{"extra": true}');
COMMIT;
SELECT metadata FROM pghistory.context WHERE id = '0e3f6a3c-1111-4c8f-9d4a-2f0a1e3b5c7d';

-- A malformed setting makes the write fail with a clear error: the context is never silently lost.
BEGIN;
SET LOCAL pghistory.context_id = 'not-a-uuid';
INSERT INTO orders VALUES (4, 'x');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL pghistory.context_id = '6b1c1a28-0d1e-4c8f-9d4a-2f0a1e3b5c7e';
SET LOCAL pghistory.context_metadata = '{"user": ';
INSERT INTO orders VALUES (4, 'x');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL pghistory.context_id = '6b1c1a28-0d1e-4c8f-9d4a-2f0a1e3b5c7e';
SET LOCAL pghistory.context_metadata = '"just a string"';
INSERT INTO orders VALUES (4, 'x');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT pghistory.set_context(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM orders WHERE id = 4;

-- Nobody writes pghistory.context directly, so metadata cannot be forged.
CREATE ROLE regress_pgh_app;
SET ROLE regress_pgh_app;
INSERT INTO pghistory.context (id, metadata) VALUES (gen_random_uuid(), '{"user": "forged"}');
\echo :LAST_ERROR_SQLSTATE
UPDATE pghistory.context SET metadata = '{}';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_pgh_app;

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_context CASCADE;
DROP EXTENSION pghistory;
