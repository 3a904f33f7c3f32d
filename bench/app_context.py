#!/usr/bin/env python3
"""pghistory application benchmark: what the ambient request context costs per request.

    .venv/bin/python -m bench.app_context            # PostgreSQL 15, about 2 minutes
    .venv/bin/python -m bench.app_context --pg 18
    .venv/bin/python -m bench.app_context --quick    # a few requests, to prove the script works

It starts its own throwaway server (tests/pgserver.py) and serves one Flask + SQLAlchemy ORM
app (psycopg 3 driver) in variants, each with its own engine. All engines hand out the same
server connection (requests run one at a time), so every variant is served by one server
process with the same caches and prepared statements:

  plain        no middleware, engine not instrumented (what an app without pghistory's
               context runs)
  plain again  the same, a second app and engine: the ratio of two identical variants is the
               resolution of the run
  middleware   pghist.wsgi.ContextMiddleware only (the scope per request)
  context      middleware + pghist.sqlalchemy.instrument(engine): every transaction of the
               request carries {"method", "url"}

and two requests: POST /items (one ORM insert into a tracked table, in a transaction: with
the context, the trigger also records the context row) and GET /items/<id> (one ORM read in a
transaction: instrument sends nothing for it, the context is never written). The write also
runs in variants that split the context's cost into its two parts, (a) the settings that put
it on the transaction and (b) the context row the trigger upserts:

  settings unread  middleware + instrument, its statement naming settings pghistory does not
                   read (psycopg 3 sends it in the transaction's BEGIN): (a) without (b)
  settings apart   middleware + the handler sends instrument's statement shape itself (raw
                   DB-API cursor, before the INSERT) on settings pghistory does not read: the
                   statement in a round trip of its own, what asyncpg engines pay

Requests are WSGI calls in this process (a prepared environ, the body iterated and closed as a
server does): no HTTP, so the figures are the strictest (a real server adds its own time to
both sides).

Rounds interleave the variants (order rotated each round); a round runs each variant's
requests back to back. Ratios are the median of per-round ratios against plain of the same
round; times are medians of the per-round means. Targets (issue 12): read-only overhead under
3%, writing under 5%.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import flask
import psycopg
import sqlalchemy as sa
from sqlalchemy import orm
from werkzeug.test import EnvironBuilder

import pghist
import pghist.sqlalchemy
import pghist.wsgi
from pghist import _context
from tests import pgserver

VARIANTS = (
    "plain",
    "plain again",
    "middleware",
    "context",
    "settings unread",
    "settings apart",
)
REQUESTS = ("write", "read")
RUNS = {"write": VARIANTS, "read": VARIANTS[:4]}  # the split variants only differ on a write
# instrument's statement on settings that no trigger reads: its cost without a context row
UNREAD = {
    name: getattr(_context, name).replace("pghistory.", "bench.")
    for name in ("APPLY_SQL", "SET_LOCAL_SQL")
}
SETTINGS_APART_SQL = UNREAD["APPLY_SQL"].format("%s", "%s")


class Base(orm.DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "item"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    name: orm.Mapped[str]
    qty: orm.Mapped[int]


TICK = os.sysconf("SC_CLK_TCK")


def backend_cpu(pids: set[int]) -> float:
    """CPU seconds (user + system) used so far by these server processes."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def make_app(
    variant: str, server_connection: psycopg.Connection[Any]
) -> tuple[Callable[..., Any], sa.Engine]:
    # every variant's engine hands out the same connection (requests run one at a time), so
    # all are served by one server process with the same caches and prepared statements
    engine = sa.create_engine(
        "postgresql+psycopg://", creator=lambda: server_connection, pool_size=1, max_overflow=0
    )
    if variant in {"context", "settings unread"}:
        pghist.sqlalchemy.instrument(engine)
    app = flask.Flask(f"bench_{variant}")

    @app.post("/items")
    def write() -> tuple[str, int]:
        with orm.Session(engine) as session, session.begin():
            if variant == "settings apart":  # before the INSERT, as instrument sends it apart
                cursor = session.connection().connection.cursor()
                try:
                    cursor.execute(SETTINGS_APART_SQL, (str(uuid.uuid4()), '{"method": "POST"}'))
                finally:
                    cursor.close()
            session.add(Item(name="x", qty=1))
        return "", 201

    @app.get("/items/<int:item_id>")
    def read(item_id: int) -> dict[str, Any]:
        with orm.Session(engine) as session, session.begin():
            item = session.get_one(Item, item_id)
            return {"id": item.id, "qty": item.qty}

    wsgi: Callable[..., Any] = app.wsgi_app
    if variant not in {"plain", "plain again"}:
        wsgi = pghist.wsgi.ContextMiddleware(wsgi)
    if variant == "settings unread":
        wsgi = _unread_settings(wsgi)
    return wsgi, engine


