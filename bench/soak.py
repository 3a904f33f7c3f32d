#!/usr/bin/env python3
"""pghistory soak: concurrent tracked writes while tracking changes, then an exact replay.

    .venv/bin/python -m bench.soak                   # 8 clients, 10 minutes, PostgreSQL 15
    .venv/bin/python -m bench.soak --seconds 20      # the short version CI runs
    .venv/bin/python -m bench.soak --clients 4 --pg 18

See benchlib/soak.py for the mix. Exit status 1 when the replay differs from a table, or a
deadlock, serialization failure or other error came from the run.
"""

from __future__ import annotations

import argparse
import sys

from bench.benchlib import machine, server
from bench.benchlib.soak import Soak


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--pg", type=int, default=15, choices=server.SUPPORTED_VERSIONS)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--admin-every", type=float, default=2.0, help="seconds between admin actions")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    meta = machine.describe()
    pg = server.start(a.pg, dict(server.SERVER_SETTINGS))
    try:
        soak = Soak(pg.dsn(), a.clients, a.seconds, a.admin_every, a.seed)
        result = soak.run()
    finally:
        pg.stop()
    t = soak.tally
    total = sum(t.done.values())
    print(
        f"pghistory soak: PostgreSQL {pg.full_version}, {meta['date']}, {meta['nproc']} CPUs, "
        f"load average at start {meta['load']}; {a.clients} clients for {result['elapsed']:.0f} s"
    )
    print(
        f"transactions: {total} ({total / result['elapsed']:.0f}/s); by kind: "
        + ", ".join(f"{k} {v}" for k, v in sorted(t.done.items()))
    )
    print(f"events in history at the end: {result['events']}")
    print("admin actions: " + ", ".join(f"{k} {v}" for k, v in sorted(t.admin.items())))
    bad = {k: v for k, v in result["mismatches"].items() if v}
    print(
        f"replay: {len(result['mismatches'])} tables, "
        + ("every one rebuilt exactly" if not bad else f"MISMATCHED rows: {bad}")
    )
    if t.failures:
        print(f"FAILURES ({len(t.failures)}):")
        for f in t.failures[:20]:
            print(f"  - {f}")
    else:
        print("no deadlock, serialization failure or other error")
    return 1 if bad or t.failures else 0


if __name__ == "__main__":
    sys.exit(main())
