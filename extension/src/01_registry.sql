--------------------------------------------------------------------------------------------------
-- Registry
--------------------------------------------------------------------------------------------------

-- One row per event table. Kept after untrack() so that tracking again appends to the same history.
CREATE TABLE @extschema@._event_table (
    event_table      regclass PRIMARY KEY,
    target           regclass NOT NULL,
    columns          name[] NOT NULL,          -- tracked columns of target, in table order
    attnums          smallint[] NOT NULL,      -- their attribute numbers, to follow renames
    fields           name[],                   -- the fields => list as given (NULL: all columns)
    exclude          name[],                   -- the exclude => list as given
    obj_field        name,                     -- object reference column, NULL for none
    obj_key          name,                     -- the primary key column of target it copies
    context_mode     text NOT NULL CHECK (context_mode IN ('id', 'json', 'none')),
    context_field    name,
    append_only      boolean NOT NULL,
    level            text NOT NULL CHECK (level IN ('auto', 'row', 'statement')),
    partition_by     text CHECK (partition_by IN ('day', 'week', 'month')),   -- NULL: not partitioned
    trigger_function regprocedure,             -- NULL while untracked
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    generated_by     text,                     -- the pghistory version that generated trigger_function
    generated_for    text[]                    -- {target, event_table} as named in that code
);
CREATE INDEX ON @extschema@._event_table (target);

-- One row per tracker of an event table.
CREATE TABLE @extschema@._tracker (
    target       regclass NOT NULL,
    label        text NOT NULL,
    event_table  regclass NOT NULL REFERENCES @extschema@._event_table ON DELETE CASCADE,
    operation    text NOT NULL
                 CONSTRAINT _tracker_operation_check
                 CHECK (operation IN ('insert', 'update', 'delete', 'insert_or_update', 'truncate', 'manual')),
    snapshot     text NOT NULL CONSTRAINT _tracker_snapshot_check CHECK (snapshot IN ('old', 'new')),
    timing       text CONSTRAINT _tracker_timing_check CHECK (timing IN ('after', 'before')),   -- NULL for manual
    condition    text,                         -- as given (helper tokens unexpanded)
    trigger_when text,                         -- the expanded WHEN clause, NULL for always
    trigger_name name,                         -- NULL for manual trackers
    level        text CHECK (level IN ('row', 'statement')),   -- how it is captured; NULL for manual
    PRIMARY KEY (target, label)
);
CREATE INDEX ON @extschema@._tracker (event_table);

-- Table owners write their own registry rows through track(); nobody may touch other owners' rows.
-- Rows left by a dropped table (no event trigger to clean them) may be deleted by anyone.
ALTER TABLE @extschema@._event_table ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@._tracker ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON @extschema@._event_table FOR SELECT USING (true);
-- An event table row must name a table and an event table that both belong to the caller.
CREATE POLICY owner_insert ON @extschema@._event_table FOR INSERT
    WITH CHECK (2 = (SELECT count(*) FROM pg_catalog.pg_class c
                     WHERE c.oid IN (target, event_table) AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')));
CREATE POLICY owner_update ON @extschema@._event_table FOR UPDATE
    USING (2 = (SELECT count(*) FROM pg_catalog.pg_class c
                WHERE c.oid IN (target, event_table) AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')));
CREATE POLICY owner_delete ON @extschema@._event_table FOR DELETE
    USING (NOT EXISTS (SELECT FROM pg_catalog.pg_class c
                       WHERE c.oid = target AND NOT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')));
CREATE POLICY read_all ON @extschema@._tracker FOR SELECT USING (true);
CREATE POLICY owner_insert ON @extschema@._tracker FOR INSERT
    WITH CHECK (EXISTS (SELECT FROM pg_catalog.pg_class c
                        WHERE c.oid = target AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')));
CREATE POLICY owner_update ON @extschema@._tracker FOR UPDATE
    USING (EXISTS (SELECT FROM pg_catalog.pg_class c
                   WHERE c.oid = target AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')));
CREATE POLICY owner_delete ON @extschema@._tracker FOR DELETE
    USING (NOT EXISTS (SELECT FROM pg_catalog.pg_class c
                       WHERE c.oid = target AND NOT pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')));
