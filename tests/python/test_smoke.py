"""Smoke test: the fixtures give a database where pghistory is installed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg


def test_extension_is_installed(conn: psycopg.Connection) -> None:
    row = conn.execute(
        "SELECT extname, extnamespace::regnamespace::text"
        " FROM pg_extension WHERE extname = 'pghistory'"
    ).fetchone()
    assert row == ("pghistory", "pghistory")


def test_server_matches_requested_version(conn: psycopg.Connection, pg_server: Any) -> None:
    assert conn.info.server_version // 10000 == pg_server.version


def test_make_database_is_empty_and_dropped(
    make_database: Callable[..., str], pg_server: Any
) -> None:
    dsn = make_database()
    with psycopg.connect(dsn) as c:
        assert c.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pghistory'"
        ).fetchone() == (0,)
        name = c.info.dbname
    # still there until teardown; the fixture drops it afterwards
    with psycopg.connect(pg_server.dsn("postgres")) as admin:
        assert admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone() == (1,)
