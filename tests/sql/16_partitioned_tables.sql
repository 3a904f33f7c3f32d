-- A partitioned table is recorded once per change, whichever way it is written: through the
-- partitioned table (statement triggers there see a row moving between partitions as the one
-- update it is), or straight to a partition, including partitions created or attached later
-- (row triggers, cloned onto every partition, record those).
\set VERBOSITY terse
CREATE EXTENSION pghistory;
CREATE SCHEMA test_partitioned;
SET search_path = test_partitioned;

CREATE TABLE shipment (id int, region text, status text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE shipment_eu PARTITION OF shipment FOR VALUES IN ('eu');
CREATE TABLE shipment_us PARTITION OF shipment FOR VALUES IN ('us');
-- A partition that is itself partitioned.
CREATE TABLE shipment_asia PARTITION OF shipment FOR VALUES IN ('asia') PARTITION BY HASH (id);
CREATE TABLE shipment_asia_0 PARTITION OF shipment_asia FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE shipment_asia_1 PARTITION OF shipment_asia FOR VALUES WITH (MODULUS 2, REMAINDER 1);
SELECT pghistory.track('shipment', pghistory.insert_event(), pghistory.update_event(), pghistory.delete_event(),
                       pghistory.update_event('shipped', condition => $$NEW.status = 'shipped'$$),
                       obj_field => NULL);
SELECT t->>'label' AS label, t->>'level' AS level
FROM pghistory.tracking, jsonb_array_elements(trackers) t WHERE target = 'shipment'::regclass ORDER BY 1;

INSERT INTO shipment VALUES (1, 'eu', 'new'), (2, 'eu', 'new'), (3, 'us', 'new');   -- through the table
INSERT INTO shipment_us VALUES (4, 'us', 'new');                                    -- straight to a partition
UPDATE shipment SET region = 'us' WHERE id = 1;                                     -- moves: one update
UPDATE shipment SET region = 'asia', status = 'shipped' WHERE id IN (2, 3);         -- moves, into sub-partitions
UPDATE shipment SET status = 'late' WHERE id = 4;                                   -- stays
UPDATE shipment_us SET status = 'shipped' WHERE id = 1;                             -- straight to a partition
DELETE FROM shipment_asia_0 WHERE id = 2;                                           -- straight to a sub-partition
DELETE FROM shipment WHERE id = 4;                                                  -- through the table
SELECT pgh_id, pgh_label, id, region, status FROM shipment_event ORDER BY pgh_id;

-- Partitions created or attached later are recorded like the others.
CREATE TABLE shipment_africa PARTITION OF shipment FOR VALUES IN ('africa');
CREATE TABLE shipment_oceania (LIKE shipment);
INSERT INTO shipment_oceania VALUES (9, 'oceania', 'old');                          -- before attaching: not tracked
ALTER TABLE shipment ATTACH PARTITION shipment_oceania FOR VALUES IN ('oceania');
INSERT INTO shipment_africa VALUES (5, 'africa', 'new');
UPDATE shipment SET region = 'oceania' WHERE id = 5;
UPDATE shipment_oceania SET status = 'found' WHERE id = 9;
SELECT pgh_label, id, region, status FROM shipment_event WHERE pgh_id > 14 ORDER BY pgh_id;

-- Statements through the table that fail, in a savepoint, leave nothing behind; a write straight to
-- a partition afterwards in the same transaction is still recorded.
BEGIN;
SAVEPOINT s;
UPDATE shipment SET status = (1 / 0)::text WHERE id = 1;
ROLLBACK TO s;
UPDATE shipment_us SET status = 'back' WHERE id = 1;
COMMIT;
-- A statement through the table issued by another table's trigger, inside a statement through it.
CREATE TABLE dispatch (shipment int, region text);
CREATE FUNCTION dispatch_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE test_partitioned.shipment SET region = NEW.region WHERE id = NEW.shipment;
    RETURN NULL;
END $$;
CREATE TRIGGER dispatch AFTER INSERT ON dispatch FOR EACH ROW EXECUTE FUNCTION dispatch_trigger();
INSERT INTO dispatch VALUES (1, 'eu'), (3, 'us');
SELECT pgh_label, id, region, status FROM shipment_event WHERE pgh_id > 17 ORDER BY pgh_id;
-- No move was recorded as a delete: the only deletes are those of ids 2 and 4.
SELECT id FROM shipment_event WHERE pgh_label = 'delete' ORDER BY id;

-- level => 'row' records per row only: a row moving between partitions is then a delete and an insert.
CREATE TABLE parcel (id int, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE parcel_eu PARTITION OF parcel FOR VALUES IN ('eu');
CREATE TABLE parcel_us PARTITION OF parcel FOR VALUES IN ('us');
SELECT pghistory.track('parcel', pghistory.insert_event(), pghistory.update_event(), pghistory.delete_event(),
                       obj_field => NULL, level => 'row');
INSERT INTO parcel VALUES (1, 'eu');
UPDATE parcel SET region = 'us';
SELECT pgh_label, id, region FROM parcel_event ORDER BY pgh_id;

-- verify() reports any of these triggers switched off, on the table or on one partition.
ALTER TABLE shipment DISABLE TRIGGER pghistory_shipment_event_begin;
ALTER TABLE shipment_eu DISABLE TRIGGER pghistory_insert;
SELECT problem FROM pghistory.verify() ORDER BY 1;
ALTER TABLE shipment ENABLE TRIGGER pghistory_shipment_event_begin;
ALTER TABLE shipment_eu ENABLE TRIGGER pghistory_insert;
SELECT count(*) AS problems FROM pghistory.verify();

-- untrack removes every trigger it added, on the table and on its partitions.
SELECT pghistory.untrack('shipment');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgname LIKE 'pghistory%'
   AND tgrelid IN (SELECT relid FROM pg_partition_tree('shipment'));

-- Leave the database as it was for the next file.
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA test_partitioned CASCADE;
DROP EXTENSION pghistory;
