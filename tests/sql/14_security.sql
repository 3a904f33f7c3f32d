-- Security: nothing a role creates can hijack tracking, and no ordinary role can forge, rewrite or
-- bypass another role's history.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_security;
SET search_path = test_security;

-- Every function pins its search_path (generated ones too, checked after tracking below), but the
-- two that run for every event written in a context: they schema-qualify every name instead
-- (tests/python/test_search_path.py calls them under a hostile search_path).
SELECT p.oid::regprocedure AS unpinned FROM pg_proc p
WHERE pronamespace = 'pghistory'::regnamespace
  AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (proconfig), false) ORDER BY 1;
-- Trigger and event trigger functions are not executable by PUBLIC (but the append-only guard,
-- which only refuses writes).
SELECT p.oid::regprocedure FROM pg_proc p
WHERE p.pronamespace = 'pghistory'::regnamespace AND p.prorettype IN ('trigger'::regtype, 'event_trigger'::regtype)
  AND has_function_privilege('public', p.oid, 'EXECUTE') ORDER BY 1;
-- Nothing that runs with the extension owner's rights is executable by PUBLIC, but the two API
-- functions that must: they record the session's context row, which no role may write itself.
SELECT p.oid::regprocedure FROM pg_proc p
WHERE p.pronamespace = 'pghistory'::regnamespace AND p.prosecdef
  AND has_function_privilege('public', p.oid, 'EXECUTE') ORDER BY 1;
-- So the internal helpers PUBLIC may execute run with the caller's rights: with them a role can do
-- nothing it could not do in plain SQL. (track() runs as its caller and calls them.)
SELECT count(*) AS helpers, count(*) FILTER (WHERE p.prosecdef) AS running_as_owner FROM pg_proc p
WHERE p.pronamespace = 'pghistory'::regnamespace AND p.proname LIKE '\_%'
  AND has_function_privilege('public', p.oid, 'EXECUTE');

CREATE ROLE regress_pgh_alice;
CREATE ROLE regress_pgh_mallory;
GRANT CREATE, USAGE ON SCHEMA test_security TO regress_pgh_alice, regress_pgh_mallory;

-- Mallory plants trojans where a careless search_path would find them.
SET ROLE regress_pgh_mallory;
CREATE FUNCTION test_security.format(text, text) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'trojan format() called'; END $$;
CREATE FUNCTION test_security.quote_ident(text) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'trojan quote_ident() called'; END $$;
CREATE FUNCTION test_security.now() RETURNS timestamptz LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'trojan now() called'; END $$;
CREATE FUNCTION test_security.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'trojan current_setting() called'; END $$;
CREATE FUNCTION test_security.trojan_eq(text, text) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'trojan = called'; END $$;
CREATE OPERATOR test_security.= (LEFTARG = text, RIGHTARG = text, FUNCTION = test_security.trojan_eq);
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA test_security TO PUBLIC;
CREATE TEMP TABLE _event_table (x int);
CREATE TEMP TABLE pg_class (x int);
RESET ROLE;

-- Alice tracks and writes with those first in her search_path: no trojan runs.
SET ROLE regress_pgh_alice;
SET search_path = test_security, pghistory, pg_catalog;
CREATE TABLE alice_orders (id int PRIMARY KEY, status text);
SELECT pghistory.track('alice_orders', pghistory.insert_event(), pghistory.update_event(),
                       pghistory.update_event('status_changed', condition => 'OLD.status <> NEW.status'),
                       pghistory.delete_event());
BEGIN;
SELECT pghistory.set_context('{"user": "alice"}') IS NOT NULL AS context_set;
INSERT INTO alice_orders VALUES (1, 'new');
UPDATE alice_orders SET status = 'paid';
COMMIT;
DELETE FROM alice_orders;
SELECT pgh_label, status FROM alice_orders_event ORDER BY pgh_id;
RESET search_path;
SET search_path = test_security;
RESET ROLE;
SELECT count(*) AS unpinned_generated FROM pg_proc
WHERE proname LIKE 'pghistory%' AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (proconfig), false);

-- Mallory cannot track, untrack or sync Alice's table ...
SET ROLE regress_pgh_mallory;
SELECT pghistory.track('alice_orders', model_name => 'mallory_copy');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.untrack('alice_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.sync('alice_orders');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.prune('alice_orders', keep_last => 0);
\echo :LAST_ERROR_SQLSTATE
-- ... nor read, write or truncate the history ...
SELECT count(*) FROM alice_orders_event;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO alice_orders_event (pgh_label, id, status) VALUES ('forged', 1, 'free');
\echo :LAST_ERROR_SQLSTATE
DELETE FROM alice_orders_event;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE alice_orders_event;
\echo :LAST_ERROR_SQLSTATE
-- ... nor call or attach Alice's trigger function to forge events through it ...
CREATE TABLE mallory_table (id int PRIMARY KEY, status text);
CREATE TRIGGER forge AFTER INSERT ON mallory_table FOR EACH ROW
    EXECUTE FUNCTION test_security.pghistory_alice_orders_event_trigger('insert', 'new');
\echo :LAST_ERROR_SQLSTATE
SELECT test_security.pghistory_alice_orders_event_trigger();
\echo :LAST_ERROR_SQLSTATE
-- ... nor change the registry or contexts behind pghistory's back ...
DELETE FROM pghistory._tracker;
UPDATE pghistory._event_table SET append_only = true;
SELECT count(*) AS registry_rows FROM pghistory._tracker WHERE target = 'alice_orders'::regclass;
INSERT INTO pghistory._event_table (event_table, target, columns, attnums, context_mode, append_only, level)
VALUES ('alice_orders_event', 'mallory_table', '{id}', '{1}', 'id', false, 'row');
\echo :LAST_ERROR_SQLSTATE
UPDATE pghistory.context SET metadata = '{"user": "mallory"}';
\echo :LAST_ERROR_SQLSTATE
-- ... nor disable Alice's triggers or switch replication mode to skip them.
ALTER TABLE alice_orders DISABLE TRIGGER ALL;
\echo :LAST_ERROR_SQLSTATE
SET session_replication_role = replica;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM pghistory.verify();

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_security CASCADE;
DROP OWNED BY regress_pgh_alice, regress_pgh_mallory;
DROP ROLE regress_pgh_alice, regress_pgh_mallory;
DROP EXTENSION pghistory;
