-- Schema changes of a tracked table are followed in its history, in the same transaction, and
-- writes keep working. (An extension created by a non-superuser has no event trigger: then
-- pghistory.sync() does the same when called.)
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_schema;
SET search_path = test_schema;

CREATE TABLE account (id int PRIMARY KEY, email text, balance int);
SELECT pghistory.track('account', pghistory.insert_event(), pghistory.update_event(),
    pghistory.update_event('email_changed', snapshot => 'old', condition => pghistory.any_change('email')),
    pghistory.update_event('overdrawn', condition => 'OLD.balance >= 0 AND NEW.balance < 0'));
INSERT INTO account VALUES (1, 'a@example.com', 10);

-- ADD COLUMN: tracked from now on (every column is tracked by default).
ALTER TABLE account ADD COLUMN name text;
UPDATE account SET name = 'Ann';
-- RENAME COLUMN: renamed in the history and in the conditions.
ALTER TABLE account RENAME COLUMN email TO mail;
ALTER TABLE account RENAME COLUMN balance TO "Balance";
UPDATE account SET mail = 'b@example.com';
UPDATE account SET "Balance" = -5;
SELECT pgh_label, id, mail, "Balance", name FROM account_event ORDER BY pgh_id;
SELECT t->>'label' AS label, t->>'condition' AS condition
FROM pghistory.tracking, jsonb_array_elements(trackers) t WHERE target = 'account'::regclass ORDER BY 1;
-- ALTER TYPE: the history column follows where the old values cast.
ALTER TABLE account ALTER COLUMN "Balance" TYPE numeric(12, 2);
UPDATE account SET "Balance" = 7.5;
SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'account_event'::regclass AND attname = 'Balance';
SELECT pgh_label, "Balance" FROM account_event ORDER BY pgh_id;
-- DROP COLUMN: the history keeps the column for past events.
ALTER TABLE account DROP COLUMN name;
UPDATE account SET mail = 'c@example.com';
SELECT pgh_label, mail, name FROM account_event ORDER BY pgh_id;
SELECT fields FROM pghistory.tracking WHERE target = 'account'::regclass;

-- Renaming or moving the tracked table, or its event table, keeps tracking.
ALTER TABLE account RENAME TO customer;
CREATE SCHEMA crm;
ALTER TABLE customer SET SCHEMA crm;
ALTER TABLE account_event RENAME TO customer_history;
UPDATE crm.customer SET mail = 'd@example.com';
SELECT pgh_label, mail FROM customer_history ORDER BY pgh_id DESC LIMIT 1;
SELECT target, event_table FROM pghistory.tracking;

-- With fields => [...], an added column is not tracked.
CREATE TABLE item (id int PRIMARY KEY, name text);
SELECT pghistory.track('item', fields => ARRAY['name']);
ALTER TABLE item ADD COLUMN price numeric;
INSERT INTO item VALUES (1, 'pen', 2);
SELECT attname FROM pg_attribute WHERE attrelid = 'item_event'::regclass AND attnum > 0 ORDER BY attnum;

-- A type change whose old values do not cast is refused, with the way out.
CREATE TABLE code (id int PRIMARY KEY, v text);
SELECT pghistory.track('code');
INSERT INTO code VALUES (1, 'abc');
DELETE FROM code;
ALTER TABLE code ALTER COLUMN v TYPE int USING length(v);
\echo :LAST_ERROR_SQLSTATE

-- Without the event trigger, sync() follows the changes when called.
ALTER EVENT TRIGGER pghistory_ddl_end DISABLE;
ALTER TABLE item RENAME COLUMN name TO title;
SELECT pghistory.sync('item');
INSERT INTO item VALUES (2, 'ink', 1);
SELECT pgh_label, title FROM item_event ORDER BY pgh_id;
ALTER EVENT TRIGGER pghistory_ddl_end ENABLE;

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_schema, crm CASCADE;
DROP EXTENSION pghistory;
