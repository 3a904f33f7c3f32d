"""pghist.sqlalchemy.instrument(engine) (API.md section 12), with real engines on a real server.

Every transaction begun inside a ``pghist.context`` scope carries it: ORM sessions, Core
connections, bulk ``session.execute(update(...))`` and raw ``text()`` alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any, cast

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import orm
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

import pghist
import pghist.sqlalchemy
from pghist import _context, errors

SCHEMA = "sa_ctx"


class Base(orm.DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = {"schema": SCHEMA}  # noqa: RUF012
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True, autoincrement=False)
    total: orm.Mapped[int]


def url(dsn: str, driver: str) -> sa.URL:
    params = conninfo_to_dict(dsn)
    return sa.URL.create(
        f"postgresql+{driver}",
        username=str(params["user"]),
        host=str(params["host"]),
        port=int(str(params["port"])),
        database=str(params["dbname"]),
    )


@pytest.fixture
def orders(conn: psycopg.Connection[Any]) -> Iterator[str]:
    """A fresh tracked table sa_ctx.orders for each test."""
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    conn.execute(f"CREATE TABLE {SCHEMA}.orders (id int PRIMARY KEY, total int NOT NULL)")
    pghist.track(conn, f"{SCHEMA}.orders")
    yield f"{SCHEMA}.orders"
    pghist.untrack(conn, f"{SCHEMA}.orders", drop_events=True)
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(SCHEMA)))


SYNC_DRIVERS = ["psycopg", "psycopg2"]
ASYNC_DRIVERS = ["psycopg", "asyncpg"]


@pytest.fixture(params=SYNC_DRIVERS)
def engine(db_dsn: str, request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """An instrumented Engine on each sync driver."""
    engine = sa.create_engine(url(db_dsn, request.param))
    pghist.sqlalchemy.instrument(engine)
    yield engine
    engine.dispose()


def load(session: orm.Session, order_id: int) -> Order:
    """``session.get_one`` (SQLAlchemy 2.0.22+), as the oldest SQLAlchemy we support has it."""
    order = session.get(Order, order_id)
    assert order is not None
    return order


def contexts_of(conn: psycopg.Connection[Any], table: str) -> list[dict[str, Any] | None]:
    return [event["pgh_context"] for event in pghist.events(conn, table)]


def count_contexts(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM pghistory.context").fetchone()
    assert row is not None
    return int(row[0])


def test_orm_session(engine: sa.Engine, conn: psycopg.Connection[Any], orders: str) -> None:
    with orm.Session(engine) as session:
        session.add(Order(id=1, total=10))
        with pghist.context(user=42, reason="import"):
            session.commit()  # the flush, hence the transaction, happens in the scope
        order = session.get(Order, 1)
        assert order is not None
        order.total = 11
        session.commit()  # outside any scope: no context
    assert contexts_of(conn, orders) == [{"user": 42, "reason": "import"}, None]


def test_metadata_arrives_as_given(
    engine: sa.Engine, conn: psycopg.Connection[Any], orders: str
) -> None:
    """Quotes, backslashes (an E'' literal in the BEGIN psycopg 3 sends), newlines and
    non-ASCII text reach the context row unchanged, on every path the settings take."""
    value = "o'brien \\ \"x\" ünï\n; SET LOCAL pghistory.context_id = 'x'"
    with orm.Session(engine) as session:
        with pghist.context(user=value):
            session.add(Order(id=1, total=1))
            session.commit()  # in the BEGIN (psycopg 3), in front of the INSERT (psycopg2)
        with pghist.context(user=value, step=2):
            load(session, 1).total = 2
            session.commit()  # after a read: pipelined (psycopg 3)
    assert contexts_of(conn, orders) == [{"user": value}, {"user": value, "step": 2}]


def test_core_connection_and_text(
    engine: sa.Engine, conn: psycopg.Connection[Any], orders: str
) -> None:
    table = cast("sa.Table", Order.__table__)
    with pghist.context(user="core"):
        with engine.begin() as c:
            c.execute(sa.insert(table).values(id=1, total=1))
            c.execute(sa.text(f"UPDATE {SCHEMA}.orders SET total = 2 WHERE id = 1"))
        with engine.connect() as c:  # autobegin, commit as you go
            c.execute(sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (2, 2)"))
            c.commit()
            c.execute(sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (3, 3)"))
            c.commit()
    rows = pghist.events(conn, orders)
    assert [r["pgh_context"] for r in rows] == [{"user": "core"}] * 4
    # one context per transaction: the begin() block's two events share one, the others their own
    ids = [r["pgh_context_id"] for r in rows]
    assert ids[0] == ids[1] and len(set(ids)) == 3


def test_bulk_statements(engine: sa.Engine, conn: psycopg.Connection[Any], orders: str) -> None:
    with orm.Session(engine) as session, pghist.context(job="bulk"):
        session.execute(sa.insert(Order), [{"id": i, "total": i} for i in range(1, 4)])
        session.execute(sa.update(Order).where(Order.id > 1).values(total=Order.total * 10))
        session.execute(sa.delete(Order).where(Order.id == 3))
        session.commit()
    rows = pghist.events(conn, orders)
    assert [r["pgh_label"] for r in rows] == ["insert"] * 3 + ["update"] * 2
    assert {r["pgh_context"]["job"] for r in rows} == {"bulk"}
    assert len({r["pgh_context_id"] for r in rows}) == 1


def test_nested_scope_in_an_open_transaction_merges(
    engine: sa.Engine, conn: psycopg.Connection[Any], orders: str
) -> None:
    with pghist.context(url="/orders"), orm.Session(engine) as session:
        session.add(Order(id=1, total=1))
        session.flush()  # the transaction begins with the outer scope
        with pghist.context(user="alice"):
            session.add(Order(id=2, total=2))
            session.flush()
        session.commit()
    rows = pghist.events(conn, orders)
    # one transaction, one context: its row holds the merged metadata (as set_context() merges)
    assert rows[0]["pgh_context_id"] == rows[1]["pgh_context_id"]
    assert rows[0]["pgh_context"] == {"url": "/orders", "user": "alice"}


def test_savepoint_rollback_keeps_the_context(
    engine: sa.Engine, conn: psycopg.Connection[Any], orders: str
) -> None:
    with pghist.context(user="sp"), orm.Session(engine) as session:
        nested = session.begin_nested()
        session.add(Order(id=1, total=1))
        session.flush()
        nested.rollback()
        session.add(Order(id=2, total=2))
        session.commit()
    insert = sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (:id, 1)")
    with engine.connect() as c:
        nested_core = c.begin_nested()  # SAVEPOINT, sent outside any scope
        with pghist.context(user="core"):
            c.execute(insert, {"id": 3})  # the context is applied inside the savepoint ...
            nested_core.rollback()  # ... and rolled back with it: the next write sends it again
            c.execute(insert, {"id": 4})
        c.commit()
    assert contexts_of(conn, orders) == [{"user": "sp"}, {"user": "core"}]


def test_threads_each_carry_their_own_context(
    engine: sa.Engine, conn: psycopg.Connection[Any], orders: str
) -> None:
    failures: list[BaseException] = []
    barrier = threading.Barrier(4)

    def request(n: int) -> None:
        try:
            with pghist.context(request=n):
                for i in range(10):
                    with orm.Session(engine) as session:
                        session.add(Order(id=n * 100 + i, total=i))
                        if i == 0:
                            barrier.wait()
                        session.commit()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=request, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    rows = pghist.events(conn, orders)
    assert len(rows) == 40
    for row in rows:
        assert row["pgh_context"] == {"request": row["pgh_data"]["id"] // 100}


def test_select_then_a_write_in_one_string_carries_the_context(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str
) -> None:
    # psycopg2 sends a parameterless text() whole: a SELECT first does not make it read-only
    engine = pghist.sqlalchemy.instrument(sa.create_engine(url(db_dsn, "psycopg2")))
    try:
        with engine.begin() as c:
            c.execute(sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (1, 1)"))
        with pghist.context(user="multi"), engine.begin() as c:
            c.execute(sa.text(f"SELECT 1; UPDATE {SCHEMA}.orders SET total = 2 WHERE id = 1"))
    finally:
        engine.dispose()
    assert contexts_of(conn, orders) == [None, {"user": "multi"}]


def test_reading_transaction_writes_no_context(
    engine: sa.Engine, conn: psycopg.Connection[Any], orders: str
) -> None:
    before = count_contexts(conn)
    with pghist.context(url="/list"), orm.Session(engine) as session:
        assert session.scalars(sa.select(Order)).all() == []
        session.commit()
    assert count_contexts(conn) == before


def test_read_only_database(make_database: Any) -> None:
    dsn = make_database("sa_ro", extension=True)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
        pghist.track(admin, "t")
        admin.execute("INSERT INTO t VALUES (1)")
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
                sql.Identifier(admin.info.dbname)
            )
        )
    engine = pghist.sqlalchemy.instrument(sa.create_engine(url(dsn, "psycopg")))
    try:
        with pghist.context(url="/list"), engine.connect() as c:
            assert c.execute(sa.text("SELECT id FROM t")).all() == [(1,)]
            assert c.execute(sa.text("SHOW transaction_read_only")).scalar() == "on"
            c.commit()
    finally:
        engine.dispose()


def test_instrumenting_twice_is_harmless(
    engine: sa.Engine, conn: psycopg.Connection[Any], orders: str
) -> None:
    assert pghist.sqlalchemy.is_instrumented(engine)
    events = ("do_execute", "do_execute_no_params", "do_executemany")
    once = [len(getattr(engine.dialect.dispatch, name)) for name in events]
    assert once == [1] * len(events)
    assert pghist.sqlalchemy.instrument(engine) is engine
    assert pghist.sqlalchemy.instrument(engine) is engine
    assert [len(getattr(engine.dialect.dispatch, name)) for name in events] == once
    with pghist.context(user=1), engine.begin() as c:
        c.execute(sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (1, 1)"))
    assert contexts_of(conn, orders) == [{"user": 1}]


def test_unsupported_driver_is_refused_at_instrument_time(db_dsn: str) -> None:
    pg8000 = sa.create_engine(url(db_dsn, "pg8000"))
    with pytest.raises(ValueError, match=r"unsupported database driver postgresql\+pg8000"):
        pghist.sqlalchemy.instrument(pg8000)
    assert not pghist.sqlalchemy.is_instrumented(pg8000)
    with pytest.raises(ValueError, match=r"sqlite\+pysqlite.*Hint: use PostgreSQL"):
        pghist.sqlalchemy.instrument(sa.create_engine("sqlite://"))
    with pytest.raises(TypeError, match="takes an Engine or an AsyncEngine"):
        pghist.sqlalchemy.instrument(db_dsn)  # type: ignore[type-var]


@pytest.mark.parametrize("driver", SYNC_DRIVERS)
def test_context_that_cannot_be_applied_fails_the_write(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str, driver: str
) -> None:
    engine = pghist.sqlalchemy.instrument(
        sa.create_engine(url(db_dsn, driver), isolation_level="AUTOCOMMIT")
    )
    try:
        with (
            pghist.context(user=1),
            engine.connect() as c,
            pytest.raises(errors.ContextError, match="autocommit"),
        ):
            c.execute(sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (1, 1)"))
        # outside a scope, the engine works as before
        with engine.connect() as c:
            c.execute(sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (2, 2)"))
    finally:
        engine.dispose()
    assert conn.execute(f"SELECT id FROM {SCHEMA}.orders").fetchall() == [(2,)]
    assert contexts_of(conn, orders) == [None]


def test_context_the_server_refuses_fails_the_write(
    engine: sa.Engine, conn: psycopg.Connection[Any], orders: str
) -> None:
    with pghist.context(note="nul \x00"), orm.Session(engine) as session:
        session.add(Order(id=1, total=1))
        with pytest.raises(sa.exc.DBAPIError, match="unsupported Unicode escape"):
            session.commit()
    assert conn.execute(f"SELECT count(*) FROM {SCHEMA}.orders").fetchone() == (0,)


def test_non_json_metadata_never_reaches_the_server(
    engine: sa.Engine, conn: psycopg.Connection[Any], orders: str
) -> None:
    with orm.Session(engine) as session:
        session.add(Order(id=1, total=1))
        with (
            pytest.raises(TypeError, match="'user' is not JSON serializable"),
            pghist.context(user=object()),
        ):
            session.commit()
    assert contexts_of(conn, orders) == []


@contextlib.contextmanager
def tracing(pgconn: Any) -> Iterator[list[str]]:
    """Yields a list that, when the block ends, holds the messages after which the client
    waited for the server inside it (Query or Sync: one round trip each), from libpq's trace."""
    waits: list[str] = []
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield waits
        finally:
            pgconn.untrace()
        trace.seek(0)
        messages = [line.split("\t") for line in trace.read().splitlines()]
    waits += [
        m[2].split(" ")[0] for m in messages if m[0] == "F" and m[2].startswith(("Query", "Sync"))
    ]


