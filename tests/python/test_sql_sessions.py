"""The extension seen from several concurrent sessions (things pg_regress cannot show)."""

from __future__ import annotations

import threading

import psycopg
import pytest


@pytest.fixture
def orders(conn: psycopg.Connection) -> str:
    conn.execute("DROP TABLE IF EXISTS orders, orders_event CASCADE")
    conn.execute("CREATE TABLE orders (id int PRIMARY KEY, status text)")
    conn.execute("SELECT pghistory.track('orders')")
    return "orders"


def test_concurrent_transactions_keep_their_own_context(orders: str, db_dsn: str) -> None:
    a = psycopg.connect(db_dsn)
    b = psycopg.connect(db_dsn)
    try:
        # Both transactions are open at once and interleave their writes.
        a.execute("SELECT pghistory.set_context(%s::jsonb)", ('{"user": "a"}',))
        b.execute("SELECT pghistory.set_context(%s::jsonb)", ('{"user": "b"}',))
        a.execute("INSERT INTO orders VALUES (1, 'from a')")
        b.execute("INSERT INTO orders VALUES (2, 'from b')")
        a.execute("UPDATE orders SET status = 'again a' WHERE id = 1")
        b.execute("UPDATE orders SET status = 'again b' WHERE id = 2")
        a.commit()
        b.commit()
        rows = a.execute(
            "SELECT e.pgh_obj_id, c.metadata->>'user', c.backend_pid = %s"
            " FROM orders_event e JOIN pghistory.context c ON c.id = e.pgh_context_id"
            " ORDER BY e.pgh_id",
            (a.info.backend_pid,),
        ).fetchall()
        assert [(obj, user) for obj, user, _ in rows] == [(1, "a"), (2, "b"), (1, "a"), (2, "b")]
        assert [by_a for _, _, by_a in rows] == [True, False, True, False]
        assert a.execute("SELECT count(DISTINCT pgh_context_id) FROM orders_event").fetchone() == (
            2,
        )
    finally:
        a.close()
        b.close()


def test_many_threads_write_under_their_own_contexts(orders: str, db_dsn: str) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with psycopg.connect(db_dsn) as c:
                for i in range(20):
                    with c.transaction():
                        c.execute(
                            "SELECT pghistory.set_context(jsonb_build_object('worker', %s::int))",
                            (n,),
                        )
                        c.execute("INSERT INTO orders VALUES (%s, 'x')", (n * 1000 + i,))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(db_dsn) as c:
        mismatched = c.execute(
            "SELECT count(*) FROM orders_event e"
            " JOIN pghistory.context c ON c.id = e.pgh_context_id"
            " WHERE (c.metadata->>'worker')::int <> e.pgh_obj_id / 1000"
        ).fetchone()
        assert mismatched == (0,)
        counts = c.execute(
            "SELECT count(DISTINCT pgh_context_id), count(*) FROM orders_event"
        ).fetchone()
        assert counts == (80, 80)


def test_another_session_cannot_reuse_a_context_id(orders: str, db_dsn: str) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as a, psycopg.connect(db_dsn) as b:
        with a.transaction():
            row = a.execute('SELECT pghistory.set_context(\'{"user": "alice"}\')').fetchone()
            assert row is not None
            (ctx,) = row
            a.execute("INSERT INTO orders VALUES (1, 'x')")
        # Session b forges the raw setting with alice's id: its write is refused, nothing is merged.
        b.execute("SELECT set_config('pghistory.context_id', %s, true)", (str(ctx),))
        b.execute(
            "SELECT set_config('pghistory.context_metadata', '{\"user\": \"mallory\"}', true)"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            b.execute("INSERT INTO orders VALUES (2, 'y')")
        assert "belongs to another session" in str(info.value)
        b.rollback()
        # set_context() in b with the forged id is refused the same way.
        b.execute("SELECT set_config('pghistory.context_id', %s, true)", (str(ctx),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            b.execute('SELECT pghistory.set_context(\'{"user": "mallory"}\')')
        b.rollback()
        assert a.execute(
            "SELECT metadata FROM pghistory.context WHERE id = %s", (ctx,)
        ).fetchone() == ({"user": "alice"},)
        assert a.execute("SELECT count(*) FROM orders_event").fetchone() == (1,)


def test_context_does_not_outlive_its_transaction_on_a_pooled_connection(
    orders: str, db_dsn: str
) -> None:
    # One connection reused for two "requests", as a transaction pool would do.
    with psycopg.connect(db_dsn) as c:
        c.execute("SELECT pghistory.set_context('{\"request\": 1}')")
        c.execute("INSERT INTO orders VALUES (1, 'x')")
        c.commit()
        c.execute("INSERT INTO orders VALUES (2, 'y')")
        c.commit()
        rows = c.execute(
            "SELECT pgh_obj_id, pgh_context_id IS NOT NULL FROM orders_event ORDER BY pgh_id"
        ).fetchall()
        assert rows == [(1, True), (2, False)]


TRACK_MANUAL = (
    "SELECT pghistory.track('orders', pghistory.manual_event('m'), model_name => 'orders_manual')"
)


def test_track_of_one_table_is_serialised(orders: str, db_dsn: str) -> None:
    # While one session is inside track() of a table, another waits (and fails fast under
    # lock_timeout).
    with psycopg.connect(db_dsn) as a, psycopg.connect(db_dsn) as b:
        a.execute(
            "SELECT pghistory.track('orders', pghistory.delete_event(),"
            " model_name => 'orders_deletes')"
        )
        b.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            b.execute(TRACK_MANUAL)
        b.rollback()
        a.commit()
        b.execute(TRACK_MANUAL)
        b.commit()
        rows = b.execute("SELECT event_table::text FROM pghistory.tracking ORDER BY 1").fetchall()
        assert rows == [("orders_deletes",), ("orders_event",), ("orders_manual",)]
