--------------------------------------------------------------------------------------------------
-- Event triggers
--------------------------------------------------------------------------------------------------


CREATE FUNCTION @extschema@._forget_dropped()
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- A dropped tracked table or event table leaves registry rows (and, for an event table, triggers that
-- would make every write fail). The event trigger below calls this at once where the extension was
-- created by a superuser; track() and untrack() call it too. Only what the caller owns is touched.
DECLARE
    v_item record;
BEGIN
    FOR v_item IN
        SELECT g.tgname, g.tgrelid::regclass AS relation FROM @extschema@._event_table e
        JOIN pg_trigger g ON g.tgfoid = e.trigger_function AND g.tgparentid = 0
        JOIN pg_class c ON c.oid = g.tgrelid AND pg_has_role(current_user, c.relowner, 'USAGE')
        WHERE NOT EXISTS (SELECT FROM pg_class x WHERE x.oid = e.event_table)
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_item.tgname, v_item.relation);
    END LOOP;
    FOR v_item IN
        SELECT e.trigger_function FROM @extschema@._event_table e
        JOIN pg_proc p ON p.oid = e.trigger_function AND pg_has_role(current_user, p.proowner, 'USAGE')
        WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = e.event_table)
           OR NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = e.target)
    LOOP
        EXECUTE format('DROP FUNCTION %s', v_item.trigger_function);
    END LOOP;
    DELETE FROM @extschema@._tracker t
    WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.event_table)
       OR NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.target);
    DELETE FROM @extschema@._event_table e
    WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = e.event_table)
       OR NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = e.target);
END
$function$;


CREATE FUNCTION @extschema@._drop_start_trigger()
    RETURNS event_trigger
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $function$
-- Before a DROP: pghistory.events reads every event table, so it would block dropping one. Empty it
-- for the command; _ddl_end_trigger() rebuilds it (all in the dropping transaction). As the
-- extension owner, who alone may rebuild the view.
BEGIN
    IF to_regclass('@extschema@.events') IS NOT NULL THEN
        PERFORM @extschema@._refresh_events_view(true);
    END IF;
END
$function$;


CREATE FUNCTION @extschema@._ddl_end_trigger()
    RETURNS event_trigger
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $function$
-- After a DROP: forget what was tracked in what went, and rebuild pghistory.events.
-- After ALTER TABLE on a tracked table or an event table: sync() it in the same transaction when the
-- change concerns history (other changes, such as DISABLE TRIGGER, are left for verify() to report).
DECLARE
    v_target regclass;
BEGIN
    IF TG_TAG <> 'ALTER TABLE' THEN
        PERFORM @extschema@._forget_dropped();   -- which rebuilds pghistory.events (its trigger)
        RETURN;
    END IF;
    IF current_setting('pghistory.busy', true) = 'on' THEN
        RETURN;   -- ALTER TABLE issued by track()/sync()/prune() themselves
    END IF;
    FOR v_target IN
        SELECT DISTINCT e.target FROM pg_event_trigger_ddl_commands() d
        JOIN @extschema@._event_table e ON d.objid IN (e.target, e.event_table)
        WHERE d.classid = 'pg_class'::regclass AND e.trigger_function IS NOT NULL
          AND @extschema@._needs_sync(e.event_table)
    LOOP
        PERFORM @extschema@.sync(v_target);
    END LOOP;
END
$function$;


-- Event triggers need a superuser. Without them, track()/untrack() tidy up after dropped tables and
-- pghistory.sync() follows schema changes when called.
DO $do$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        CREATE EVENT TRIGGER pghistory_ddl_end ON ddl_command_end
            WHEN TAG IN ('ALTER TABLE', 'DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
            EXECUTE FUNCTION @extschema@._ddl_end_trigger();
        CREATE EVENT TRIGGER pghistory_drop_start ON ddl_command_start
            WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
            EXECUTE FUNCTION @extschema@._drop_start_trigger();
    END IF;
END
$do$;
