-- partition_by => 'day' | 'week' | 'month' keeps the history partitioned by pgh_created_at: a
-- partition for this period and the next three, a default partition so no write ever fails, and
-- prune() dropping whole periods.
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_partitions;
SET search_path = test_partitions;

CREATE TABLE metric (id int PRIMARY KEY, v int);
SELECT pghistory.track('metric', pghistory.insert_event(), pghistory.update_event(), partition_by => 'month');
SELECT relkind, (SELECT count(*) FROM pg_partition_tree('metric_event') WHERE isleaf) AS partitions
FROM pg_class WHERE oid = 'metric_event'::regclass;
SELECT partition_by FROM pghistory.tracking;
INSERT INTO metric VALUES (1, 1), (2, 2);
UPDATE metric SET v = v + 1;
-- Events land in this month's partition, not the default one.
SELECT tableoid::regclass = 'metric_event_default'::regclass AS in_default, count(*) FROM metric_event GROUP BY 1;
-- Tracking again is idempotent; changing how the history is partitioned is refused.
SELECT pghistory.track('metric', pghistory.insert_event(), pghistory.update_event(), partition_by => 'month');
SELECT pghistory.track('metric', pghistory.insert_event(), pghistory.update_event(), partition_by => 'day');
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.track('metric', pghistory.insert_event(), pghistory.update_event());
\echo :LAST_ERROR_SQLSTATE
SELECT pghistory.track('metric', partition_by => 'year', model_name => 'x');
\echo :LAST_ERROR_SQLSTATE

-- prune() drops whole periods older than older_than (here a period from 2020, made by hand) and
-- deletes old rows elsewhere (the default partition).
CREATE TABLE metric_event_p2020 PARTITION OF metric_event FOR VALUES FROM ('2020-01-01') TO ('2020-02-01');
INSERT INTO metric_event (pgh_created_at, pgh_label, pgh_obj_id, id, v)
VALUES ('2020-01-15', 'insert', 9, 9, 9), ('2020-01-16', 'update', 9, 9, 10), ('2021-06-01', 'update', 9, 9, 11);
SELECT tableoid::regclass, count(*) FROM metric_event WHERE pgh_obj_id = 9 GROUP BY 1 ORDER BY 1;
SELECT pghistory.prune('metric', older_than => '1 year');
SELECT to_regclass('metric_event_p2020') IS NULL AS period_dropped, count(*) AS left_of_9
FROM metric_event WHERE pgh_obj_id = 9;
SELECT count(*) FROM metric_event;

-- The events view and as_of() read partitioned histories like any other.
SELECT count(*) FROM pghistory.events WHERE pgh_obj_model = 'metric'::regclass;

-- Append-only and partitioned: no partition can be changed or truncated either.
CREATE TABLE audit_log (id int PRIMARY KEY, msg text);
SELECT pghistory.track('audit_log', append_only => true, partition_by => 'week');
INSERT INTO audit_log VALUES (1, 'hello');
DELETE FROM audit_log_event;
TRUNCATE audit_log_event;
TRUNCATE audit_log_event_default;
SELECT format('TRUNCATE %s', p.relid::regclass) AS truncate_partition
FROM pg_partition_tree('audit_log_event') p WHERE p.isleaf AND p.relid <> 'audit_log_event_default'::regclass
LIMIT 1 \gset
:truncate_partition;
SELECT count(*) FROM audit_log_event;
SELECT * FROM pghistory.verify();

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_partitions CASCADE;
DROP EXTENSION pghistory;
