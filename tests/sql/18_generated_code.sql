-- The code track() generates, for the shapes that matter: row level, statement level, a partitioned
-- table, and an extension without event triggers (statements check the table first). Any change
-- to the generator shows here as a diff to review. Oids and the version are masked.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_generated;
SET search_path = test_generated;
CREATE FUNCTION show(p_event_table regclass) RETURNS SETOF text LANGUAGE sql AS $$
    -- its settings first: search_path is pinned only where the body finds names through it
    SELECT 'settings: ' || coalesce(array_to_string(p.proconfig, ', '), 'none')
    FROM pghistory._event_table e JOIN pg_proc p ON p.oid = e.trigger_function
    WHERE e.event_table = p_event_table
    UNION ALL
    SELECT regexp_replace(regexp_replace(p.prosrc, '\m\d{5,}\M', '<oid>', 'g'),
                          'pghistory \d+\.\d+', 'pghistory <version>', 'g')
    FROM pghistory._event_table e JOIN pg_proc p ON p.oid = e.trigger_function
    WHERE e.event_table = p_event_table
    UNION ALL
    SELECT pg_get_triggerdef(g.oid) FROM (SELECT g.oid, g.tgname FROM pg_trigger g JOIN pghistory._event_table e
                                          ON g.tgfoid = e.trigger_function AND g.tgparentid = 0
                                          WHERE e.event_table = p_event_table ORDER BY g.tgname) g
$$;
\pset format unaligned
\pset tuples_only on

-- Row level, a condition, context as json.
CREATE TABLE account (id int PRIMARY KEY, owner text, balance numeric);
SELECT pghistory.track('account', pghistory.insert_event(), pghistory.update_event(condition => 'NEW.balance < 0'),
                       pghistory.before_delete('gone'), level => 'row', context_mode => 'json');
SELECT show('account_event');

-- The default levels: inserts, deletes and truncates per statement, an update per row (its WHEN
-- clause compares whole rows); a truncate tracker, no context.
CREATE TABLE item (id int PRIMARY KEY, name text, qty int);
SELECT pghistory.track('item', pghistory.insert_event(), pghistory.update_event(), pghistory.delete_event(),
                       pghistory.truncate_event(), context_mode => 'none');
SELECT show('item_event');

-- Every tracker per statement (level => 'statement'): the update pairs old and new rows, so the
-- function pins search_path and jit.
CREATE TABLE ledger (id int PRIMARY KEY, amount numeric);
SELECT pghistory.track('ledger', pghistory.insert_event(), pghistory.update_event(), level => 'statement');
SELECT show('ledger_event');

-- Inserts only, per statement, no condition: every name qualified, no settings to switch.
CREATE TABLE log (id bigint PRIMARY KEY, line text);
SELECT pghistory.track('log', pghistory.insert_event());
SELECT show('log_event');

-- A partitioned table: statement triggers on it, row triggers cloned onto partitions.
CREATE TABLE shipment (id int, region text, status text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE shipment_eu PARTITION OF shipment FOR VALUES IN ('eu');
SELECT pghistory.track('shipment', pghistory.insert_event(), pghistory.update_event(), pghistory.delete_event(),
                       obj_field => NULL);
SELECT show('shipment_event');

-- Without the event trigger that follows schema changes: statements check the table first.
ALTER EVENT TRIGGER pghistory_ddl_end DISABLE;
CREATE TABLE memo (id int PRIMARY KEY, body text);
SELECT pghistory.track('memo', pghistory.insert_event(), pghistory.update_event(), pghistory.after_delete('removed'),
                       pghistory.truncate_event());
SELECT show('memo_event');
ALTER EVENT TRIGGER pghistory_ddl_end ENABLE;

\pset format aligned
\pset tuples_only off
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_generated CASCADE;
DROP EXTENSION pghistory;
