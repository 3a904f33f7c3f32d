-- The upgrade chain, walked one release at a time: 1.0 -> 1.1 -> 1.2. History recorded under each
-- version stays, tables tracked under an older version go on recording with the code that version
-- generated (verify() says so: stale_code) until sync() generates it again.
\set VERBOSITY terse
CREATE EXTENSION pghistory VERSION '1.0';
SELECT pghistory.version();
CREATE SCHEMA test_upgrade_chain;
SET search_path = test_upgrade_chain;
CREATE TABLE ledger (id int PRIMARY KEY, amount numeric);
SELECT pghistory.track('ledger', pghistory.insert_event(), pghistory.update_event(), pghistory.delete_event());
INSERT INTO ledger VALUES (1, 10);

ALTER EXTENSION pghistory UPDATE TO '1.1';
SELECT pghistory.version();
INSERT INTO ledger VALUES (2, 20);
UPDATE ledger SET amount = 11 WHERE id = 1;

ALTER EXTENSION pghistory UPDATE TO '1.2';
SELECT pghistory.version(), extversion FROM pg_extension WHERE extname = 'pghistory';
DELETE FROM ledger WHERE id = 2;
-- The registry learnt the names the old code was generated for; which version made it, it cannot know.
SELECT event_table, generated_by, generated_for FROM pghistory._event_table;
SELECT kind, problem FROM pghistory.verify();
SELECT pghistory.sync('ledger');
SELECT kind, problem FROM pghistory.verify();
SELECT event_table, generated_by, generated_for FROM pghistory._event_table;
UPDATE ledger SET amount = 12 WHERE id = 1;
SELECT pgh_label, id, amount FROM ledger_event ORDER BY pgh_id;

-- The registry's enumerations are CHECK constraints, added by the upgrade as by CREATE EXTENSION.
INSERT INTO pghistory._tracker (target, label, event_table, operation, snapshot)
VALUES ('ledger', 'bogus', 'ledger_event', 'upsert', 'new');

RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_upgrade_chain CASCADE;
DROP EXTENSION pghistory;
