-- Bad input: each mistake is an error with a standard SQLSTATE, a message that names the bad value
-- and a hint; a failed call leaves nothing behind. (Errors are shown with their hint and SQLSTATE.)
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_errors;
SET search_path = test_errors;
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE TABLE account (id int PRIMARY KEY, email text, balance numeric);
CREATE TABLE unrelated (id int);

-- Unknown table
SELECT pghistory.track('no_such_table');
\echo :LAST_ERROR_SQLSTATE
-- Not a table
CREATE VIEW account_view AS SELECT * FROM account;
SELECT pghistory.track('account_view');
\echo :LAST_ERROR_SQLSTATE
-- Unknown column in fields, exclude, or a condition helper
SELECT pghistory.track('account', fields => ARRAY['emial']);
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.track('account', exclude => ARRAY['nope']);
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.track('account', pghistory.update_event(condition => pghistory.any_change('emial')));
\echo :LAST_ERROR_SQLSTATE
-- fields together with exclude
SELECT pghistory.track('account', fields => ARRAY['email'], exclude => ARRAY['balance']);
\echo :LAST_ERROR_SQLSTATE
-- Unknown tracker options
SELECT pghistory.update_event(snapshot => 'newest');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.row_event('x', 'upsert');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.row_event('x', 'update', timing => 'during');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.track('account', context_mode => 'xml');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.track('account', level => 'page');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.insert_event(label => '');
\echo :LAST_ERROR_SQLSTATE
-- A tracker built by hand is checked too.
SELECT pghistory.track('account', ROW('x', 'insert', 'old', 'after', NULL)::pghistory.tracker);
\echo :LAST_ERROR_SQLSTATE
-- snapshot => 'old' on an insert, 'new' on a delete
SELECT pghistory.row_event('x', 'insert', snapshot => 'old');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.row_event('x', 'delete', snapshot => 'new');
\echo :LAST_ERROR_SQLSTATE
-- A condition naming NEW on a delete tracker, OLD on an insert tracker, or an unknown column
SELECT pghistory.track('account', pghistory.delete_event(condition => 'NEW.balance > 0'));
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.track('account', pghistory.insert_event(condition => 'OLD.balance > 0'));
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.track('account', pghistory.update_event(condition => 'NEW.balnce > 0'));
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.track('account', pghistory.update_event(condition => 'NEW.balance >'));
\echo :LAST_ERROR_SQLSTATE
-- A duplicate label in one call, or across event tables of one table
SELECT pghistory.track('account', pghistory.insert_event(), pghistory.insert_event());
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.track('account');
SELECT pghistory.track('account', pghistory.insert_event(), model_name => 'account_inserts');
\echo :LAST_ERROR_SQLSTATE
-- An event table name taken by an unrelated table
SELECT pghistory.track('account', pghistory.delete_event(), model_name => 'unrelated');
\echo :LAST_ERROR_SQLSTATE
-- obj_field on a table without a single-column primary key
SELECT pghistory.track('unrelated');
\echo :LAST_ERROR_SQLSTATE
-- A tracked column that clashes with an event column
CREATE TABLE clash (id int PRIMARY KEY, pgh_label text);
SELECT pghistory.track('clash');
\echo :LAST_ERROR_SQLSTATE
-- create_event with a label no tracker owns, or a row that does not exist
INSERT INTO account VALUES (1, 'a@example.com', 10);
SELECT pghistory.create_event('account', 1, 'nolabel');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.create_event('account', 2, 'insert');
\echo :LAST_ERROR_SQLSTATE
-- untrack of a table or event table that is not tracked
SELECT pghistory.untrack('unrelated');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.untrack('account', model_name => 'nope');
\echo :LAST_ERROR_SQLSTATE
-- Context metadata that is not a JSON object
SELECT pghistory.set_context('[1, 2]');
\echo :LAST_ERROR_SQLSTATE

-- None of the failures left anything behind, and the history is as it was.
SELECT event_table FROM pghistory.tracking ORDER BY 1;
SELECT relname FROM pg_class WHERE relnamespace = 'test_errors'::regnamespace AND relkind = 'r' ORDER BY 1;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'account'::regclass ORDER BY 1;
SELECT pgh_label, pgh_obj_id FROM account_event;

-- Only the owner of a table may track or untrack it.
\set VERBOSITY terse
CREATE ROLE regress_pgh_other;
GRANT USAGE ON SCHEMA test_errors TO regress_pgh_other;
GRANT ALL ON account TO regress_pgh_other;
SET ROLE regress_pgh_other;
SELECT pghistory.track('account', model_name => 'stolen');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.untrack('account');
\echo :LAST_ERROR_SQLSTATE
-- ... nor write the registry behind track()'s back.
DELETE FROM pghistory._tracker;
SELECT count(*) FROM pghistory._tracker WHERE target = 'account'::regclass;
RESET ROLE;
DROP OWNED BY regress_pgh_other;
DROP ROLE regress_pgh_other;

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_errors CASCADE;
DROP EXTENSION pghistory;