def _unread_settings(wsgi: Callable[..., Any]) -> Callable[..., Any]:
    """instrument's own path (in the transaction's BEGIN) on settings no trigger reads: while
    this variant's request runs (requests run one at a time), its statement names bench.*."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        real = {name: getattr(_context, name) for name in UNREAD}
        vars(_context).update(UNREAD)
        try:
            return list(wsgi(environ, start_response))
        finally:
            vars(_context).update(real)

    return app


def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Callable[..., Any]:
    assert status.startswith("20"), status
    return lambda data: None


def environ(kind: str) -> tuple[dict[str, Any], bytes]:
    if kind == "write":
        builder = EnvironBuilder(path="/items", method="POST", data=b"")
    else:
        builder = EnvironBuilder(path="/items/7", method="GET")
    env = builder.get_environ()
    builder.close()
    return env, b""


def run_requests(
    app: Callable[..., Any], kind: str, count: int, pids: set[int]
) -> tuple[float, float]:
    """Mean microseconds per request over ``count`` requests: elapsed, and CPU time of this
    process plus the server processes serving it (what other load on the machine cannot inflate)."""
    base, body = environ(kind)
    cpu = time.process_time() + backend_cpu(pids)
    start = time.perf_counter()
    for _ in range(count):
        env = dict(base)
        env["wsgi.input"] = io.BytesIO(body)
        result = app(env, start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    elapsed = (time.perf_counter() - start) / count * 1e6
    return elapsed, (time.process_time() + backend_cpu(pids) - cpu) / count * 1e6


def prepare(dsn: str) -> dict[str, str]:
    """The tracked table the apps write and read; returns the server settings that matter."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pghistory")
        conn.execute("CREATE TABLE item (id serial PRIMARY KEY, name text NOT NULL, qty int)")
        conn.execute(
            "INSERT INTO item (name, qty) SELECT 'i' || g, g FROM generate_series(1, 1000) g"
        )
        pghist.track(conn, "item")
        conn.execute("VACUUM ANALYZE item")
        names = ("server_version", "fsync", "synchronous_commit", "shared_buffers", "jit")
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}  # type: ignore[index]


def describe_server(settings: dict[str, str]) -> str:
    return (
        f"PostgreSQL {settings['server_version']} (fsync={settings['fsync']},"
        f" synchronous_commit={settings['synchronous_commit']},"
        f" shared_buffers={settings['shared_buffers']}, jit={settings['jit']})"
    )


def median_ratio(values: list[float], bases: list[float]) -> float:
    """The median of per-round ratios (rounds interleave the variants)."""
    return statistics.median(v / b for v, b in zip(values, bases, strict=True))


