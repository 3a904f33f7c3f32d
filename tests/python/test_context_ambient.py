"""The ambient context (API.md section 12): ``pghist.context(**metadata)`` with no connection.

Scopes live in contextvars (threads and asyncio tasks each see their own; nesting merges);
``pghist.apply_context`` puts the current one on a transaction of a plain driver, lazily:
transaction-local settings that the server records only when an event is written.
"""

from __future__ import annotations

import asyncio
import datetime
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg2
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

import pghist
from pghist import _context, errors


@pytest.fixture
def orders(conn: psycopg.Connection[Any]) -> Iterator[str]:
    conn.execute("DROP TABLE IF EXISTS amb_orders CASCADE")
    conn.execute("CREATE TABLE amb_orders (id int PRIMARY KEY, total int)")
    pghist.track(conn, "amb_orders")
    yield "amb_orders"
    pghist.untrack(conn, "amb_orders", drop_events=True)
    conn.execute("DROP TABLE amb_orders")


def contexts(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM pghistory.context").fetchone()
    assert row is not None
    return int(row[0])


# --- the scope itself (no server) -----------------------------------------------------------


def test_scopes_nest_and_merge() -> None:
    assert pghist.current_context() == {}
    with pghist.context(user=42, url="/a") as outer:
        assert outer == {"user": 42, "url": "/a"}
        with pghist.context(url="/b", step=1):
            assert pghist.current_context() == {"user": 42, "url": "/b", "step": 1}
        assert pghist.current_context() == {"user": 42, "url": "/a"}
    assert pghist.current_context() == {}


def test_scope_ends_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), pghist.context(user=1):
        raise RuntimeError("boom")
    assert pghist.current_context() == {}


def test_current_context_is_a_copy() -> None:
    with pghist.context(user=1):
        pghist.current_context()["user"] = 2
        assert pghist.current_context() == {"user": 1}


def test_non_json_value_is_a_type_error_naming_the_key() -> None:
    with pytest.raises(TypeError, match=r"'request' is not JSON serializable") as info:
        pghist.context(user=1, request=object())
    assert "Hint" in str(info.value)
    with pytest.raises(TypeError, match=r"'ratio' is not JSON serializable"):
        pghist.context(ratio=float("nan"))  # JSON has no NaN
    assert pghist.current_context() == {}
    # a middleware's metadata callable may build any mapping: a key JSON cannot name
    with pytest.raises(TypeError, match=r"metadata key \(1, 2\) is not a string"):
        _context.enter({(1, 2): "x"})  # type: ignore[dict-item]
    assert pghist.current_context() == {}
    # what the package converts is fine: dates, UUIDs, decimals
    when = datetime.date(2026, 1, 2)
    with pghist.context(day=when, id=uuid.UUID(int=1)):
        assert pghist.current_context() == {"day": when, "id": uuid.UUID(int=1)}


def test_first_argument_must_be_a_connection() -> None:
    with pytest.raises(TypeError, match="psycopg connection or nothing"):
        pghist.context("user")  # type: ignore[arg-type]


def test_threads_are_isolated() -> None:
    seen: dict[int, list[dict[str, Any]]] = {}
    barrier = threading.Barrier(4)

    def worker(n: int) -> None:
        with pghist.context(worker=n):
            barrier.wait()  # all four scopes are open at once
            seen[n] = [pghist.current_context()]
            with pghist.context(step=n * 10):
                barrier.wait()
                seen[n].append(pghist.current_context())
        seen[n].append(pghist.current_context())

    with pghist.context(main=True):
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert pghist.current_context() == {"main": True}
    for n in range(4):
        # a new thread starts with no scope: the main thread's does not leak into it
        assert seen[n] == [{"worker": n}, {"worker": n, "step": n * 10}, {}]


def test_asyncio_tasks_are_isolated() -> None:
    async def request(n: int) -> list[dict[str, Any]]:
        seen = []
        async with pghist.context(request=n):
            await asyncio.sleep(0.01 * (4 - n))  # interleave the tasks
            seen.append(pghist.current_context())
            async with pghist.context(user=f"u{n}"):
                await asyncio.sleep(0.001)
                seen.append(pghist.current_context())
        seen.append(pghist.current_context())
        return seen

    async def main() -> list[list[dict[str, Any]]]:
        return list(await asyncio.gather(*(request(n) for n in range(4))))

    results = asyncio.run(main())
    for n, seen in enumerate(results):
        assert seen == [{"request": n}, {"request": n, "user": f"u{n}"}, {}]


def test_decorator_sync_and_async() -> None:
    @pghist.context(job="nightly")
    def job() -> dict[str, Any]:
        return pghist.current_context()

    @pghist.context(job="async")
    async def ajob() -> dict[str, Any]:
        await asyncio.sleep(0)
        return pghist.current_context()

    assert job() == {"job": "nightly"}
    with pghist.context(user=1):
        assert job() == {"user": 1, "job": "nightly"}
    assert asyncio.run(ajob()) == {"job": "async"}
    assert pghist.current_context() == {}


# --- applying it to a transaction of a plain driver --------------------------------------------


