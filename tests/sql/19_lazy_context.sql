-- Lazy context: set_context(metadata, lazy => true) only sets the transaction-local settings;
-- the context row is written when the transaction records an event. A transaction that writes
-- no event writes nothing, so it may be read-only (a hot standby), where the eager form cannot run.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE TABLE lazy_orders (id int PRIMARY KEY, total int);
SELECT pghistory.track('lazy_orders') IS NOT NULL AS tracked;
SELECT count(*) AS contexts_before FROM pghistory.context \gset

-- A reading transaction in a context leaves no row.
BEGIN;
SELECT pghistory.set_context('{"url": "/list"}', lazy => true) IS NOT NULL AS started;
SELECT current_setting('pghistory.context_metadata') AS metadata;
SELECT count(*) FROM lazy_orders;
COMMIT;
SELECT count(*) - :contexts_before AS new_contexts FROM pghistory.context;

-- It runs in a read-only transaction, where the eager form writes and so fails.
BEGIN READ ONLY;
SELECT pghistory.set_context('{"url": "/list"}', lazy => true) IS NOT NULL AS started;
ROLLBACK;
BEGIN READ ONLY;
SELECT pghistory.set_context('{"url": "/list"}');
ROLLBACK;

-- A writing transaction records its context with the first event; later calls merge into it.
BEGIN;
SELECT pghistory.set_context('{"user": 42}', lazy => true) AS lazy_id \gset
INSERT INTO lazy_orders VALUES (1, 10);
SELECT pghistory.set_context('{"reason": "refund"}', lazy => true) = :'lazy_id'::uuid AS same_context;
UPDATE lazy_orders SET total = 5 WHERE id = 1;
SELECT pghistory.set_context('{"step": "eager"}') = :'lazy_id'::uuid AS eager_joins_it;
COMMIT;
SELECT pgh_label, pgh_context_id = :'lazy_id'::uuid AS carries_it FROM lazy_orders_event ORDER BY pgh_id;
SELECT metadata, set_by = current_user AS set_by_me FROM pghistory.context WHERE id = :'lazy_id'::uuid;
SELECT count(*) - :contexts_before AS new_contexts FROM pghistory.context;

-- Nothing survives into the next transaction.
SELECT coalesce(current_setting('pghistory.context_id', true), '') = '' AS cleared;
UPDATE lazy_orders SET total = 6 WHERE id = 1;
SELECT pgh_context_id IS NULL AS no_context FROM lazy_orders_event ORDER BY pgh_id DESC LIMIT 1;

-- Bad metadata is refused at once, lazy or not.
SELECT pghistory.set_context('[1, 2]', lazy => true);
SELECT pghistory.set_context(NULL, lazy => true);

SELECT pghistory.untrack('lazy_orders', drop_events => true);
DROP TABLE lazy_orders;
DROP EXTENSION pghistory;
