"""Schema changes of a tracked table while another connection keeps writing: no write fails,
no event is lost, and the history still rebuilds the table."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg import sql

CHANGES = [
    "ALTER TABLE busy ADD COLUMN c text",
    "ALTER TABLE busy RENAME COLUMN b TO bb",
    "ALTER TABLE busy ALTER COLUMN bb TYPE bigint",
    "ALTER TABLE busy DROP COLUMN c",
    "ALTER TABLE busy RENAME TO busy_renamed",
]


@pytest.mark.parametrize("level", ["row", "statement"])
def test_alter_table_while_writing(db_dsn: str, level: str) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS busy, busy_renamed, busy_event")
        conn.execute("CREATE TABLE busy (id int PRIMARY KEY, a int, b int)")
        conn.execute(
            "SELECT pghistory.track('busy', pghistory.insert_event(), pghistory.update_event(),"
            " pghistory.delete_event(), level => %s)",
            (level,),
        )
        row = conn.execute("SELECT 'busy'::regclass::oid").fetchone()
        assert row is not None
        (oid,) = row

    stop = threading.Event()
    errors: list[BaseException] = []
    writes = [0]

    def writer() -> None:
        try:
            with psycopg.connect(db_dsn, autocommit=True) as w:
                i = 0
                while not stop.is_set():
                    i += 1
                    # Address the table by oid: it is renamed under us (a statement that lost the
                    # race with the rename is simply sent again).
                    for statement in (
                        "INSERT INTO {} (id, a) VALUES (%s, 0)",
                        "UPDATE {} SET a = a + 1 WHERE id = %s",
                    ):
                        while True:
                            found = w.execute(
                                "SELECT relnamespace::regnamespace::text, relname FROM pg_class"
                                " WHERE oid = %s",
                                (oid,),
                            ).fetchone()
                            assert found is not None
                            (schema, name) = found
                            try:
                                w.execute(
                                    sql.SQL(statement).format(sql.Identifier(schema, name)), (i,)
                                )
                                break
                            except psycopg.errors.UndefinedTable:
                                continue
                        writes[0] += 1
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with psycopg.connect(db_dsn, autocommit=True) as ddl:
            for change in CHANGES:
                time.sleep(0.15)
                ddl.execute(change)
            time.sleep(0.15)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert writes[0] > 20
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        events = conn.execute("SELECT count(*) FROM busy_event").fetchone()
        assert events == (writes[0],)
        rows = conn.execute("SELECT id, a, bb FROM busy_renamed ORDER BY id").fetchall()
        rebuilt = conn.execute(
            "SELECT id, a, bb FROM pghistory.as_of(NULL::busy_renamed, now()) ORDER BY id"
        ).fetchall()
        assert rebuilt == rows
        assert conn.execute("SELECT * FROM pghistory.verify()").fetchall() == []
        conn.execute("SELECT pghistory.untrack('busy_renamed', drop_events => true)")
        conn.execute("DROP TABLE busy_renamed")
