"""pytest fixtures for tests/python: a PostgreSQL server and fresh databases.

Which server:
  * PGHISTORY_TEST_DSN set (tests/runner.py does this): use that server. Its version comes
    from PGHISTORY_TEST_PG_VERSION (else the server is asked), its programs from
    PGHISTORY_TEST_PG_BINDIR.
    The pghistory extension files must already be installed there.
  * otherwise start a throwaway server with tests/pgserver.py, version PGHISTORY_TEST_PG
    (default 15), so `pytest tests/python` also works alone.

Fixtures:
  pg_server      (session)  the server: .version (int major), .bindir, .dsn(dbname), .url(dbname),
                            .host, .port, .user, .env() (PG* variables for subprocesses)
  make_database  (function) factory: make_database() -> conninfo of a new empty database, dropped
                            at teardown; make_database(extension=True) clones the pghistory
                            template instead
  db_dsn         (module)   conninfo of a database private to the test module, cloned from a
                            template that already has CREATE EXTENSION pghistory (STYLE.md rule 17)
  conn           (function) psycopg 3 connection to db_dsn, autocommit=True, closed afterwards
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests import pgserver


class ExternalServer:
    """A server someone else started (tests/runner.py): same interface as pgserver.PgServer."""

    def __init__(self, dsn: str, version: int | None, bindir: str | None) -> None:
        self._dsn = dsn
        params = conninfo_to_dict(dsn)
        self.host = str(params.get("host", ""))
        self.port = int(str(params.get("port", 5432)))
        self.user = str(params.get("user", ""))
        self.bindir = Path(bindir) if bindir else None
        if version is None:
            with psycopg.connect(dsn) as c:
                version = int(c.info.server_version) // 10000
        self.version = version
        self.full_version = str(version)

    def dsn(self, dbname: str = "postgres") -> str:
        return make_conninfo(self._dsn, dbname=dbname)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def env(self) -> dict[str, str]:
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": "postgres",
        }

    def stop(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<ExternalServer {self.version} {self.host}:{self.port}>"


class Databases:
    """Creates and drops the test databases of one session."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.prefix = f"pghtest{os.getpid()}"
        self.counter = itertools.count(1)
        self.template: str | None = None

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.server.dsn("postgres"), autocommit=True)

    def new_name(self, label: str) -> str:
        label = re.sub(r"[^a-z0-9_]+", "_", label.lower()).strip("_")
        name = f"{self.prefix}_{next(self.counter)}_{label}"
        return name[:63]

    def create(self, name: str, template: str = "template0") -> str:
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
        with self._admin() as admin:
            for attempt in range(20):
                try:
                    admin.execute(query)
                    break
                except psycopg.errors.ObjectInUse:
                    # an autovacuum worker or a closing connection still holds the template
                    if attempt == 19:
                        raise
                    time.sleep(0.25)
        return str(self.server.dsn(name))

    def drop(self, name: str) -> None:
        with self._admin() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def extension_template(self) -> str:
        """Name of a database with CREATE EXTENSION pghistory done, made on first use."""
        if self.template is None:
            name = f"{self.prefix}_template"
            self.drop(name)
            dsn = self.create(name)
            try:
                with psycopg.connect(dsn, autocommit=True) as c:
                    c.execute("CREATE EXTENSION pghistory")
            except Exception:
                self.drop(name)
                raise
            self.template = name
        return self.template

    def close(self) -> None:
        if self.template is not None:
            self.drop(self.template)
            self.template = None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    dsn = os.environ.get("PGHISTORY_TEST_DSN")
    if dsn:
        version = os.environ.get("PGHISTORY_TEST_PG_VERSION")
        yield ExternalServer(
            dsn, int(version) if version else None, os.environ.get("PGHISTORY_TEST_PG_BINDIR")
        )
        return
    try:
        server = pgserver.start(int(os.environ.get("PGHISTORY_TEST_PG", "15")))
    except pgserver.PgServerError as exc:
        pytest.exit(f"cannot start a PostgreSQL server for the tests: {exc}", returncode=3)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _pghistory_databases(pg_server: Any) -> Iterator[Databases]:
    databases = Databases(pg_server)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def make_database(
    _pghistory_databases: Databases, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """make_database(label="", *, extension=False) -> conninfo of a new database.

    Every database made is dropped at teardown.
    """
    made: list[str] = []

    def make(label: str = "", *, extension: bool = False) -> str:
        name = _pghistory_databases.new_name(label or request.node.name)
        template = _pghistory_databases.extension_template() if extension else "template0"
        dsn = _pghistory_databases.create(name, template)
        made.append(name)
        return dsn

    yield make
    for name in reversed(made):
        _pghistory_databases.drop(name)


@pytest.fixture(scope="module")
def db_dsn(_pghistory_databases: Databases, request: pytest.FixtureRequest) -> Iterator[str]:
    name = _pghistory_databases.new_name(request.module.__name__.rsplit(".", 1)[-1])
    dsn = _pghistory_databases.create(name, _pghistory_databases.extension_template())
    try:
        yield dsn
    finally:
        _pghistory_databases.drop(name)


@pytest.fixture
def conn(db_dsn: str) -> Iterator[psycopg.Connection]:
    connection = psycopg.connect(db_dsn, autocommit=True)
    try:
        yield connection
    finally:
        connection.close()
