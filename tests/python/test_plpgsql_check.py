"""Static checks of every PL/pgSQL function, generated ones included (plpgsql_check, PG 15)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

# Every shape of generated trigger function: row and statement level, each context mode, with and
# without an object reference, truncate and before-trackers, a partitioned table (both levels at
# once), and the check of each statement generated where no event trigger follows schema changes
# (here: while it is disabled).
TRACKED = [
    "SELECT pghistory.track('t_all', pghistory.insert_event(), pghistory.update_event(),"
    " pghistory.update_event('old', snapshot => 'old', condition => 'OLD.a > NEW.a'),"
    " pghistory.delete_event(), pghistory.before_delete('gone_before'), pghistory.truncate_event(),"
    " pghistory.manual_event('m'))",
    "SELECT pghistory.track('t_all', pghistory.insert_event('i'), pghistory.update_event('u'),"
    " level => 'row',"
    " context_mode => 'json', model_name => 't_all_rows')",
    "SELECT pghistory.track('t_link', pghistory.after_insert('add'),"
    " pghistory.before_delete('remove'),"
    " obj_field => NULL, context_mode => 'none')",
    "SELECT pghistory.track('t_part', pghistory.insert_event(), pghistory.update_event(),"
    " pghistory.delete_event(), pghistory.before_update('before'), obj_field => NULL)",
    "ALTER EVENT TRIGGER pghistory_ddl_end DISABLE",
    "SELECT pghistory.track('t_checked', pghistory.insert_event(), pghistory.update_event(),"
    " pghistory.truncate_event(), pghistory.after_insert_or_update('saved'))",
    "ALTER EVENT TRIGGER pghistory_ddl_end ENABLE",
]


def test_no_warnings_in_any_function(conn: psycopg.Connection, pg_server: Any) -> None:
    available = conn.execute(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'plpgsql_check'"
    ).fetchone()
    if pg_server.version != 15:
        pytest.skip("plpgsql_check comes from Debian's postgresql-15-plpgsql-check: checked on 15")
    assert available == (1,), "tests/run installs postgresql-15-plpgsql-check; it is missing"
    conn.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
    conn.execute("CREATE TABLE t_all (id int PRIMARY KEY, a int, b text, c jsonb)")
    conn.execute("CREATE TABLE t_link (x int, y int, PRIMARY KEY (x, y))")
    conn.execute("CREATE TABLE t_part (id int, r int, PRIMARY KEY (id, r)) PARTITION BY LIST (r)")
    conn.execute("CREATE TABLE t_part_0 PARTITION OF t_part FOR VALUES IN (0)")
    conn.execute("CREATE TABLE t_checked (id int PRIMARY KEY, a int)")
    for statement in TRACKED:
        conn.execute(statement)
    findings = conn.execute(
        """
        SELECT p.oid::regprocedure::text, cs.level, cs.message, cs.lineno, cs.statement
        FROM pg_proc p
        CROSS JOIN LATERAL plpgsql_check_function_tb(
            p.oid,
            relid => coalesce(
                (SELECT g.tgrelid FROM pg_trigger g WHERE g.tgfoid = p.oid LIMIT 1), 0),
            newtable => CASE WHEN p.prorettype = 'trigger'::regtype THEN 'pgh_new' END,
            oldtable => CASE WHEN p.prorettype = 'trigger'::regtype THEN 'pgh_old' END,
            fatal_errors => false, other_warnings => true, extra_warnings => true) AS cs
        WHERE p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')
          AND p.prorettype <> 'event_trigger'::regtype
          AND (p.pronamespace = 'pghistory'::regnamespace OR p.proname LIKE 'pghistory%')
          AND (p.prorettype <> 'trigger'::regtype
               OR EXISTS (SELECT FROM pg_trigger g WHERE g.tgfoid = p.oid))
        """
    ).fetchall()
    assert findings == []
    sources = conn.execute(
        "SELECT string_agg(prosrc, ' ') FROM pg_proc WHERE proname LIKE 'pghistory_t_%'"
    ).fetchone()
    assert sources is not None
    assert "a statement begins or ends" in sources[0]  # the partitioned and checking shapes ran
    assert "changed since its tracking was set up" in sources[0]
    checked = conn.execute(
        "SELECT count(*) FROM pg_proc"
        " WHERE proname LIKE 'pghistory%' OR pronamespace = 'pghistory'::regnamespace"
    ).fetchone()
    assert checked is not None and checked[0] > 40
