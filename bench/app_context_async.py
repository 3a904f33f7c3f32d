#!/usr/bin/env python3
"""pghistory application benchmark, async side: the ambient request context per ASGI request.

    .venv/bin/python -m bench.app_context_async            # PostgreSQL 15, about 2 minutes
    .venv/bin/python -m bench.app_context_async --quick    # a few requests, to prove it works

bench/app_context.py measures a Flask app (WSGI, sync psycopg); this one serves the same two
requests from a Starlette app with SQLAlchemy's async ORM, on the two async drivers
instrument() supports, each in three variants:

  plain        no middleware, engine not instrumented
  middleware   pghist.asgi.ContextMiddleware only
  context      middleware + pghist.sqlalchemy.instrument(engine)

psycopg (async) sends the context in the transaction's BEGIN; asyncpg in a statement of its
own, just before the INSERT (README, "Python applications"). "plain again" is a second plain
psycopg app: the resolution of the run. Each driver's engines share one server connection,
requests are ASGI calls awaited one after the other in this process (no HTTP), and rounds
interleave the variants; ratios are medians of per-round ratios against the same driver's
plain variant.
"""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import psycopg
import sqlalchemy as sa
import starlette
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import pghist.asgi
import pghist.sqlalchemy
from bench.app_context import (
    Item,
    arguments,
    backend_cpu,
    describe_server,
    load_average,
    median_ratio,
    prepare,
)
from tests import pgserver

DRIVERS = ("psycopg", "asyncpg")
VARIANTS = tuple(
    (driver, variant)
    for driver in DRIVERS
    for variant in ("plain", "plain again", "middleware", "context")
    if not (driver == "asyncpg" and variant == "plain again")
)
REQUESTS = {
    "write": ("POST", "/items"),
    "read": ("GET", "/items/7"),
}
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


def make_app(variant: str, engine: AsyncEngine) -> ASGIApp:
    if variant == "context":
        pghist.sqlalchemy.instrument(engine)

    async def write(request: Request) -> Response:
        async with AsyncSession(engine) as session, session.begin():
            session.add(Item(name="x", qty=1))
        return Response(status_code=201)

    async def read(request: Request) -> Response:
        async with AsyncSession(engine) as session, session.begin():
            item = await session.get(Item, request.path_params["item_id"])
            assert item is not None
            return JSONResponse({"id": item.id, "qty": item.qty})

    app: ASGIApp = Starlette(
        routes=[
            Route("/items", write, methods=["POST"]),
            Route("/items/{item_id:int}", read, methods=["GET"]),
        ]
    )
    if variant in {"middleware", "context"}:
        app = pghist.asgi.ContextMiddleware(app)
    return app


async def run_requests(app: ASGIApp, kind: str, count: int, pids: set[int]) -> tuple[float, float]:
    """Mean microseconds per request: elapsed, and CPU of this process and the server."""
    method, path = REQUESTS[kind]
    template = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            assert 200 <= message["status"] < 300, message

    cpu = time.process_time() + backend_cpu(pids)
    start = time.perf_counter()
    for _ in range(count):
        await app(dict(template), receive, send)
    elapsed = (time.perf_counter() - start) / count * 1e6
    return elapsed, (time.process_time() + backend_cpu(pids) - cpu) / count * 1e6


async def measure(
    dsn: str, rounds: int, count: int, warmup: int
) -> dict[tuple[str, str, str], list[tuple[float, float]]]:
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    psycopg_connection = await psycopg.AsyncConnection.connect(dsn)
    asyncpg_connection = await asyncpg.connect(
        host=params["host"], port=int(str(params["port"])), user=params["user"], database="postgres"
    )
    shared = {"psycopg": psycopg_connection, "asyncpg": asyncpg_connection}
    pids = {
        "psycopg": {psycopg_connection.info.backend_pid},
        "asyncpg": {asyncpg_connection.get_server_pid()},
    }
    engines, apps = [], {}
    for driver, variant in VARIANTS:

        async def creator(driver: str = driver) -> Any:
            return shared[driver]

        engine = create_async_engine(
            f"postgresql+{driver}://", async_creator=creator, pool_size=1, max_overflow=0
        )
        engines.append(engine)
        apps[driver, variant] = make_app(variant, engine)
    results: dict[tuple[str, str, str], list[tuple[float, float]]] = {
        (driver, variant, kind): [] for driver, variant in VARIANTS for kind in REQUESTS
    }
    try:
        for app in apps.values():  # also opens each engine's connection
            for kind in REQUESTS:
                await run_requests(app, kind, warmup, set())
        for round_no in range(rounds):
            for kind in REQUESTS:
                shift = round_no % len(VARIANTS)
                for driver, variant in VARIANTS[shift:] + VARIANTS[:shift]:
                    measured = await run_requests(apps[driver, variant], kind, count, pids[driver])
                    results[driver, variant, kind].append(measured)
    finally:
        for engine in engines:
            await engine.dispose()
        await psycopg_connection.close()
        await asyncpg_connection.close()
    return results


def main() -> int:
    args, rounds, count, warmup = arguments(__doc__)
    load = load_average()
    with pgserver.start(args.pg) as server:
        dsn = server.dsn()
        settings = prepare(dsn)
        results = asyncio.run(measure(dsn, rounds, count, warmup))
        with psycopg.connect(dsn, autocommit=True) as conn:
            (with_context,) = conn.execute(
                "SELECT count(pgh_context_id) FROM item_event WHERE pgh_label = 'insert'"
            ).fetchone()  # type: ignore[misc]

    print("# The ambient request context, async: cost per request (bench/app_context_async.py)")
    print()
    print(
        f"{describe_server(settings)}, Python {platform.python_version()},"
        f" Starlette {starlette.__version__}, SQLAlchemy {sa.__version__},"
        f" psycopg {psycopg.__version__},"
        f" asyncpg {metadata.version('asyncpg')}; ASGI calls in-process, {rounds} rounds x"
        f" {count} requests per variant{' (--quick)' if args.quick else ''}; load average"
        f" before the run {load}"
    )
    print()
    print(
        "| request | driver | variant | elapsed (us) | elapsed / plain | CPU (us) | CPU / plain |"
    )
    print("|---|---|---|---|---|---|---|")
    figures: dict[str, Any] = {"settings": settings, "rounds": rounds, "requests": count}
    for kind, request in REQUESTS.items():
        for driver, variant in VARIANTS:
            runs, bases = results[driver, variant, kind], results[driver, "plain", kind]
            row = {
                "elapsed_us": statistics.median(r[0] for r in runs),
                "elapsed_ratio": median_ratio([r[0] for r in runs], [b[0] for b in bases]),
                "cpu_us": statistics.median(r[1] for r in runs),
                "cpu_ratio": median_ratio([r[1] for r in runs], [b[1] for b in bases]),
            }
            print(
                f"| {' '.join(request)} | {driver} | {variant} | {row['elapsed_us']:.0f} |"
                f" {row['elapsed_ratio']:.3f} | {row['cpu_us']:.0f} | {row['cpu_ratio']:.3f} |"
            )
            figures[f"{kind} {driver} {variant}"] = row
    print()
    print(
        f"insert events with a context: {with_context} (one per writing request of the two"
        " 'context' variants)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