def client_waits(dbapi_connection: Any, work: Any) -> list[str]:
    """The round trips ``work`` makes on ``dbapi_connection`` (see :func:`tracing`)."""
    with tracing(dbapi_connection.pgconn) as waits:
        work()
    return waits


def test_psycopg_context_costs_no_round_trip(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str
) -> None:
    """psycopg 3: the settings go in the round trip of the statement that needs them."""
    engine = pghist.sqlalchemy.instrument(sa.create_engine(url(db_dsn, "psycopg")))
    try:
        with orm.Session(engine) as session:
            dbapi_connection = session.connection().connection.dbapi_connection
            session.rollback()

            def insert(order_id: int) -> None:
                session.add(Order(id=order_id, total=order_id))
                session.commit()

            def read_then_update(order_id: int) -> None:
                load(session, order_id).total += 1
                session.commit()

            plain = client_waits(dbapi_connection, lambda: insert(1))
            plain_update = client_waits(dbapi_connection, lambda: read_then_update(1))
            with pghist.context(user=7):
                # the settings go in the BEGIN psycopg sends before the INSERT
                in_context = client_waits(dbapi_connection, lambda: insert(2))
                # the transaction has begun (a read) when the UPDATE needs them: pipelined
                update_in_context = client_waits(dbapi_connection, lambda: read_then_update(2))
    finally:
        engine.dispose()
    assert len(plain) == 3, plain  # BEGIN, the INSERT, COMMIT
    assert len(in_context) == len(plain), (plain, in_context)
    assert len(plain_update) == 4, plain_update  # BEGIN, the SELECT, the UPDATE, COMMIT
    assert len(update_in_context) == len(plain_update), (plain_update, update_in_context)
    assert contexts_of(conn, orders) == [None, None, {"user": 7}, {"user": 7}]


