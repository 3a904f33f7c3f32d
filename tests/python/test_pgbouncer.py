"""The ambient context behind a real PgBouncer in transaction pool mode (API.md section 12).

Many clients (threads through an instrumented SQLAlchemy engine, asyncio tasks on psycopg
AsyncConnections) share a few server connections, transaction by transaction, with
interleaved contexts: every event carries its own request's context, and nothing of it
leaks into the next transaction served by the same server connection.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import orm

import pghist
import pghist.sqlalchemy
from tests import pgserver

POOL_SIZE = 3  # server connections per database: far fewer than clients


def find_pgbouncer() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgBouncer:
    """pgbouncer in transaction mode in front of ``dsn``'s server (as the servers' OS user)."""

    def __init__(self, program: str, dsn: str) -> None:
        params = conninfo_to_dict(dsn)
        self.user = pgserver.ensure_os_user() if pgserver._is_root() else None
        self.base = tempfile.mkdtemp(prefix="pghistory-pgbouncer-")
        self.port = free_port()
        Path(self.base, "userlist.txt").write_text(f'"{params["user"]}" ""\n')
        Path(self.base, "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={params['host']} port={params['port']}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.base}/userlist.txt\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {POOL_SIZE}\n"
            "min_pool_size = 0\n"
            "reserve_pool_size = 0\n"
            "max_client_conn = 500\n"
            f"logfile = {self.base}/pgbouncer.log\n"
        )
        if self.user is not None:
            for path in [self.base, *(os.path.join(self.base, n) for n in os.listdir(self.base))]:
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        self.process = subprocess.Popen(
            pgserver._as_user(self.user, [program, os.path.join(self.base, "pgbouncer.ini")]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self.dsn = make_conninfo(dsn, host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.dsn, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = Path(self.base, "pgbouncer.log")
                    self.close()
                    raise AssertionError(
                        "pgbouncer did not start: " + (log.read_text() if log.exists() else "")
                    ) from None
                time.sleep(0.2)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def bouncer(make_database: Any) -> Iterator[tuple[str, PgBouncer]]:
    program = find_pgbouncer()
    if program is None:
        pytest.skip("pgbouncer is not installed (tests/run installs the Debian package as root)")
    dsn = make_database("bouncer", extension=True)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE req (id int PRIMARY KEY, client int, tx int)")
        pghist.track(admin, "req")
    bouncer = PgBouncer(program, dsn)
    try:
        yield dsn, bouncer
    finally:
        bouncer.close()


def check_events(direct: str, scoped: Any) -> None:
    """Every event carries exactly its own transaction's context (or none)."""
    with psycopg.connect(direct) as c:
        events = pghist.events(c, "req")
        assert events, "no events recorded"
        for event in events:
            data = event["pgh_data"]
            if scoped(data["client"], data["tx"]):
                assert event["pgh_context"] == {"client": data["client"], "tx": data["tx"]}, data
            else:
                assert event["pgh_context_id"] is None, data  # nothing leaked into it
        # one context per scoped transaction, each recorded once
        row = c.execute(
            "SELECT count(*), count(DISTINCT backend_pid) FROM pghistory.context"
        ).fetchone()
        assert row is not None
        contexts, backends = row
        assert contexts == sum(1 for e in events if e["pgh_context_id"] is not None)
        # the clients really shared server connections
        assert backends <= POOL_SIZE


def test_threads_through_an_instrumented_engine(bouncer: tuple[str, PgBouncer]) -> None:
    direct, pooler = bouncer
    params = conninfo_to_dict(pooler.dsn)
    engine = sa.create_engine(
        sa.URL.create(
            "postgresql+psycopg",
            username=str(params["user"]),
            host="127.0.0.1",
            port=pooler.port,
            database=str(params["dbname"]),
        ),
        pool_size=20,
        # transaction pooling: a statement prepared on one server connection is unknown on the next
        connect_args={"prepare_threshold": None},
    )
    pghist.sqlalchemy.instrument(engine)
    req = sa.table("req", sa.column("id"), sa.column("client"), sa.column("tx"))
    failures: list[BaseException] = []
    clients, transactions = 16, 9

    def client(n: int) -> None:
        rng = random.Random(n)
        try:
            for i in range(transactions):
                with orm.Session(engine) as session:
                    if i % 3 == 2:  # no scope: must carry nothing
                        session.execute(sa.insert(req).values(id=n * 100 + i, client=n, tx=i))
                        leftover = session.execute(
                            sa.text("SELECT current_setting('pghistory.context_id', true)")
                        ).scalar()
                        assert leftover in (None, ""), leftover
                        session.commit()
                        continue
                    with pghist.context(client=n, tx=i):
                        session.execute(sa.insert(req).values(id=n * 100 + i, client=n, tx=i))
                        time.sleep(rng.random() * 0.01)  # interleave with the other clients
                        session.execute(sa.update(req).where(req.c.id == n * 100 + i).values(tx=i))
                        session.commit()
        except BaseException as exc:
            failures.append(exc)

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        engine.dispose()
    assert failures == []
    check_events(direct, lambda n, i: i % 3 != 2)
    with psycopg.connect(direct) as c:
        assert c.execute("SELECT count(*) FROM req").fetchone() == (clients * transactions,)


def test_asyncio_tasks_on_async_connections(bouncer: tuple[str, PgBouncer]) -> None:
    direct, pooler = bouncer
    clients, transactions = 24, 6

    async def client(n: int) -> None:
        rng = random.Random(n)
        aconn = await psycopg.AsyncConnection.connect(pooler.dsn, prepare_threshold=None)
        async with aconn:
            for i in range(transactions):
                if i % 2:  # no scope
                    await aconn.execute("INSERT INTO req VALUES (%s, %s, %s)", (n * 100 + i, n, i))
                    await aconn.commit()
                    continue
                async with pghist.context(client=n, tx=i):
                    await pghist.apply_context(aconn)
                    await asyncio.sleep(rng.random() * 0.01)
                    await aconn.execute("INSERT INTO req VALUES (%s, %s, %s)", (n * 100 + i, n, i))
                    await aconn.commit()

    async def main() -> None:
        await asyncio.gather(*(client(n) for n in range(clients)))

    asyncio.run(main())
    check_events(direct, lambda n, i: i % 2 == 0)
