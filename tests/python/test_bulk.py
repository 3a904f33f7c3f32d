"""Big statements: statement-level capture stays within memory and records every row."""

from __future__ import annotations

import psycopg


def test_million_row_update_completes_with_default_work_mem(conn: psycopg.Connection) -> None:
    assert conn.execute("SHOW work_mem").fetchone() == ("4MB",)
    conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, n int, note text)")
    conn.execute("INSERT INTO big SELECT g, g, 'row ' || g FROM generate_series(1, 1000000) g")
    # per statement (auto captures a whole-row update per row since 1.2): the pairing under test
    conn.execute("SELECT pghistory.track('big', pghistory.update_event(), level => 'statement')")
    levels = conn.execute(
        "SELECT t->>'level' FROM pghistory.tracking, jsonb_array_elements(trackers) t"
        " WHERE target = 'big'::regclass"
    ).fetchall()
    assert levels == [("statement",)]
    cur = conn.execute("UPDATE big SET n = n + 1")
    assert cur.rowcount == 1000000
    counts = conn.execute(
        "SELECT count(*), count(DISTINCT pgh_obj_id), sum((n = id + 1)::int) FROM big_event"
    ).fetchone()
    assert counts == (1000000, 1000000, 1000000)
    conn.execute("DROP TABLE big, big_event")
