"""Read-only requests on a real hot standby (API.md section 12: the context is lazy).

A standby made by ``pg_basebackup -R`` of the running test server, started as a second
postmaster (as the unprivileged OS user the servers run as when we are root). A transaction
in a ``pghist.context`` scope that only reads runs there; a write on the primary in the same
setup carries its context, and that event reaches the standby like any row.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import pghist
import pghist.sqlalchemy
from tests import pgserver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Standby:
    """A hot standby of the server at ``primary_dsn``, in a temporary directory."""

    def __init__(self, bindir: Path, primary_dsn: str) -> None:
        self.user = pgserver.ensure_os_user() if pgserver._is_root() else None
        self.base = tempfile.mkdtemp(prefix="pghistory-standby-")
        self.data = os.path.join(self.base, "data")
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        if self.user is not None:
            os.chmod(self.base, 0o700)
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
        params = conninfo_to_dict(primary_dsn)
        basebackup = [
            str(bindir / "pg_basebackup"),
            "-D",
            self.data,
            "-R",  # standby.signal + primary_conninfo
            "-X",
            "stream",
            "-c",
            "fast",
            "-h",
            str(params["host"]),
            "-p",
            str(params["port"]),
            "-U",
            str(params["user"]),
        ]
        result = subprocess.run(
            pgserver._as_user(self.user, basebackup), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            self.close()
            raise AssertionError(f"pg_basebackup failed:\n{result.stdout}{result.stderr}")
        postgres = [
            str(bindir / "postgres"),
            "-D",
            self.data,
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            self.base,
            "-c",
            "hot_standby=on",
            "-c",
            "logging_collector=off",
        ]
        self.log = open(os.path.join(self.base, "standby.log"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            pgserver._as_user(self.user, postgres), stdout=self.log, stderr=subprocess.STDOUT
        )
        self.dsn = make_conninfo(primary_dsn, port=self.port)

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: smart shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
            self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def standby_setup(pg_server: Any, make_database: Any) -> Iterator[tuple[str, Standby]]:
    bindir = Path(pg_server.bindir) if pg_server.bindir else None
    if bindir is None or not (bindir / "pg_basebackup").exists():
        pytest.skip(f"no pg_basebackup beside this PostgreSQL {pg_server.version}")
    dsn = make_database("standby", extension=True)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE orders (id int PRIMARY KEY, total int)")
        pghist.track(admin, "orders")
        admin.execute("INSERT INTO orders VALUES (1, 10)")
    standby = Standby(bindir, dsn)
    try:

        def accepts_connections() -> bool:
            psycopg.connect(standby.dsn, connect_timeout=2).close()
            return True

        wait_until(accepts_connections, "the standby to accept connections")
        yield dsn, standby
    finally:
        standby.close()


def count(dsn: str, query: str) -> int:
    with psycopg.connect(dsn) as c:
        row = c.execute(query).fetchone()
        assert row is not None
        return int(row[0])


def test_read_only_request_on_a_hot_standby(standby_setup: tuple[str, Standby]) -> None:
    primary, standby = standby_setup
    with psycopg.connect(standby.dsn) as c:
        assert c.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    contexts_before = count(primary, "SELECT count(*) FROM pghistory.context")

    # plain psycopg: the context goes on the transaction, the request reads, nothing is written
    with psycopg.connect(standby.dsn) as app, pghist.context(user="reader", url="/orders"):
        context_id = pghist.apply_context(app)
        assert app.execute("SELECT id, total FROM orders").fetchall() == [(1, 10)]
        assert app.execute("SELECT current_setting('pghistory.context_id')").fetchone() == (
            str(context_id),
        )
        app.commit()

    # SQL callers: set_context(..., lazy => true) runs there too (the eager form writes a row)
    with psycopg.connect(standby.dsn) as app:
        row = app.execute('SELECT pghistory.set_context(\'{"user": "sql"}\', lazy => true)')
        assert row.fetchone() is not None
        assert app.execute("SELECT count(*) FROM orders").fetchone() == (1,)
        app.commit()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            app.execute('SELECT pghistory.set_context(\'{"user": "sql"}\')')

    # an instrumented SQLAlchemy engine on the standby: same
    params = conninfo_to_dict(standby.dsn)
    url = sa.URL.create(
        "postgresql+psycopg",
        username=str(params["user"]),
        host=str(params["host"]),
        port=standby.port,
        database=str(params["dbname"]),
    )
    engine = pghist.sqlalchemy.instrument(sa.create_engine(url))
    try:
        with pghist.context(user="reader", url="/list"), engine.connect() as sa_conn:
            assert sa_conn.execute(sa.text("SELECT count(*) FROM orders")).scalar() == 1
            assert sa_conn.execute(
                sa.text("SELECT current_setting('pghistory.context_metadata')")
            ).scalar() == ('{"user": "reader", "url": "/list"}')
            sa_conn.commit()
        # a write on the standby is refused by the server, as it would be without pghist
        with (
            pghist.context(user="writer"),
            engine.connect() as sa_conn,
            pytest.raises(sa.exc.InternalError, match="read-only transaction"),
        ):
            sa_conn.execute(sa.text("UPDATE orders SET total = 0"))
    finally:
        engine.dispose()

    # a write on the primary in the same setup carries its context ...
    with psycopg.connect(primary) as app, pghist.context(user="writer", url="/pay"):
        written_id = pghist.apply_context(app)
        app.execute("UPDATE orders SET total = 11 WHERE id = 1")
        app.commit()
    assert count(primary, "SELECT count(*) FROM pghistory.context") == contexts_before + 1

    # ... and reaches the standby with it
    def replicated() -> list[dict[str, Any]]:
        with psycopg.connect(standby.dsn) as c:
            return [e for e in pghist.events(c, "orders") if e["pgh_context_id"] == written_id]

    (event,) = wait_until(replicated, "the event to reach the standby")
    assert event["pgh_context"] == {"user": "writer", "url": "/pay"}
    # the reads left nothing behind on the primary
    assert count(primary, "SELECT count(*) FROM pghistory.context") == contexts_before + 1
