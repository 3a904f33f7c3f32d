"""psycopg 3 AsyncConnection works wherever Connection does (API.md section 12).

Every function of the package, awaited on an AsyncConnection against a real server; the
same steps run as on a sync connection (pghist._run), so these check the async executor
and that nothing was left sync-only.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg
import pytest

import pghist
import pghist.core
from pghist import errors


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


def test_every_function_awaits(make_database: Callable[..., str]) -> None:
    dsn = make_database("async_all")

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
            assert await pghist.installed(aconn) is None
            result = await pghist.install(aconn)
            assert result.action == "created"
            assert (await pghist.install(aconn)).action == "unchanged"
            installed = await pghist.installed(aconn)
            assert installed is not None and installed.version == await pghist.version(aconn)

            await aconn.execute("CREATE TABLE orders (id int PRIMARY KEY, total int)")
            event_table = await pghist.track(
                aconn,
                "public.orders",
                pghist.InsertEvent(),
                pghist.UpdateEvent(),
                pghist.DeleteEvent(),
                pghist.ManualEvent("snapshot"),
            )
            assert event_table == "orders_event"
            status = await pghist.status(aconn)
            assert [str(row["event_table"]) for row in status] == ["orders_event"]
            assert await pghist.verify(aconn) == []
            await pghist.sync(aconn)
            await pghist.sync(aconn, "public.orders")

            async with pghist.context(aconn, user=42) as context_id:
                await aconn.execute("INSERT INTO orders VALUES (1, 10)")
                async with pghist.context(aconn, step="inner") as inner_id:
                    assert inner_id == context_id
                    await aconn.execute("UPDATE orders SET total = 11 WHERE id = 1")
            pgh_id = await pghist.create_event(aconn, "public.orders", 1, label="snapshot")
            assert isinstance(pgh_id, int)
            row = await (await aconn.execute("SELECT now()")).fetchone()
            assert row is not None
            middle: datetime.datetime = row[0]
            await asyncio.sleep(0.01)
            await aconn.execute("UPDATE orders SET total = 12 WHERE id = 1")

            events = await pghist.events(aconn, "public.orders", obj=1)
            assert [e["pgh_label"] for e in events] == [
                "insert",
                "update",
                "snapshot",
                "update",
            ]
            assert events[0]["pgh_context_id"] == events[1]["pgh_context_id"] == context_id
            assert events[1]["pgh_context"] == {"user": 42, "step": "inner"}
            assert len(await pghist.events(aconn, "public.orders", limit=1)) == 1

            assert await pghist.as_of(aconn, "public.orders", middle) == [{"id": 1, "total": 11}]
            columns, rows = await pghist.core.as_of_table(aconn, "public.orders", middle)
            assert columns == ["id", "total"] and rows == [{"id": 1, "total": 11}]
            assert await pghist.revert(aconn, "orders_event", events[1]["pgh_id"]) == "updated"
            assert await (await aconn.execute("SELECT total FROM orders")).fetchall() == [(11,)]

            await aconn.execute("INSERT INTO orders VALUES (2, 20)")
            notices: list[str] = []
            assert await pghist.backfill(aconn, "public.orders", progress=notices.append) == 2
            assert notices  # the server's progress notices reached the handler
            assert await pghist.prune(aconn, "public.orders", keep_last=1) > 0

            with pytest.raises(errors.UndefinedTable) as info:
                await pghist.track(aconn, "public.nope")
            assert "nope" in info.value.message
            assert aconn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE

            with pytest.raises(errors.DependentObjectsStillExist):
                await pghist.uninstall(aconn)
            await pghist.untrack(aconn, "public.orders")
            text = await pghist.uninstall(aconn)
            assert text.startswith("dropped extension pghistory")
            assert await pghist.installed(aconn) is None

    run(main)


def test_script_install_and_uninstall(make_database: Callable[..., str]) -> None:
    dsn = make_database("async_script")

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
            result = await pghist.install(aconn, method="script")
            assert (result.method, result.action) == ("script", "created")
            installed = await pghist.installed(aconn)
            assert installed is not None and installed.kind == "script"
            assert "script install" in await pghist.uninstall(aconn)

    run(main)


def test_context_block_rolls_back_and_refuses_bad_values(db_dsn: str) -> None:
    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(db_dsn, autocommit=True) as aconn:
            await aconn.execute("DROP TABLE IF EXISTS acct CASCADE")
            await aconn.execute("CREATE TABLE acct (id int PRIMARY KEY)")
            await pghist.track(aconn, "acct")
            with pytest.raises(RuntimeError):
                async with pghist.context(aconn, user="x"):
                    await aconn.execute("INSERT INTO acct VALUES (1)")
                    raise RuntimeError("boom")
            assert await (await aconn.execute("SELECT count(*) FROM acct")).fetchone() == (0,)
            with pytest.raises(TypeError, match="'thing' is not JSON serializable"):
                pghist.context(aconn, thing=object())
            # the connection forms are not interchangeable: a clear error, nothing sent
            with pytest.raises(TypeError, match="async with"), pghist.context(aconn, user=1):
                pass
            assert aconn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            await pghist.untrack(aconn, "acct", drop_events=True)

    run(main)


def test_ambient_context_with_apply_context(db_dsn: str) -> None:
    async def request(n: int) -> None:
        async with (
            await psycopg.AsyncConnection.connect(db_dsn) as aconn,
            pghist.context(request=n),
        ):
            await pghist.apply_context(aconn)
            await asyncio.sleep(0.001 * (5 - n))
            await aconn.execute("INSERT INTO areq VALUES (%s)", (n,))
            await aconn.commit()
            async with aconn.cursor() as cur:  # a cursor works too
                assert await pghist.apply_context(cur) is not None
                await cur.execute("UPDATE areq SET id = id + 100 WHERE id = %s", (n,))
            await aconn.commit()

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(db_dsn, autocommit=True) as aconn:
            await aconn.execute("DROP TABLE IF EXISTS areq CASCADE")
            await aconn.execute("CREATE TABLE areq (id int PRIMARY KEY)")
            await pghist.track(aconn, "areq")
            assert await pghist.apply_context(aconn) is None  # no scope: nothing to do
            await asyncio.gather(*(request(n) for n in range(5)))
            events = await pghist.events(aconn, "areq")
            assert len(events) == 10
            for event in events:
                assert event["pgh_context"] == {"request": event["pgh_data"]["id"] % 100}
            await pghist.untrack(aconn, "areq", drop_events=True)

    run(main)


def test_not_a_connection_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="expected a psycopg Connection or AsyncConnection"):
        pghist.track("dbname=x", "public.t")  # type: ignore[call-overload]
