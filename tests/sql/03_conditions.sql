-- Conditional tracking: a condition is a SQL boolean over OLD and NEW (a trigger WHEN clause),
-- written by hand or built by any_change(), all_change(), any_dont_change(), all_dont_change().
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_conditions;
SET search_path = test_conditions;

-- Record the old email whenever it changes (django-pghistory's email_changed example).
CREATE TABLE my_user (id int PRIMARY KEY, username text, email text);
SELECT pghistory.track('my_user',
    pghistory.update_event('email_changed', snapshot => 'old', condition => pghistory.any_change('email')),
    model_name => 'user_email_history');
INSERT INTO my_user VALUES (1, 'ann', 'ann@old.example');
UPDATE my_user SET username = 'anne';
UPDATE my_user SET email = 'ann@new.example';
SELECT pgh_label, pgh_obj_id, username, email FROM user_email_history ORDER BY pgh_id;

-- The cash examples: OLD/NEW comparisons, the counterparts of Q(...) and F(...).
CREATE TABLE cash (id int PRIMARY KEY, dollars numeric);
SELECT pghistory.track('cash',
    pghistory.update_event('went_below_100', condition => 'OLD.dollars >= 100 AND NEW.dollars < 100'),
    pghistory.update_event('money_down', condition => 'OLD.dollars > NEW.dollars'));
INSERT INTO cash VALUES (1, 150);
UPDATE cash SET dollars = 120;
UPDATE cash SET dollars = 90;
UPDATE cash SET dollars = 95;
UPDATE cash SET dollars = 150;
UPDATE cash SET dollars = 50;
SELECT pgh_label, dollars FROM cash_event ORDER BY pgh_id, pgh_label;

-- The helpers return a placeholder that track() expands against the table:
SELECT pghistory.any_change('a', 'b');

CREATE TABLE doc (id int PRIMARY KEY, title text, body text, meta json,
                  created_at timestamptz DEFAULT now(), updated_at timestamptz);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE TRIGGER touch BEFORE UPDATE ON doc FOR EACH ROW EXECUTE FUNCTION touch();
SELECT pghistory.track('doc',
    pghistory.update_event('title_or_body', condition => pghistory.any_change('title', 'body')),
    pghistory.update_event('title_and_body', condition => pghistory.all_change('title', 'body')),
    pghistory.update_event('kept_title', condition => pghistory.any_dont_change('title')),
    pghistory.update_event('kept_all', condition => pghistory.all_dont_change('title', 'body')),
    pghistory.update_event('not_body', condition => pghistory.any_change(exclude => ARRAY['body'], exclude_auto => true)),
    pghistory.update_event('real_change', condition => pghistory.any_change(exclude_auto => true)),
    model_name => 'doc_history');
-- How each was expanded: json has no equality operator, so it is compared as text; created_at
-- (default now()) and updated_at (set by another BEFORE UPDATE trigger) are "auto" columns.
SELECT t->>'label' AS label, t->>'condition' AS condition
FROM pghistory.tracking, jsonb_array_elements(trackers) t WHERE event_table = 'doc_history'::regclass ORDER BY 1;
INSERT INTO doc (id, title, body, meta) VALUES (1, 't', 'b', '{}');
UPDATE doc SET title = 't2';
UPDATE doc SET title = 't3', body = 'b3';
UPDATE doc SET body = 'b4';
UPDATE doc SET meta = '{"x": 1}';
UPDATE doc SET title = title;
SELECT pgh_id, string_agg(pgh_label, ', ' ORDER BY pgh_label) AS labels, title, body, meta::text
FROM doc_history GROUP BY pgh_id, title, body, meta::text ORDER BY pgh_id;

-- Columns that are not tracked may still be named in a condition.
CREATE TABLE task (id int PRIMARY KEY, user_id int, status text);
SELECT pghistory.track('task', pghistory.update_event('reassigned', condition => pghistory.any_change('user_id')),
                       fields => ARRAY['status']);
INSERT INTO task VALUES (1, 7, 'open');
UPDATE task SET status = 'done';
UPDATE task SET user_id = 8;
SELECT pgh_label, pgh_obj_id, status FROM task_event ORDER BY pgh_id;

-- Helpers compose with other SQL.
CREATE TABLE price (id int PRIMARY KEY, amount numeric, currency text);
SELECT pghistory.track('price', pghistory.update_event('big_change',
    condition => pghistory.any_change('currency') || ' OR abs(NEW.amount - OLD.amount) > 10'));
INSERT INTO price VALUES (1, 100, 'EUR');
UPDATE price SET amount = 105;
UPDATE price SET amount = 120;
UPDATE price SET currency = 'USD';
SELECT pgh_label, amount, currency FROM price_event ORDER BY pgh_id;

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_conditions CASCADE;
DROP EXTENSION pghistory;
