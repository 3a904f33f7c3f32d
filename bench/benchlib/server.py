"""The throwaway server of a benchmark run: tests/pgserver.py with this checkout's extension."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from tests import pgserver

REPO_ROOT = Path(__file__).resolve().parents[2]

PgServer = pgserver.PgServer
PgServerError = pgserver.PgServerError
SUPPORTED_VERSIONS = pgserver.SUPPORTED_VERSIONS

# Settings applied with ALTER SYSTEM before the server is restarted for the run. pgserver itself
# starts postgres with fsync=off, synchronous_commit=off, full_page_writes=off on the command
# line (which ALTER SYSTEM cannot override); those are listed in the output too.
SERVER_SETTINGS: dict[str, str] = {
    "shared_buffers": "256MB",  # every table of the run stays in shared buffers
    "autovacuum": "off",  # the benchmark vacuums between runs; no autovacuum in a measurement
    "max_wal_size": "4GB",  # no WAL-volume checkpoint in a measurement (CHECKPOINT before each)
    "synchronous_commit": "off",  # the CPU-bound worst case (pgserver sets it too)
}
SHOWN_SETTINGS = (
    "shared_buffers",
    "work_mem",
    "jit",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "max_wal_size",
    "autovacuum",
)


def start(pg: int, settings: dict[str, str]) -> pgserver.PgServer:
    """A server of major version pg with these settings (restarted once to apply them)."""
    server = pgserver.start(pg)
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for name, value in settings.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")  # names checked by the caller
    # shared_buffers needs a restart; testing.postgresql keeps the data directory and port
    postmaster = server._pg
    assert postmaster is not None
    postmaster.terminate()
    postmaster.start()
    # pgserver's command line (fsync, synchronous_commit, full_page_writes) outranks ALTER
    # SYSTEM; a per-database setting outranks the command line where the setting allows it.
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for name, value in settings.items():
            row = conn.execute(
                "SELECT context, source, setting FROM pg_settings WHERE name = %s", (name,)
            ).fetchone()
            if row and row[0] in ("user", "superuser"):
                conn.execute(f"ALTER DATABASE postgres SET {name} = '{value}'")
            elif row and row[1] == "command line" and name not in SERVER_SETTINGS:
                server.stop()
                raise SystemExit(
                    f"bench: {name} is fixed by pgserver's command line ({row[2]}); "
                    "--set cannot change it"
                )
    return server


def settings_of(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """The settings that shape the figures, as the server reports them."""
    out = {"server_version": str(conn.execute("SHOW server_version").fetchone()[0])}  # type: ignore[index]
    for name in SHOWN_SETTINGS:
        out[name] = str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
    out["jit_available"] = str(conn.execute("SELECT pg_jit_available()").fetchone()[0]).lower()  # type: ignore[index]
    return out
