--------------------------------------------------------------------------------------------------
-- Grants
--------------------------------------------------------------------------------------------------

-- Everyone may call the API and read the registry. track() and friends run with the caller's rights
-- (the objects they create belong to the table's owner) and call the "_" helpers, so the helpers
-- that run with the caller's rights stay executable: each is pure or checks ownership itself, and
-- row-level security keeps registry rows writable only by the owners of the tables they describe.
-- What runs with the extension owner's rights is executable by nobody else: triggers and event
-- triggers run without EXECUTE. (set_context() and current_context_id() are such functions of the
-- API: they write the session's context row.)
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
GRANT SELECT ON @extschema@.tracking, @extschema@.events, @extschema@.context TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@._event_table, @extschema@._tracker TO PUBLIC;
REVOKE ALL ON FUNCTION @extschema@._refresh_events_view(boolean), @extschema@._registry_trigger(),
                       @extschema@._drop_start_trigger(), @extschema@._ddl_end_trigger() FROM PUBLIC;
-- (_append_only_trigger stays executable: table owners attach it through track(), and all it does is
-- refuse a write.)
