-- Keeping history whole: truncate_event() records the rows a TRUNCATE removes, and verify() lists
-- whatever would let history be lost, forged or bypassed.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_whole;
SET search_path = test_whole;

CREATE TABLE stock (id int PRIMARY KEY, qty int);
SELECT pghistory.track('stock', pghistory.insert_event(), pghistory.truncate_event());
INSERT INTO stock VALUES (1, 10), (2, 20);
TRUNCATE stock;
SELECT pgh_label, pgh_obj_id, qty FROM stock_event ORDER BY pgh_id;
SELECT t->>'label' AS label, t->>'operation' AS operation, t->>'timing' AS timing, t->>'level' AS level
FROM pghistory.tracking, jsonb_array_elements(trackers) t ORDER BY 1;
SELECT pghistory.truncate_event('t', condition => 'true');
SELECT pghistory.row_event('t', 'truncate', snapshot => 'new');

-- verify(): no rows when all is well ...
SELECT * FROM pghistory.verify();
-- ... and one row per problem.
ALTER TABLE stock DISABLE TRIGGER pghistory_insert;
CREATE ROLE regress_pgh_app;
GRANT UPDATE, DELETE ON stock_event TO regress_pgh_app;
GRANT EXECUTE ON FUNCTION pghistory_stock_event_trigger() TO regress_pgh_app;
ALTER EVENT TRIGGER pghistory_ddl_end DISABLE;
ALTER TABLE stock ADD COLUMN note text;
ALTER TABLE stock RENAME COLUMN qty TO quantity;
ALTER EVENT TRIGGER pghistory_ddl_end ENABLE;
CREATE TABLE ledger (id int PRIMARY KEY);
SELECT pghistory.track('ledger', append_only => true);
ALTER TABLE ledger_event DISABLE TRIGGER pghistory_append_only;
SELECT target, event_table, problem FROM pghistory.verify() ORDER BY 1, 3;

-- Mending them empties the list.
ALTER TABLE stock ENABLE TRIGGER pghistory_insert;
REVOKE ALL ON stock_event FROM regress_pgh_app;
SELECT pghistory.sync();
SELECT pghistory.track('ledger', append_only => true);
SELECT * FROM pghistory.verify();
DROP OWNED BY regress_pgh_app;
DROP ROLE regress_pgh_app;

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_whole CASCADE;
DROP EXTENSION pghistory;
