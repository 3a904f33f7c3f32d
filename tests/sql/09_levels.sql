-- level => 'row' records with one trigger call per row, 'statement' with one INSERT ... SELECT per
-- statement over transition tables; 'auto' (default) picks. The events are the same whichever runs.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_levels;
SET search_path = test_levels;

CREATE TABLE by_row (id int PRIMARY KEY, k text UNIQUE, n int, note text);
CREATE TABLE by_statement (LIKE by_row INCLUDING ALL);
SELECT pghistory.track(t, pghistory.insert_event(), pghistory.update_event(),
                       pghistory.update_event('was', snapshot => 'old', condition => 'OLD.n > NEW.n'),
                       pghistory.update_event('note_kept', condition => pghistory.all_dont_change('note')),
                       pghistory.delete_event(), pghistory.insert_event('big', condition => 'NEW.n >= 100'),
                       level => l)
FROM (VALUES ('by_row'::regclass, 'row'), ('by_statement', 'statement')) AS v(t, l);
SELECT target, t->>'label' AS label, t->>'level' AS level
FROM pghistory.tracking, jsonb_array_elements(trackers) t ORDER BY 1, 2;

-- The same workload on both tables.
CREATE FUNCTION workload(t regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO %s SELECT g, ''k'' || g, g, ''x'' FROM generate_series(1, 200) g', t);
    EXECUTE format('UPDATE %s SET n = n + 1 WHERE id %% 3 = 0', t);                 -- many rows
    EXECUTE format('UPDATE %s SET n = n WHERE id < 50', t);                         -- changes nothing
    EXECUTE format('UPDATE %s SET note = ''y'', n = n - 5 WHERE id %% 7 = 0', t);    -- conditions differ
    EXECUTE format('UPDATE %s SET id = id + 1000 WHERE id > 190', t);               -- primary key changes
    EXECUTE format('UPDATE %s SET id = 2000 - id, n = -n WHERE id > 1000', t);      -- ...and back, reordered
    EXECUTE format('INSERT INTO %s VALUES (1, ''k1'', 500, ''z''), (300, ''k300'', 3, ''z'') '
                   'ON CONFLICT (id) DO UPDATE SET n = excluded.n, note = excluded.note', t);
    EXECUTE format('INSERT INTO %s VALUES (2, ''k2'', 2, ''x'') ON CONFLICT (id) DO NOTHING', t);
    EXECUTE format('DELETE FROM %s WHERE id %% 10 = 0 RETURNING id', t);
    EXECUTE format('UPDATE %s SET n = 0 WHERE false', t);                           -- touches no row
END $$;
SELECT workload('by_row');
SELECT workload('by_statement');

-- The same events: label, object and every stored column. (Within one statement the order differs:
-- per row, trackers interleave; per statement, each tracker writes all its rows at once.)
CREATE VIEW row_events AS SELECT pgh_label, pgh_obj_id, id, k, n, note FROM by_row_event;
CREATE VIEW statement_events AS SELECT pgh_label, pgh_obj_id, id, k, n, note FROM by_statement_event;
SELECT (SELECT count(*) FROM row_events) AS row_events, (SELECT count(*) FROM statement_events) AS statement_events;
SELECT count(*) AS differences FROM (
    (TABLE row_events EXCEPT ALL TABLE statement_events)
    UNION ALL
    (TABLE statement_events EXCEPT ALL TABLE row_events)) d;
SELECT pgh_label, count(*) FROM by_statement_event GROUP BY 1 ORDER BY 1;
-- The primary-key changes are there, with the new key as object id (update) and the old one ('was').
SELECT pgh_label, pgh_obj_id, n FROM by_statement_event WHERE id > 1000 OR pgh_obj_id > 1000 ORDER BY pgh_id;
-- Rolled back statements leave no events in either mode.
BEGIN;
UPDATE by_statement SET n = n + 1;
ROLLBACK;
SELECT count(*) FROM by_statement_event;

-- Before-triggers are always captured per row (they have no transition tables). A partitioned
-- table is captured both ways: per statement through it, per row straight to a partition
-- (16_partitioned_tables).
CREATE TABLE measurement (id int, at date, v int, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE measurement_2026 PARTITION OF measurement FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
SELECT pghistory.track('measurement', pghistory.insert_event(), pghistory.before_delete('gone'),
                       obj_field => NULL, level => 'statement');
SELECT t->>'label' AS label, t->>'level' AS level
FROM pghistory.tracking, jsonb_array_elements(trackers) t WHERE target = 'measurement'::regclass ORDER BY 1;
INSERT INTO measurement_2026 VALUES (1, '2026-05-01', 1);
INSERT INTO measurement VALUES (2, '2026-06-01', 2);
DELETE FROM measurement_2026 WHERE id = 1;
SELECT pgh_label, id, v FROM measurement_event ORDER BY pgh_id;

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_levels CASCADE;
DROP EXTENSION pghistory;
