#!/usr/bin/env python3
"""pghistory history-browser benchmark: page times and export rate on a big history (issue 15).

    .venv/bin/python -m bench.web            # PostgreSQL 15, 1M events (a few minutes)
    .venv/bin/python -m bench.web --quick    # 20k events, to prove the script works

It starts its own throwaway server (tests/pgserver.py), records a shop's history (orders, their
lines and customers, with contexts), then measures on this machine:

  pages   each page of pghist.web through Starlette's test client (the whole request: token
          check, queries, template rendering), median and max of --samples requests after a
          warm-up; target: the overview and a filtered page under 100 ms at 1M events
  export  `pghistory export --format csv` of every event in a child process: events per second
          and the child's peak resident memory, beside the same export of a tenth of the
          history (constant memory: the two peaks stay close, under a fixed ceiling)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import psycopg
from starlette.testclient import TestClient

from pghist import web
from tests import pgserver

MEMORY_CEILING_MB = 150  # the export's peak RSS must stay under this, whatever the history's size


def record(conn: psycopg.Connection, events: int) -> dict[str, int]:
    """About ``events`` events: orders (an insert and ~3 updates each) and twice as many lines."""
    orders = max(100, events // 10)
    customers = max(10, orders // 100)
    conn.execute(
        """
        CREATE TABLE customer (id int PRIMARY KEY, name text, email text);
        CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customer,
                             status text, total numeric, note text);
        CREATE TABLE order_line (id int PRIMARY KEY, order_id int REFERENCES orders,
                                 sku text, qty int);
        SELECT pghistory.track('customer');
        SELECT pghistory.track('orders', pghistory.insert_event(), pghistory.update_event(),
                               pghistory.delete_event());
        SELECT pghistory.track('order_line');
        """
    )
    with conn.transaction():
        conn.execute('SELECT pghistory.set_context(\'{"user": "import", "job": "load"}\')')
        conn.execute(
            "INSERT INTO customer SELECT g, 'customer ' || g, 'c' || g || '@example.com'"
            " FROM generate_series(1, %s) g",
            (customers,),
        )
        conn.execute(
            "INSERT INTO orders SELECT g, 1 + g %% %s, 'new', g * 1.5, NULL"
            " FROM generate_series(1, %s) g",
            (customers, orders),
        )
        conn.execute(
            "INSERT INTO order_line SELECT g, 1 + g %% %s, 'sku-' || (g %% 97), 1"
            " FROM generate_series(1, %s) g",
            (orders, orders * 2),
        )
    # later changes, each transaction with its own user
    steps = [
        ("ann", "UPDATE orders SET status = 'paid'"),
        ("bob", "UPDATE order_line SET qty = qty + 1"),
        ("ann", "UPDATE orders SET total = total + 1"),
        ("cy", "UPDATE order_line SET qty = qty + 1"),
        ("bob", "UPDATE orders SET status = 'shipped' WHERE id % 2 = 0"),
    ]
    done = orders + orders * 2 + customers
    for user, statement in steps:
        if done >= events:
            break
        with conn.transaction():
            conn.execute(
                "SELECT pghistory.set_context(jsonb_build_object('user', %s::text))", (user,)
            )
            done += conn.execute(statement).rowcount
    conn.execute("VACUUM ANALYZE")
    row = conn.execute("SELECT count(*) FROM pghistory.events").fetchone()
    assert row is not None
    (total,) = row
    return {"events": total, "orders": orders, "customers": customers}


def page_times(dsn: str, orders: int, samples: int) -> list[dict[str, Any]]:
    app = web.app(dsn, token=None)
    middle = orders // 2
    pages = [
        ("overview page", "/"),
        ("all events, first page", "/events"),
        ("one table", "/events?table=orders"),
        ("one table, one label", "/events?table=orders&label=update"),
        ("one object", f"/events?table=orders&obj={middle}"),
        ("one context key", "/events?context=user:bob"),
        ("a time range", None),  # filled in below
        ("object timeline with related events", f"/object?table=orders&obj={middle}"),
    ]
    results = []
    with TestClient(app) as client, psycopg.connect(dsn) as conn:
        span_row = conn.execute(
            "SELECT min(pgh_created_at), max(pgh_created_at) FROM orders_event"
        ).fetchone()
        assert span_row is not None
        first, last = span_row
        span = urllib.parse.urlencode({"since": first.isoformat(), "until": last.isoformat()})
        pages[6] = ("a time range", "/events?" + span)
        # the second page of one table, through the link the first page shows
        text = client.get("/events?table=orders").text
        marker = 'rel="next" href="'
        if marker in text:
            link = text.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&")
            pages.append(("one table, next page", link))
        for name, url in pages:
            assert url is not None
            for _ in range(3):  # warm the cache, the pool and the plans
                response = client.get(url)
                assert response.status_code == 200, (url, response.text[-500:])
            times = []
            for _ in range(samples):
                start = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200
            results.append(
                {
                    "page": name,
                    "url": url,
                    "median_ms": round(statistics.median(times), 1),
                    "max_ms": round(max(times), 1),
                }
            )
    return results


def export(dsn: str, args: list[str]) -> dict[str, Any]:
    """`pghistory export` in a child process: rows, seconds, peak RSS (from wait4)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "events.csv"
        start = time.perf_counter()
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pghist",
                "export",
                "--dsn",
                dsn,
                "--format",
                "csv",
                "-o",
                str(out),
                *args,
            ],
            stderr=subprocess.PIPE,
        )
        assert child.stderr is not None
        stderr = child.stderr.read().decode()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        assert child.returncode == 0, stderr
        with out.open() as f:
            rows = sum(1 for _ in f) - 1  # without the header
        size = out.stat().st_size
    return {
        "events": rows,
        "seconds": round(seconds, 1),
        "events_per_s": round(rows / seconds),
        "mb": round(size / 1e6, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # kilobytes on Linux
        "progress_lines": stderr.count("exported"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, help="history size (default 1,000,000; quick 20,000)")
    parser.add_argument("--samples", type=int, help="requests per page (default 20; quick 5)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    events = args.events or (20_000 if args.quick else 1_000_000)
    samples = args.samples or (5 if args.quick else 20)
    with pgserver.start(args.pg) as server, psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pghistory")
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name IN"
                " ('server_version', 'shared_buffers', 'work_mem', 'jit', 'synchronous_commit',"
                " 'fsync', 'max_parallel_workers_per_gather')"
            ).fetchall()
        )
        sizes = record(conn, events)
        pages = page_times(server.dsn(), sizes["orders"], samples)
        small = export(server.dsn(), ["orders", "--label", "insert"])
        full = export(server.dsn(), [])
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "settings": settings,
        "history": sizes,
        "pages": pages,
        "export_small": small,
        "export": full,
        "memory_ceiling_mb": MEMORY_CEILING_MB,
    }
    print(
        f"pghistory web benchmark, PostgreSQL {settings['server_version']}, {results['machine']},"
        f" {results['date']}"
    )
    print(f"settings: {', '.join(f'{k}={v}' for k, v in sorted(settings.items()))}")
    print(
        f"history: {sizes['events']:,} events (orders {sizes['orders']:,}, lines"
        f" {sizes['orders'] * 2:,}, customers {sizes['customers']:,}); {samples} requests per page"
    )
    print()
    print("| page | median | max | target |")
    print("|---|---|---|---|")
    for p in pages:
        target = (
            "< 100 ms"
            if p["page"] in ("overview page", "one table", "one table, one label")
            else ""
        )
        label = "overview page (ms)" if p["page"] == "overview page" else p["page"]
        print(f"| {label} | {p['median_ms']} ms | {p['max_ms']} ms | {target} |")
    print()
    print("| export (pghistory export --format csv) | events | seconds | MB written | peak RSS |")
    print("|---|---|---|---|---|")
    for name, e in (("a tenth (orders' inserts)", small), ("everything", full)):
        print(f"| {name} | {e['events']:,} | {e['seconds']} | {e['mb']} | {e['peak_rss_mb']} MB |")
    print()
    print(f"| export, events per second | {full['events_per_s']:,} |")
    verdict = "yes" if full["peak_rss_mb"] < MEMORY_CEILING_MB else "NO"
    peak = full["peak_rss_mb"]
    print(f"| export peak memory under {MEMORY_CEILING_MB} MB | {verdict} ({peak} MB) |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if full["peak_rss_mb"] < MEMORY_CEILING_MB else 1


if __name__ == "__main__":
    sys.exit(main())
