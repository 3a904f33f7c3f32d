#!/usr/bin/env python3
"""pghistory write benchmark: the ratios of issue 13, every variant in one run, same settings.

    .venv/bin/python -m bench.run                       # PostgreSQL 15, the issue's variants
    .venv/bin/python -m bench.run --quick               # smoke run for CI (small sizes)
    .venv/bin/python -m bench.run --variants all        # plus pghistory's hand-altered shapes
    .venv/bin/python -m bench.run --set jit=off --json out.json

It starts its own throwaway server (tests/pgserver.py, this checkout's extension), builds the
same table once per variant and measures single-row UPDATE / INSERT (pgbench, 1 and 2 clients),
a single-row UPDATE that changes nothing, bulk UPDATE / INSERT / no-op UPDATE of 100k rows of a
200k-row table, bytes per event, a context's cost per single-row write, and one object's history
with diffs at 1M events. Variants (benchlib/variants.py): untracked, floor (no trigger), a lean
hand-written row trigger, a hand-written statement trigger with jit off, django-pghistory's own
generated SQL (made in bench/.venv-django from pinned PyPI packages; skipped with a note where
that fails), and pghistory.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.benchlib import django_ref, machine, reads, report, server, variants
from bench.benchlib.writes import Config, Writes


def parse_args(argv: list[str]) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--pg", type=int, default=15, choices=server.SUPPORTED_VERSIONS)
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, one round")
    p.add_argument(
        "--variants",
        default=",".join(variants.ISSUE_SET),
        help="comma-separated keys, or 'all' (default: the issue's set)",
    )
    p.add_argument(
        "--only", default="single,bulk,context,read", help="parts among single,bulk,context,read"
    )
    p.add_argument("--no-django", action="store_true", help="skip the django-pghistory column")
    p.add_argument(
        "--no-context",
        default="stmt,pgh_b,pgh_row,pgh_stmt",
        help="variants left out of the context part (default: stmt,pgh_b,pgh_row,pgh_stmt)",
    )
    p.add_argument("--json", metavar="PATH", help="also write all measurements to PATH")
    p.add_argument("--rows", type=int, help="rows in the table (default 200000)")
    p.add_argument("--touched", type=int, help="rows per bulk statement (default 100000)")
    p.add_argument("--reps", type=int, help="rounds of bulk measurements (default 3)")
    p.add_argument("--pgbench-reps", type=int, help="rounds of pgbench runs (default 3)")
    p.add_argument("--seconds", type=int, default=5, help="pgbench -T per run (default 5)")
    p.add_argument("--clients", default="1,2", help="pgbench client counts (default 1,2)")
    p.add_argument("--no-pin", action="store_true", help="do not pin pgbench clients to CPUs")
    p.add_argument(
        "--metric",
        choices=("cpu", "wall"),
        default="cpu",
        help="cpu (default): CPU time of the run's own processes per write, robust to other "
        "processes' load; wall: elapsed time",
    )
    p.add_argument(
        "--foreign",
        type=float,
        default=0.10,
        help="remeasure when other processes used more than this share of the CPUs",
    )
    p.add_argument("--retries", type=int, default=3, help="remeasurements at most (default 3)")
    p.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for quiet")
    p.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="server setting"
    )
    a = p.parse_args(argv)
    for item in a.set:
        name, sep, _ = item.partition("=")
        if not sep or not re.fullmatch(r"[a-z_.]+", name):
            p.error(f"--set takes NAME=VALUE, not {item!r}")
    bad = [x for x in a.only.split(",") if x not in ("single", "bulk", "context", "read")]
    if bad:
        p.error(f"--only: unknown part(s) {bad}; use single, bulk, context, read")
    q = a.quick
    cfg = Config(
        pg=a.pg,
        rows=a.rows or (20_000 if q else 200_000),
        touched=a.touched or (10_000 if q else 100_000),
        reps=a.reps or (1 if q else 3),
        pgbench_reps=a.pgbench_reps or (1 if q else 3),
        seconds=a.seconds,
        transactions=500 if q else 0,
        clients=tuple(int(c) for c in a.clients.split(",")),
        pin=not a.no_pin,
        foreign=a.foreign,
        retries=0 if q else a.retries,  # the smoke run only proves the script works
        max_wait=0.0 if q else a.max_wait,
    )
    return cfg, a


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: stop the server, remove its files


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    settings = dict(server.SERVER_SETTINGS)
    settings.update(item.split("=", 1) for item in args.set)
    meta: dict[str, Any] = {"notes": [], **machine.describe()}
    w = Writes(cfg, [], settings)
    try:
        try:
            w.start()
        except server.PgServerError as exc:
            print(f"bench: could not start PostgreSQL {cfg.pg}: {exc}")
            return 2
        django = None
        if not args.no_django:
            machine.progress("generating django-pghistory's SQL")
            django, note = django_ref.generate("bench_django", w.database())
            meta["notes"].append(note)
        known = variants.catalogue(django)
        keys = list(known) if args.variants == "all" else args.variants.split(",")
        unknown = [k for k in keys if k not in known and k != "django"]
        if unknown:
            print(f"bench: unknown variant(s) {unknown}; known: {', '.join(known)}")
            return 2
        w.variants = [known[k] for k in keys if k in known]
        w.by_key = {v.key: v for v in w.variants}
        w.no_context = set(args.no_context.split(","))
        w.setup()
        assert w.admin is not None
        meta["settings"] = server.settings_of(w.admin)
        parts = args.only.split(",")
        if "single" in parts:
            w.single_rows()
        if "bulk" in parts:
            w.bulk()
        if "context" in parts:
            w.context()
        read_results: dict[str, dict[str, Any]] = {}
        if "read" in parts:
            objects, per_object, samples = (500, 20, 20) if args.quick else (10_000, 100, 200)
            with psycopg.connect(w.dsn(), autocommit=True) as conn:
                for key, setup in (
                    ("pghistory", []),
                    (
                        "pgh_a",
                        [
                            "CREATE INDEX IF NOT EXISTS item_pgh_a_event_pgh_obj_id_idx"
                            " ON item_pgh_a_event (pgh_obj_id)",
                            "DROP INDEX IF EXISTS item_pgh_a_event_pgh_obj_id_text_idx",
                        ],
                    ),
                    ("pgh_c", ["DROP INDEX IF EXISTS item_pgh_c_event_pgh_obj_id_idx"]),
                ):
                    if key not in w.by_key:
                        continue
                    machine.progress(f"reading one object's history ({key})")
                    table = "item" if key == "pghistory" else f"item_{key}"
                    read_results[key] = reads.object_history(
                        conn, objects, per_object, samples, table=table, setup=setup
                    )
        text = report.render(w, meta, read_results, args.metric == "cpu")
        print()
        print(text)
        print(f"\n(total {time.monotonic() - started:.0f}s)")
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "meta": meta,
                        "config": cfg.__dict__,
                        "problems": w.problems,
                        "reads": read_results,
                        **w.results,
                    },
                    indent=1,
                    default=str,
                )
                + "\n"
            )
            print(f"wrote {args.json}")
        return 1 if w.problems else 0
    finally:
        w.stop()


if __name__ == "__main__":
    sys.exit(main())
