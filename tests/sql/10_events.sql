-- pghistory.events: one view over every event table, with the tracked data as JSON, the change
-- against the previous event of the same object, and the context.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_events;
SET search_path = test_events;

CREATE TABLE product (id int PRIMARY KEY, name text, price numeric);
CREATE TABLE tag (id int PRIMARY KEY, label text);
SELECT pghistory.track('product', pghistory.insert_event(), pghistory.update_event(), pghistory.delete_event());
SELECT pghistory.track('tag');

BEGIN;
SELECT pghistory.set_context('{"user": "ann"}') IS NOT NULL;
INSERT INTO product VALUES (1, 'pen', 2), (2, 'ink', 5);
INSERT INTO tag VALUES (1, 'office');
COMMIT;
UPDATE product SET price = 3 WHERE id = 1;
UPDATE product SET name = 'blue pen', price = 4 WHERE id = 1;
DELETE FROM product WHERE id = 2;

SELECT pgh_slug, pgh_model, pgh_label, pgh_obj_model, pgh_obj_id, pgh_data, pgh_diff, pgh_context
FROM pghistory.events ORDER BY pgh_model::text, pgh_id;

-- The history of one object, oldest first.
SELECT pgh_label, pgh_diff FROM pghistory.events
WHERE pgh_obj_model = 'product'::regclass AND pgh_obj_id = '1' ORDER BY pgh_created_at, pgh_id;

-- Every event of one context, across tables.
SELECT pgh_model, pgh_label, pgh_obj_id FROM pghistory.events
WHERE pgh_context->>'user' = 'ann' ORDER BY pgh_model::text, pgh_id;

-- A role sees the events of the event tables it may read, and no error for the others.
CREATE ROLE regress_pgh_reader;
SET ROLE regress_pgh_reader;
SELECT count(*) FROM pghistory.events;
RESET ROLE;
GRANT USAGE ON SCHEMA test_events TO regress_pgh_reader;
GRANT SELECT ON tag_event TO regress_pgh_reader;
SET ROLE regress_pgh_reader;
SELECT pgh_model, count(*) FROM pghistory.events GROUP BY 1;
RESET ROLE;
DROP OWNED BY regress_pgh_reader;
DROP ROLE regress_pgh_reader;

-- A DROP that drops nothing leaves the view whole.
DROP TABLE IF EXISTS no_such_table;
SELECT count(*) FROM pghistory.events;

-- The view follows tracking: untrack(drop_events) and DROP TABLE take the history out of it.
SELECT pghistory.untrack('tag', drop_events => true);
SELECT DISTINCT pgh_model FROM pghistory.events;
DROP TABLE product_event;
SELECT count(*) FROM pghistory.events;

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_events CASCADE;
DROP EXTENSION pghistory;
