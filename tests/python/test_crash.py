"""A server that crashes mid-transaction recovers with history equal to the committed rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests import pgserver


@pytest.fixture(scope="module")
def own_server(pg_server: Any) -> Iterator[pgserver.PgServer]:
    # A server of its own: this test kills it.
    server = pgserver.start(pg_server.version)
    try:
        yield server
    finally:
        server.stop()


TABLES = {"by_statement": "statement", "by_row": "row"}


def q(text: str, table: str) -> sql.Composed:
    return sql.SQL(text).format(sql.Identifier(table))


def test_crash_mid_transaction(own_server: pgserver.PgServer) -> None:
    dsn = own_server.dsn("postgres")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pghistory")
        for table, level in TABLES.items():
            conn.execute(
                sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, n int)").format(sql.Identifier(table))
            )
            conn.execute(
                "SELECT pghistory.track(%s, pghistory.insert_event(), pghistory.update_event(),"
                " pghistory.delete_event(), level => %s)",
                (table, level),
            )
    committed = psycopg.connect(dsn, autocommit=True)
    open_tx = psycopg.connect(dsn)
    for table in TABLES:
        for i in range(1, 201):
            committed.execute(q("INSERT INTO {} VALUES (%s, %s)", table), (i, i))
            if i % 3 == 0:
                committed.execute(q("UPDATE {} SET n = n + 1 WHERE id = %s", table), (i - 1,))
            if i % 7 == 0:
                committed.execute(q("DELETE FROM {} WHERE id = %s", table), (i - 2,))
        # Writes in flight when the server dies: none of them may leave an event behind.
        open_tx.execute(q("INSERT INTO {} SELECT g, g FROM generate_series(1001, 2000) g", table))
        open_tx.execute(q("UPDATE {} SET n = -1 WHERE id <= 100", table))
    committed.execute("CHECKPOINT")
    for table in TABLES:
        committed.execute(
            q("UPDATE {} SET n = n * 10 WHERE id > 150", table)
        )  # after the checkpoint
    own_server.crash_and_restart()
    for c in (committed, open_tx):
        c.close()

    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in TABLES:
            rows = conn.execute(q("SELECT * FROM {} ORDER BY id", table)).fetchall()
            assert rows, "committed rows survive"
            assert all(n != -1 and ident < 1001 for ident, n in rows)
            rebuilt = conn.execute(
                q("SELECT * FROM pghistory.as_of(NULL::{}, now()) ORDER BY id", table)
            ).fetchall()
            assert rebuilt == rows
            orphans = conn.execute(
                q("SELECT count(*) FROM {} WHERE id > 1000 OR n = -1", table + "_event")
            ).fetchone()
            assert orphans == (0,)
