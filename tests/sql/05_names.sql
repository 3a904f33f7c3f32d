-- Tables in any schema, names that need quoting, long names, and tables without a simple key.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_names;
SET search_path = test_names;

CREATE SCHEMA "Order Items";
CREATE TABLE "Order Items"."Unit Price" ("Id" int PRIMARY KEY, "Unit Price" numeric, "select" text, "semi;colon" text);
SELECT pghistory.track('"Order Items"."Unit Price"');
INSERT INTO "Order Items"."Unit Price" VALUES (1, 9.5, 'x', 'y');
UPDATE "Order Items"."Unit Price" SET "Unit Price" = 10;
SELECT pgh_label, pgh_obj_id, "Id", "Unit Price", "select", "semi;colon" FROM "Order Items"."Unit Price_event" ORDER BY pgh_id;

-- The event table can live in another schema.
CREATE SCHEMA audit;
SELECT pghistory.track('"Order Items"."Unit Price"', pghistory.delete_event('gone'), model_name => 'audit.price_deletions');
DELETE FROM "Order Items"."Unit Price";
SELECT pgh_label, "Id" FROM audit.price_deletions;

-- Names over 63 bytes are shortened with a hash, so two long names never collide.
CREATE TABLE a_table_name_that_is_quite_long_and_goes_on_and_on_and_on_1 (id int PRIMARY KEY);
CREATE TABLE a_table_name_that_is_quite_long_and_goes_on_and_on_and_on_2 (id int PRIMARY KEY);
SELECT pghistory.track('a_table_name_that_is_quite_long_and_goes_on_and_on_and_on_1') AS first,
       pghistory.track('a_table_name_that_is_quite_long_and_goes_on_and_on_and_on_2') AS second;
-- Multibyte names are cut at character boundaries.
CREATE TABLE "ééééééééééééééééééééééééééééééé" (id int PRIMARY KEY);
SELECT pghistory.track('"ééééééééééééééééééééééééééééééé"') AS event_table;
SELECT octet_length(relname) FROM pg_class WHERE oid = '"ééééééééééééééééééééééééééééééé"'::regclass;

-- A many-to-many link table has no single-column key: obj_field => NULL records events without one.
CREATE TABLE groups (id int PRIMARY KEY);
CREATE TABLE users (id int PRIMARY KEY);
CREATE TABLE user_groups (user_id int REFERENCES users, group_id int REFERENCES groups, PRIMARY KEY (user_id, group_id));
SELECT pghistory.track('user_groups', pghistory.after_insert('group.add'), pghistory.before_delete('group.remove'),
                       obj_field => NULL);
INSERT INTO users VALUES (1), (2);
INSERT INTO groups VALUES (10);
INSERT INTO user_groups VALUES (1, 10), (2, 10);
DELETE FROM user_groups WHERE user_id = 1;
SELECT pgh_label, user_id, group_id FROM user_groups_event ORDER BY pgh_id;
SELECT attname FROM pg_attribute WHERE attrelid = 'user_groups_event'::regclass AND attnum > 0 ORDER BY attnum;

-- Custom object and context column names.
CREATE TABLE thing (id uuid PRIMARY KEY, name text);
SELECT pghistory.track('thing', obj_field => 'thing_id', context_field => 'ctx');
INSERT INTO thing VALUES ('00000000-0000-0000-0000-000000000001', 'x');
SELECT pgh_label, thing_id, ctx FROM thing_event;

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_names, "Order Items", audit CASCADE;
DROP EXTENSION pghistory;
