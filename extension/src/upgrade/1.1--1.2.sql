--
-- pghistory 1.1 -> 1.2
--
-- * The SQL is built from extension/src/ (one file per concern) and this script's functions are
--   derived from the difference between the frozen 1.1 script and the 1.2 build.
-- * The registry records which version generated each trigger function, and for which names
--   (_event_table.generated_by, generated_for): verify() and the event trigger read them instead
--   of searching the function's source.
-- * verify() has a fourth column, kind: a stable code for each kind of problem (trigger_missing,
--   trigger_disabled, stale_code, column_mismatch, column_added, privilege, events_view,
--   append_only_guard).
-- * CHECK constraints on the trackers' operation, snapshot and timing.
-- * track() checks conditions without creating triggers for it, and generates the trigger function
--   once, from fragments (_gen_* functions).
--
-- Tracked tables keep their 1.1 trigger functions, which go on recording as 1.1 did, until
-- pghistory.sync() (run by their owner) generates them again; verify() lists those still to do.
-- This script cannot do it: what an extension script creates becomes part of the extension.

ALTER TABLE @extschema@._event_table ADD COLUMN generated_by text, ADD COLUMN generated_for text[];
ALTER TABLE @extschema@._tracker
    ADD CONSTRAINT _tracker_operation_check
        CHECK (operation IN ('insert', 'update', 'delete', 'insert_or_update', 'truncate', 'manual')),
    ADD CONSTRAINT _tracker_snapshot_check CHECK (snapshot IN ('old', 'new')),
    ADD CONSTRAINT _tracker_timing_check CHECK (timing IN ('after', 'before'));

-- @@FUNCTIONS@@

-- The names older code was generated for, where its source shows them (as 1.1 searched it);
-- generated_by stays NULL: verify() reports that code as stale until sync().
UPDATE @extschema@._event_table e
SET generated_for = ARRAY[format('%I.%I', tn.nspname, tc.relname), format('%I.%I', en.nspname, ec.relname)]
FROM pg_catalog.pg_proc p, pg_catalog.pg_class ec, pg_catalog.pg_namespace en,
     pg_catalog.pg_class tc, pg_catalog.pg_namespace tn
WHERE p.oid = e.trigger_function
  AND ec.oid = e.event_table AND en.oid = ec.relnamespace
  AND tc.oid = e.target AND tn.oid = tc.relnamespace
  AND pg_catalog.strpos(p.prosrc, format('INSERT INTO %I.%I (', en.nspname, ec.relname)) > 0
  AND (pg_catalog.strpos(p.prosrc, format('FROM %I.%I AS old', tn.nspname, tc.relname)) > 0
       OR NOT EXISTS (SELECT FROM @extschema@._tracker t WHERE t.event_table = e.event_table AND t.operation = 'truncate'));