def test_psycopg_begin_with_the_context_keeps_the_transaction_characteristics(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str
) -> None:
    """The BEGIN that carries the settings is the one psycopg would send: the engine's isolation
    level, and the connection's read-write and deferrable options."""
    engine = pghist.sqlalchemy.instrument(
        sa.create_engine(url(db_dsn, "psycopg"), isolation_level="SERIALIZABLE")
    )
    show = sa.text(
        "SELECT current_setting('transaction_isolation'),"
        " current_setting('transaction_read_only'), current_setting('transaction_deferrable')"
    )
    try:
        with pghist.context(user=5), engine.connect() as c:
            options = c.execution_options(postgresql_readonly=False, postgresql_deferrable=True)
            options.execute(sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (1, 1)"))
            characteristics = options.execute(show).one()
            options.commit()
    finally:
        engine.dispose()
    assert tuple(characteristics) == ("serializable", "off", "on")
    assert contexts_of(conn, orders) == [{"user": 5}]


@pytest.mark.parametrize("psycopg_engine", ["sync", "async"])
def test_psycopg_begin_the_server_refuses_fails_the_write(
    db_dsn: str,
    conn: psycopg.Connection[Any],
    orders: str,
    monkeypatch: pytest.MonkeyPatch,
    psycopg_engine: str,
) -> None:
    """An error in the BEGIN that carries the settings is the statement's error (the server's
    own: here a division by zero planted after the settings), and the session rolls back."""
    monkeypatch.setattr(_context, "SET_LOCAL_SQL", _context.SET_LOCAL_SQL + "; SELECT 1/0")
    insert = sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (1, 1)")
    if psycopg_engine == "sync":
        engine = pghist.sqlalchemy.instrument(sa.create_engine(url(db_dsn, "psycopg")))
        try:
            with engine.connect() as c:
                with pghist.context(user=1), pytest.raises(sa.exc.DataError, match="by zero"):
                    c.execute(insert)
                c.rollback()
                c.execute(insert)  # outside a scope, the connection works as before
                c.commit()
        finally:
            engine.dispose()
    else:

        async def main() -> None:
            engine = pghist.sqlalchemy.instrument(create_async_engine(url(db_dsn, "psycopg")))
            try:
                async with engine.connect() as c:
                    with pytest.raises(sa.exc.DataError, match="by zero"):
                        async with pghist.context(user=1):
                            await c.execute(insert)
                    await c.rollback()
                    await c.execute(insert)
                    await c.commit()
            finally:
                await engine.dispose()

        asyncio.run(main())
    assert contexts_of(conn, orders) == [None]


def test_psycopg_lost_connection_fails_the_write(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str
) -> None:
    """The BEGIN carrying the context fails as a statement would: the write is not sent."""
    engine = pghist.sqlalchemy.instrument(sa.create_engine(url(db_dsn, "psycopg")))
    try:
        with engine.connect() as c:
            pid = c.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            c.rollback()
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pghist.context(user=1), pytest.raises(sa.exc.OperationalError):
                c.execute(sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (1, 1)"))
            assert c.invalidated  # SQLAlchemy saw a disconnect: the pool replaces it
        with pghist.context(user=2), engine.begin() as c:
            c.execute(sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (2, 2)"))
    finally:
        engine.dispose()
    assert contexts_of(conn, orders) == [{"user": 2}]


def test_psycopg2_context_travels_with_the_statement(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str
) -> None:
    """psycopg2: the settings go in front of the statement, one query string (the server saw it
    whole), and the statement's result is still the caller's."""
    engine = pghist.sqlalchemy.instrument(sa.create_engine(url(db_dsn, "psycopg2")))
    insert = sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (:id, :total) RETURNING id, total")
    try:
        with pghist.context(user=3), engine.connect() as c:
            assert c.execute(insert, {"id": 1, "total": 50}).one() == (1, 50)
            pid = cast(Any, c.connection.dbapi_connection).get_backend_pid()
            seen = conn.execute(
                "SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            c.commit()
            # executemany keeps the statement as it is (the settings go just before)
            c.execute(
                sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (:id, 1)"), [{"id": 2}, {"id": 3}]
            )
            c.commit()
    finally:
        engine.dispose()
    assert seen is not None
    assert "set_config('pghistory.context_id'" in seen[0]
    assert f"INSERT INTO {SCHEMA}.orders" in seen[0]
    assert contexts_of(conn, orders) == [{"user": 3}] * 3


def test_psycopg_failing_statement_leaves_the_session_usable(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str
) -> None:
    """The pipeline the settings share with a statement ends with it, whether the server refuses
    the statement or the driver refuses its parameters before sending anything."""
    engine = pghist.sqlalchemy.instrument(sa.create_engine(url(db_dsn, "psycopg")))
    insert = sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (:id, :total)")
    try:
        with pghist.context(user=1), orm.Session(engine) as session:
            session.execute(insert, {"id": 1, "total": 1})
            session.commit()
            with pytest.raises(sa.exc.IntegrityError, match="duplicate key"):
                session.execute(insert, {"id": 1, "total": 2})
            session.rollback()
            with pytest.raises(sa.exc.ProgrammingError, match="cannot adapt"):
                session.execute(insert, {"id": 2, "total": object()})
            session.rollback()
            pgconn = cast(Any, session.connection().connection.dbapi_connection).pgconn
            assert pgconn.pipeline_status == pq.PipelineStatus.OFF
            session.execute(insert, {"id": 3, "total": 3})
            session.commit()
    finally:
        engine.dispose()
    assert conn.execute(f"SELECT id FROM {SCHEMA}.orders ORDER BY id").fetchall() == [(1,), (3,)]
    assert contexts_of(conn, orders) == [{"user": 1}, {"user": 1}]


def test_import_pghist_pulls_in_no_sqlalchemy() -> None:
    code = (
        "import sys, pghist\n"
        "assert 'sqlalchemy' not in sys.modules, 'import pghist imported sqlalchemy'\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(roots & {'sqlalchemy', 'greenlet', 'asyncpg', 'psycopg2'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_extra_names_the_pip_install() -> None:
    # sys.modules[name] = None makes the import fail as if SQLAlchemy were not installed
    code = "import sys\nsys.modules['sqlalchemy'] = None\nimport pghist.sqlalchemy\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert (
        "ImportError: pghist.sqlalchemy needs SQLAlchemy: pip install 'pghistory[sqlalchemy]'"
        in (out.stderr)
    )


# --- AsyncEngine (psycopg async, asyncpg) ---------------------------------------------------


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
def test_async_engine(db_dsn: str, conn: psycopg.Connection[Any], orders: str, driver: str) -> None:
    async def request(engine: AsyncEngine, n: int) -> None:
        async with pghist.context(request=n), AsyncSession(engine) as session:
            session.add(Order(id=n, total=n))
            await asyncio.sleep(0.001 * (8 - n))  # the tasks' transactions interleave
            await session.commit()
            async with pghist.context(user=f"u{n}"):
                await session.execute(sa.update(Order).where(Order.id == n).values(total=n + 100))
                await session.commit()

    async def main() -> None:
        engine = create_async_engine(url(db_dsn, driver))
        assert pghist.sqlalchemy.instrument(engine) is engine
        pghist.sqlalchemy.instrument(engine)  # twice: harmless
        try:
            await asyncio.gather(*(request(engine, n) for n in range(8)))
            async with pghist.context(user="core"), engine.begin() as c:
                await c.execute(sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (100, 1)"))
                await c.execute(sa.text(f"UPDATE {SCHEMA}.orders SET total = 2 WHERE id = 100"))
            before = count_contexts(conn)
            async with pghist.context(url="/list"), AsyncSession(engine) as session:
                assert len((await session.scalars(sa.select(Order))).all()) == 9
                await session.commit()
            assert count_contexts(conn) == before  # a reading transaction wrote nothing
            async with engine.begin() as c:  # outside any scope
                await c.execute(sa.text(f"DELETE FROM {SCHEMA}.orders WHERE id = 100"))
                await c.execute(sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (100, 3)"))
        finally:
            await engine.dispose()

    asyncio.run(main())
    rows = pghist.events(conn, orders)
    for n in range(8):
        mine = [r for r in rows if r["pgh_obj_id"] == str(n)]
        assert [r["pgh_context"] for r in mine] == [
            {"request": n},
            {"request": n, "user": f"u{n}"},
        ]
        # two transactions, two contexts
        assert mine[0]["pgh_context_id"] != mine[1]["pgh_context_id"]
    core = [r for r in rows if r["pgh_obj_id"] == "100"]
    assert [r["pgh_context"] for r in core] == [
        {"user": "core"},
        {"user": "core"},
        None,
    ]


def test_async_psycopg_context_costs_no_round_trip(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str
) -> None:
    """psycopg's async engine: the settings go in the BEGIN psycopg sends anyway, for an ORM
    flush and for a Core executemany alike."""
    many = sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (:id, 1)")

    async def main() -> dict[str, list[str]]:
        engine = pghist.sqlalchemy.instrument(create_async_engine(url(db_dsn, "psycopg")))
        waits: dict[str, list[str]] = {}
        try:
            async with engine.connect() as c:
                pgconn = cast(Any, await c.get_raw_connection()).driver_connection.pgconn
                await c.rollback()
                for n in (1, 2):  # 1 outside any scope, 2 in one

                    def scope(n: int = n) -> Any:
                        return pghist.context(user=9) if n == 2 else contextlib.nullcontext()

                    with tracing(pgconn) as waits[f"orm {n}"]:
                        async with scope(), AsyncSession(c) as session:
                            session.add(Order(id=n, total=1))
                            await session.commit()
                    with tracing(pgconn) as waits[f"many {n}"]:
                        async with scope():
                            await c.execute(many, [{"id": 10 * n}, {"id": 10 * n + 1}])
                            await c.commit()
        finally:
            await engine.dispose()
        return waits

    waits = asyncio.run(main())
    assert len(waits["orm 1"]) == 3, waits  # BEGIN, the INSERT, COMMIT
    assert len(waits["orm 2"]) == len(waits["orm 1"]), waits
    assert len(waits["many 2"]) == len(waits["many 1"]), waits
    assert contexts_of(conn, orders) == [None, None, None, {"user": 9}, {"user": 9}, {"user": 9}]


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
def test_async_autocommit_engine_fails_the_write(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str, driver: str
) -> None:
    async def main() -> None:
        engine = create_async_engine(url(db_dsn, driver), isolation_level="AUTOCOMMIT")
        pghist.sqlalchemy.instrument(engine)
        try:
            async with pghist.context(user=1), engine.connect() as c:
                with pytest.raises(errors.ContextError, match="autocommit"):
                    await c.execute(sa.text(f"INSERT INTO {SCHEMA}.orders VALUES (1, 1)"))
        finally:
            await engine.dispose()

    asyncio.run(main())
    assert conn.execute(f"SELECT count(*) FROM {SCHEMA}.orders").fetchone() == (0,)


def test_async_engine_instruments_its_sync_engine(db_dsn: str) -> None:
    aengine = create_async_engine(url(db_dsn, "asyncpg"))
    pghist.sqlalchemy.instrument(aengine)
    assert pghist.sqlalchemy.is_instrumented(aengine.sync_engine)