def test_apply_context_with_psycopg(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str
) -> None:
    with psycopg.connect(db_dsn) as app:
        assert pghist.apply_context(app) is None  # no scope: nothing sent
        app.rollback()
        with pghist.context(user=7, url="/orders"):
            context_id = pghist.apply_context(app)
            app.execute("INSERT INTO amb_orders VALUES (1, 10)")
            app.execute("UPDATE amb_orders SET total = 11 WHERE id = 1")
        app.commit()
        app.execute("UPDATE amb_orders SET total = 12 WHERE id = 1")  # the next transaction
        app.commit()
    rows = pghist.events(conn, "amb_orders")
    assert [r["pgh_context_id"] for r in rows] == [context_id, context_id, None]
    assert rows[0]["pgh_context"] == {"user": 7, "url": "/orders"}


def test_apply_context_with_psycopg2(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str
) -> None:
    app = psycopg2.connect(db_dsn)
    try:
        with pghist.context(user="two"), app.cursor() as cur:
            context_id = pghist.apply_context(cur)
            cur.execute("INSERT INTO amb_orders VALUES (1, 10)")
        app.commit()
    finally:
        app.close()
    (event,) = pghist.events(conn, "amb_orders")
    assert event["pgh_context_id"] == context_id
    assert event["pgh_context"] == {"user": "two"}


def test_apply_context_refuses_autocommit(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str
) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as app, pghist.context(user=1):
        with pytest.raises(errors.ContextError, match="autocommit") as info:
            pghist.apply_context(app)
        assert info.value.hint is not None
        # inside an explicit transaction block it is fine
        with app.transaction():
            assert pghist.apply_context(app) is not None
            app.execute("INSERT INTO amb_orders VALUES (1, 10)")
    assert pghist.events(conn, "amb_orders")[0]["pgh_context"] == {"user": 1}


def test_lazy_context_writes_nothing_for_a_reading_transaction(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str
) -> None:
    before = contexts(conn)
    with psycopg.connect(db_dsn) as app, pghist.context(user=1):
        context_id = pghist.apply_context(app)
        app.execute("SELECT * FROM amb_orders").fetchall()
        # the context is there for the transaction's writes ...
        assert app.execute("SELECT current_setting('pghistory.context_id')").fetchone() == (
            str(context_id),
        )
        app.commit()
    # ... but a transaction that wrote no event left no row
    assert contexts(conn) == before
    assert conn.execute(
        "SELECT count(*) FROM pghistory.context WHERE id = %s", (context_id,)
    ).fetchone() == (0,)


def test_lazy_context_on_a_read_only_database(
    make_database: Any, conn: psycopg.Connection[Any]
) -> None:
    dsn = make_database("ro", extension=True)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
        pghist.track(admin, "t")
        admin.execute("INSERT INTO t VALUES (1)")
        dbname = admin.info.dbname
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
                sql.Identifier(dbname)
            )
        )
    with psycopg.connect(dsn) as app, pghist.context(user=1, url="/list"):
        assert app.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        pghist.apply_context(app)
        assert app.execute("SELECT id FROM t").fetchall() == [(1,)]
        app.commit()
        # a write is refused by the server, as it would be without pghist
        pghist.apply_context(app)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            app.execute("INSERT INTO t VALUES (2)")


def test_lazy_path_records_the_role_like_set_context(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str
) -> None:
    role = f"amb_app_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE ON amb_orders TO {}").format(sql.Identifier(role))
        )
        with psycopg.connect(make_conninfo(db_dsn, user=role)) as app:
            with pghist.context(path="lazy"):
                lazy_id = pghist.apply_context(app)
                app.execute("INSERT INTO amb_orders VALUES (1, 1)")
            app.commit()
            row = app.execute('SELECT pghistory.set_context(\'{"path": "eager"}\')').fetchone()
            assert row is not None
            eager_id = row[0]
            app.execute("INSERT INTO amb_orders VALUES (2, 2)")
            app.commit()
        rows = conn.execute(
            "SELECT id, metadata, set_by FROM pghistory.context WHERE id IN (%s, %s)"
            " ORDER BY metadata->>'path' DESC",
            (lazy_id, eager_id),
        ).fetchall()
        assert rows == [
            (lazy_id, {"path": "lazy"}, role),
            (eager_id, {"path": "eager"}, role),
        ]
        # and the events point at them
        events = pghist.events(conn, "amb_orders")
        assert [e["pgh_context_id"] for e in events] == [lazy_id, eager_id]
    finally:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_context_the_server_cannot_record_fails_the_write(
    db_dsn: str, conn: psycopg.Connection[Any], orders: str
) -> None:
    # JSON text PostgreSQL's jsonb refuses (a NUL character): the write fails, nothing is recorded
    with psycopg.connect(db_dsn) as app, pghist.context(note="a\x00b"):
        pghist.apply_context(app)
        with pytest.raises(psycopg.errors.UntranslatableCharacter):
            app.execute("INSERT INTO amb_orders VALUES (1, 1)")
        app.rollback()
    assert conn.execute("SELECT count(*) FROM amb_orders").fetchone() == (0,)
    assert pghist.events(conn, "amb_orders") == []
