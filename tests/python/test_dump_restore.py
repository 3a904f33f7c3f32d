"""History survives pg_dump / pg_restore, whole and data-only, and tracking works afterwards."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

COUNTS = """
    SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM orders_event),
           (SELECT count(*) FROM pghistory.context), (SELECT count(*) FROM pghistory.tracking),
           (SELECT max(pgh_id) FROM orders_event)
"""


def _tool(pg_server: Any, name: str) -> str:
    return str(Path(pg_server.bindir) / name) if pg_server.bindir else name


@pytest.fixture
def source(make_database: Callable[..., str]) -> str:
    dsn = make_database("dump_source", extension=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, status text, dropped int)")
        conn.execute(
            "ALTER TABLE orders DROP COLUMN dropped"
        )  # attribute numbers change in a restore
        conn.execute("ALTER TABLE orders ADD COLUMN total numeric")
        conn.execute(
            "SELECT pghistory.track('orders', pghistory.insert_event(), pghistory.update_event(),"
            " pghistory.delete_event())"
        )
        with conn.transaction():
            conn.execute("SELECT pghistory.set_context('{\"user\": 1}')")
            conn.execute("INSERT INTO orders SELECT g, 'new', g FROM generate_series(1, 50) g")
        conn.execute("UPDATE orders SET status = 'paid' WHERE id <= 10")
        conn.execute("DELETE FROM orders WHERE id > 45")
    return dsn


def _restore_and_check(pg_server: Any, dump: Path, target: str, *extra: str) -> tuple[Any, ...]:
    subprocess.run(
        [_tool(pg_server, "pg_restore"), "--no-owner", *extra, "-d", target, str(dump)],
        check=True,
        capture_output=True,
    )
    with psycopg.connect(target, autocommit=True) as conn:
        counts = conn.execute(COUNTS).fetchone()
        assert counts is not None
        conn.execute(
            "SELECT pghistory.sync()"
        )  # rebuilds what a restore cannot carry (the events view)
        assert conn.execute("SELECT * FROM pghistory.verify()").fetchall() == []
        # Tracking works after the restore, and pgh_id goes on from where it was.
        conn.execute("UPDATE orders SET status = 'shipped' WHERE id = 1")
        conn.execute("ALTER TABLE orders RENAME COLUMN status TO state")
        conn.execute("UPDATE orders SET state = 'done' WHERE id = 1")
        rows = conn.execute(
            "SELECT pgh_id, pgh_label, state FROM orders_event WHERE pgh_obj_id = 1"
            " ORDER BY pgh_id DESC LIMIT 2"
        ).fetchall()
        assert [(label, state) for _, label, state in rows] == [
            ("update", "done"),
            ("update", "shipped"),
        ]
        assert rows[1][0] == counts[4] + 1
        diffs = conn.execute(
            "SELECT count(*) FROM pghistory.events WHERE pgh_obj_model = 'orders'::regclass"
        ).fetchone()
        assert diffs == (counts[1] + 2,)
    return counts


def test_whole_database_round_trip(
    pg_server: Any, source: str, make_database: Callable[..., str], tmp_path: Path
) -> None:
    with psycopg.connect(source) as conn:
        expected = conn.execute(COUNTS).fetchone()
    dump = tmp_path / "whole.dump"
    subprocess.run([_tool(pg_server, "pg_dump"), "-Fc", "-f", str(dump), source], check=True)
    target = make_database("dump_whole")
    assert _restore_and_check(pg_server, dump, target) == expected


def test_data_only_round_trip_with_disabled_triggers(
    pg_server: Any, source: str, make_database: Callable[..., str], tmp_path: Path
) -> None:
    with psycopg.connect(source) as conn:
        expected = conn.execute(COUNTS).fetchone()
    dump = tmp_path / "whole.dump"
    subprocess.run([_tool(pg_server, "pg_dump"), "-Fc", "-f", str(dump), source], check=True)
    target = make_database("dump_data")
    subprocess.run(
        [_tool(pg_server, "pg_restore"), "--schema-only", "--no-owner", "-d", target, str(dump)],
        check=True,
        capture_output=True,
    )
    # The documented way: --disable-triggers, so restoring orders does not record its rows again.
    assert (
        _restore_and_check(pg_server, dump, target, "--data-only", "--disable-triggers") == expected
    )
