#!/usr/bin/env python3
"""pghistory read benchmark: history as users read it (issue 7's targets).

    .venv/bin/python -m bench.read            # PostgreSQL 15, full sizes (a few minutes)
    .venv/bin/python -m bench.read --pg 18
    .venv/bin/python -m bench.read --quick    # small sizes, to prove the script works

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
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.benchlib.reads import as_of, object_history, prune
from tests import pgserver


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
        names = ["server_version", "shared_buffers", "work_mem", "jit", "synchronous_commit"]
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                ([*names, "fsync"],),
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