def arguments(doc: str) -> tuple[argparse.Namespace, int, int, int]:
    """The command line of the app benchmarks: the arguments, then rounds, requests per variant
    and round, and warm-up requests (a few of each with --quick)."""
    parser = argparse.ArgumentParser(description=doc.partition("\n")[0])
    parser.add_argument("--pg", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--requests", type=int, default=300, help="per variant and round")
    parser.add_argument("--json", help="write the raw figures here")
    args = parser.parse_args()
    return args, *((3, 20, 20) if args.quick else (args.rounds, args.requests, 300))


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    args, rounds, count, warmup = arguments(__doc__)
    load = load_average()
    with pgserver.start(args.pg) as server:
        dsn = server.dsn()
        settings = prepare(dsn)
        server_connection = psycopg.connect(dsn)
        pids = {server_connection.info.backend_pid}
        apps = {variant: make_app(variant, server_connection) for variant in VARIANTS}
        try:
            for kind in REQUESTS:  # also opens each engine's connection
                for variant in RUNS[kind]:
                    run_requests(apps[variant][0], kind, warmup, set())
            times: dict[tuple[str, str], list[float]] = {
                (v, k): [] for k in REQUESTS for v in RUNS[k]
            }
            cpus: dict[tuple[str, str], list[float]] = {key: [] for key in times}
            for round_no in range(rounds):
                for kind in REQUESTS:
                    runs = RUNS[kind]
                    shift = round_no % len(runs)
                    for variant in runs[shift:] + runs[:shift]:
                        elapsed, cpu = run_requests(apps[variant][0], kind, count, pids)
                        times[variant, kind].append(elapsed)
                        cpus[variant, kind].append(cpu)
        finally:
            for _, engine in apps.values():
                engine.dispose()
            server_connection.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            (events, with_context) = conn.execute(
                "SELECT count(*), count(pgh_context_id) FROM item_event WHERE pgh_label = 'insert'"
            ).fetchone()  # type: ignore[misc]
            (contexts,) = conn.execute("SELECT count(*) FROM pghistory.context").fetchone()  # type: ignore[misc]

    def ratio(
        data: dict[tuple[str, str], list[float]], variant: str, kind: str, base: str = "plain"
    ) -> float:
        return median_ratio(data[variant, kind], data[base, kind])

    print("# The ambient request context: cost per request (bench/app_context.py)")
    print()
    print(
        f"{describe_server(settings)}, Python {platform.python_version()},"
        f" Flask {metadata.version('flask')}, SQLAlchemy {sa.__version__},"
        f" psycopg {psycopg.__version__};"
        f" WSGI calls in-process, {rounds} rounds x {count} requests per variant"
        f"{' (--quick)' if args.quick else ''}; load average before the run {load}"
    )
    labels = {
        "write": "POST /items: insert one row of a tracked table",
        "read": "GET /items/<id>: read one row (read-only transaction)",
    }
    results: dict[str, Any] = {"settings": settings, "rounds": rounds, "requests": count}
    print()
    print("| request | variant | elapsed (us) | elapsed / plain | CPU (us) | CPU / plain |")
    print("|---|---|---|---|---|---|")
    for kind in REQUESTS:
        for variant in RUNS[kind]:
            row: dict[str, Any] = {}
            for name, data in (("elapsed", times), ("cpu", cpus)):
                row[f"{name}_us"] = statistics.median(data[variant, kind])
                row[f"{name}_ratio"] = ratio(data, variant, kind)
            print(
                f"| {labels[kind]} | {variant} | {row['elapsed_us']:.0f} |"
                f" {row['elapsed_ratio']:.3f} | {row['cpu_us']:.0f} | {row['cpu_ratio']:.3f} |"
            )
            results[f"{kind} {variant}"] = row
    print()
    print(
        "elapsed: wall clock per request; cpu: CPU time per request of this process and of"
        " the server processes serving the variant (other load on the machine does not count)"
    )
    print()
    for what, variant, base in (
        ("(a) the settings, in the BEGIN", "settings unread", "middleware"),
        ("(b) the context row, given (a)", "context", "settings unread"),
        ("the settings as a statement of their own (asyncpg)", "settings apart", "middleware"),
    ):
        elapsed, cpu = (ratio(data, variant, "write", base) for data in (times, cpus))
        print(f"- {what}: {variant} / {base} = {elapsed:.3f} elapsed, {cpu:.3f} CPU")
        results[f"{variant} / {base}"] = {"elapsed": elapsed, "cpu": cpu}
    print()
    print(
        f"insert events: {events} ({with_context} with a context); context rows: {contexts}"
        " (one per writing request with the context, none for reads nor the 'settings' variants)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
