#!/usr/bin/env python3
"""pghistory read benchmark: history as users read it (issue 7's targets).

    .venv/bin/python bench/read.py            # PostgreSQL 15, full sizes (a few minutes)
    .venv/bin/python bench/read.py --pg 18
    .venv/bin/python bench/read.py --quick    # small sizes, to prove the script works

It starts its own throwaway server (tests/pgserver.py) and measures, on this machine:

  object history  one object's events with diffs through pghistory.events, from a history of
                  1M events over 10k objects (100 per object): median and p95 of 200 objects
                  (target: under 5 ms)
  as_of           pghistory.as_of() of a 100k-row table whose history holds 1.1M events
  prune           pghistory.prune() of one month from a history partitioned by month (the
                  month's partition is dropped), beside the same events deleted row by row
                  from an unpartitioned history
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import pgserver  # noqa: E402
import psycopg  # noqa: E402


def timed(conn: psycopg.Connection, query: str, params: tuple = ()) -> tuple[float, list]:
    start = time.perf_counter()
    rows = conn.execute(query, params).fetchall()
    return (time.perf_counter() - start) * 1000, rows


def object_history(conn: psycopg.Connection, objects: int, per_object: int, samples: int) -> dict:
    conn.execute("CREATE TABLE item (id int PRIMARY KEY, qty int, name text, price numeric)")
    conn.execute("SELECT pghistory.track('item')")
    conn.execute(
        "INSERT INTO item SELECT g, 0, 'item ' || g, g * 1.5 FROM generate_series(1, %s) g",
        (objects,),
    )
    for _ in range(per_object - 1):
        conn.execute("UPDATE item SET qty = qty + 1, price = price + 0.01")
    conn.execute("VACUUM ANALYZE item_event")
    (events,) = conn.execute("SELECT count(*) FROM item_event").fetchone()
    query = (
        "SELECT pgh_id, pgh_label, pgh_data, pgh_diff, pgh_context FROM pghistory.events"
        " WHERE pgh_obj_model = 'item'::regclass AND pgh_obj_id = %s ORDER BY pgh_id"
    )
    rng = random.Random(42)
    for _ in range(20):  # warm the cache and the plan
        timed(conn, query, (str(rng.randint(1, objects)),))
    times = []
    for _ in range(samples):
        ms, rows = timed(conn, query, (str(rng.randint(1, objects)),))
        assert len(rows) == per_object and rows[0][3] is None and rows[1][3] is not None
        times.append(ms)
    times.sort()
    return {
        "events": events,
        "objects": objects,
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
    }


def as_of(conn: psycopg.Connection, rows: int, updates: int) -> dict:
    conn.execute("CREATE TABLE account (id int PRIMARY KEY, balance numeric, owner text)")
    conn.execute(
        "SELECT pghistory.track('account', pghistory.insert_event(), pghistory.update_event(),"
        " pghistory.delete_event())"
    )
    conn.execute(
        "INSERT INTO account SELECT g, 0, 'owner ' || g FROM generate_series(1, %s) g", (rows,)
    )
    middle = None
    for i in range(updates):
        conn.execute("UPDATE account SET balance = balance + 1")
        if i == updates // 2:
            (middle,) = conn.execute("SELECT clock_timestamp()").fetchone()
    conn.execute("VACUUM ANALYZE account_event")
    (events,) = conn.execute("SELECT count(*) FROM account_event").fetchone()
    times = []
    for at in (middle, middle, middle):
        ms, result = timed(conn, "SELECT count(*) FROM pghistory.as_of(NULL::account, %s)", (at,))
        assert result == [(rows,)]
        times.append(ms)
    return {"rows": rows, "events": events, "median_ms": round(statistics.median(times), 1)}


def prune(conn: psycopg.Connection, events: int) -> dict:
    for name, partition in (("clicks_partitioned", "month"), ("clicks_plain", None)):
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, url text)")
        conn.execute("SELECT pghistory.track(%s, partition_by => %s)", (name, partition))
    conn.execute(
        "CREATE TABLE clicks_partitioned_event_p2020 PARTITION OF clicks_partitioned_event"
        " FOR VALUES FROM ('2020-01-01') TO ('2020-02-01')"
    )
    for name in ("clicks_partitioned", "clicks_plain"):
        conn.execute(
            f"INSERT INTO {name}_event (pgh_created_at, pgh_label, pgh_obj_id, id, url)"
            " SELECT '2020-01-01'::timestamptz + g * interval '1 second', 'insert', g %% 1000, g %% 1000,"
            " '/page/' || g FROM generate_series(1, %s) g",
            (events,),
        )
        conn.execute(f"VACUUM ANALYZE {name}_event")
    result = {"events": events}
    for name in ("clicks_partitioned", "clicks_plain"):
        ms, rows = timed(conn, "SELECT pghistory.prune(%s, older_than => '1 year')", (name,))
        assert rows == [(events,)]
        result[name.split("_")[1] + "_ms"] = round(ms, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = (
        {
            "objects": 500,
            "per_object": 20,
            "samples": 20,
            "rows": 2000,
            "updates": 4,
            "prune": 20000,
        }
        if args.quick
        else {
            "objects": 10000,
            "per_object": 100,
            "samples": 200,
            "rows": 100000,
            "updates": 10,
            "prune": 1000000,
        }
    )
    with pgserver.start(args.pg) as server, psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pghistory")
        settings = dict(
            conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name IN"
                " ('server_version', 'shared_buffers', 'work_mem', 'jit', 'synchronous_commit', 'fsync')"
            ).fetchall()
        )
        results: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "settings": settings,
            "object_history": object_history(
                conn, sizes["objects"], sizes["per_object"], sizes["samples"]
            ),
            "as_of": as_of(conn, sizes["rows"], sizes["updates"]),
            "prune": prune(conn, sizes["prune"]),
        }
    h, a, p = results["object_history"], results["as_of"], results["prune"]
    print(
        f"pghistory read benchmark, PostgreSQL {settings['server_version']}, {results['machine']},"
        f" {results['date']}"
    )
    print(f"settings: {', '.join(f'{k}={v}' for k, v in sorted(settings.items()))}")
    print()
    print("| read | size | time | target |")
    print("|---|---|---|---|")
    print(
        f"| one object's history with diffs (pghistory.events) | {h['events']:,} events,"
        f" {h['objects']:,} objects | median {h['median_ms']} ms, p95 {h['p95_ms']} ms | < 5 ms |"
    )
    print(
        f"| as_of() of the whole table | {a['rows']:,} rows, {a['events']:,} events |"
        f" {a['median_ms']} ms | |"
    )
    print(
        f"| prune() one month | {p['events']:,} events | partitioned {p['partitioned_ms']} ms,"
        f" unpartitioned {p['plain_ms']} ms | |"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
