#!/usr/bin/env python3

"""Where the time goes: EXPLAIN ANALYZE of the statements pghistory's triggers run.

    .venv/bin/python bench/explain.py                       # PG 15, every variant, bulk UPDATE
    .venv/bin/python bench/explain.py --workload insert --variant pghistory
    .venv/bin/python bench/explain.py --set jit=off         # the same with a server setting
    .venv/bin/python bench/explain.py --experiments         # timed alternatives (see below)

Same server, settings and tables as bench/run.py. For each variant the bulk statement runs
under EXPLAIN (ANALYZE, BUFFERS) with auto_explain (log_analyze, log_buffers,
log_nested_statements, log_level = notice), so the plans of the INSERT ... SELECT the
generated trigger function runs are printed, with their JIT and temp-file lines, next to the
"Trigger ...: time=... calls=..." line of the outer statement. Row-level variants run one
nested INSERT per row; only the slowest few are shown (--nested-min-ms).

--experiments times alternatives of the generated statement-level function on the same
server (the extension files are not touched): the function with SET jit = off, with a larger
work_mem, the context index made partial (WHERE pgh_context_id IS NOT NULL), and the row-level
function with the no-context case of current_context_id() inlined. Each is timed --reps times
against the untracked statement and the generated function, interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
import run as bench

AUTO_EXPLAIN = [
    "LOAD 'auto_explain'",
    "SET auto_explain.log_analyze = on",
    "SET auto_explain.log_buffers = on",
    "SET auto_explain.log_timing = on",
    "SET auto_explain.log_nested_statements = on",
    "SET auto_explain.log_level = notice",
]


def timed(
    b: bench.Bench,
    v: bench.Variant,
    sql: str,
    setup: list[str] | None = None,
    notices: list[str] | None = None,
) -> tuple[float, list[tuple[Any, ...]]]:
    b.reset(v)
    with psycopg.connect(b.dsn(), autocommit=True) as conn:
        if notices is not None:
            conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        for s in setup or []:
            conn.execute(s)
        t0 = time.perf_counter()
        cur = conn.execute(sql)
        ms = (time.perf_counter() - t0) * 1000
        rows = cur.fetchall() if cur.description else []
    return ms, rows


def explain(b: bench.Bench, args: argparse.Namespace) -> None:
    for v in b.variants:
        if args.variant and v.key not in args.variant:
            continue
        sql = b.bulk_sql(args.workload, v.table)
        notices: list[str] = []
        setup = [*AUTO_EXPLAIN, f"SET auto_explain.log_min_duration = {args.nested_min_ms}"]
        ms, rows = timed(b, v, f"EXPLAIN (ANALYZE, BUFFERS) {sql}", setup, notices)
        print(f"\n======== {v.title}: {sql}  ({ms:.1f} ms)")
        print("\n".join(r[0] for r in rows))
        nested = [n for n in notices if "Query Text: EXPLAIN" not in n]
        for n in nested[: args.max_nested]:
            print("---- nested statement (auto_explain) ----")
            print(n)
        if len(nested) > args.max_nested:
            print(f"---- ({len(nested) - args.max_nested} more nested plans not shown)")


# --------------------------------------------------------------------------------------------
# Experiments: alternatives of the generated functions, timed on the same server
# --------------------------------------------------------------------------------------------


def function_of(b: bench.Bench, v: bench.Variant) -> str:
    assert v.event_table is not None
    return str(
        b.sql(
            "SELECT trigger_function::text FROM pghistory._event_table "
            "WHERE event_table = %s::regclass",
            v.event_table,
        )[0][0]
    )


def experiments(b: bench.Bench, args: argparse.Namespace) -> None:
    stmt, row = b.by_key.get("pgh_stmt"), b.by_key.get("pgh_row")
    untracked = b.by_key["untracked"]
    if stmt is None or row is None:
        print("--experiments needs the level variants (drop --no-levels)")
        return
    fstmt, frow = function_of(b, stmt), function_of(b, row)
    ctx_index = b.sql(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = %s::regclass AND pg_get_indexdef(indexrelid) LIKE '%%(pgh_context_id)'",
        stmt.event_table,
    )
    row_src = b.sql(f"SELECT pg_get_functiondef('{frow}'::regprocedure)")[0][0]
    ctx_call = "pghistory.current_context_id()"
    fast = (
        "CASE WHEN coalesce(current_setting('pghistory.context_id', true), '') = '' "
        "THEN NULL::uuid ELSE pghistory.current_context_id() END"
    )

    def alter(fn: str, *sets: str) -> Callable[[], None]:
        def do() -> None:
            for s in sets:
                b.sql(f"ALTER FUNCTION {fn} SET {s}")

        return do

    def undo_alter(fn: str, *names: str) -> Callable[[], None]:
        def do() -> None:
            for n in names:
                b.sql(f"ALTER FUNCTION {fn} RESET {n}")

        return do

    def partial_index() -> None:
        name, _ = ctx_index[0]
        b.sql(f"DROP INDEX {name}")
        b.sql(
            f"CREATE INDEX {name.split('.')[-1]} ON {stmt.event_table} (pgh_context_id) "
            "WHERE pgh_context_id IS NOT NULL"
        )

    def full_index() -> None:
        name, ddl = ctx_index[0]
        b.sql(f"DROP INDEX {name}")
        b.sql(ddl)

    # (name, variant, workloads, apply, undo)
    cases: list[
        tuple[str, bench.Variant, tuple[str, ...], Callable[[], None], Callable[[], None]]
    ] = [
        ("untracked", untracked, ("update", "insert", "noop"), lambda: None, lambda: None),
        ("statement: as generated", stmt, ("update", "insert", "noop"), lambda: None, lambda: None),
        (
            "statement: SET jit = off",
            stmt,
            ("update", "noop"),
            alter(fstmt, "jit = off"),
            undo_alter(fstmt, "jit"),
        ),
        (
            "statement: SET jit = off, work_mem = 64MB",
            stmt,
            ("update", "noop"),
            alter(fstmt, "jit = off", "work_mem = '64MB'"),
            undo_alter(fstmt, "jit", "work_mem"),
        ),
        (
            "statement: jit off + partial context index",
            stmt,
            ("update", "insert"),
            lambda: (alter(fstmt, "jit = off")(), partial_index()),
            lambda: (undo_alter(fstmt, "jit")(), full_index()),
        ),
        ("row: as generated", row, ("update", "insert"), lambda: None, lambda: None),
    ]
    if ctx_call in row_src:
        cases.append(
            (
                "row: no-context fast path inlined",
                row,
                ("update", "insert"),
                lambda: b.sql(row_src.replace(ctx_call, fast)),
                lambda: b.sql(row_src),
            )
        )
    results: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.reps):
        for name, v, workloads, apply, undo in cases:
            apply()
            try:
                for wl in workloads:
                    ms, _ = timed(b, v, b.bulk_sql(wl, v.table))
                    results.setdefault((name, wl), []).append(ms)
                    bench.progress(f"{name:<45} {wl:<7} round {rep + 1}: {ms:8.1f} ms")
            finally:
                undo()
    base = {
        wl: statistics.median(results[("untracked", wl)]) for wl in ("update", "insert", "noop")
    }
    print(
        f"\nmedian of {args.reps} runs, {b.cfg.touched} rows per statement, "
        f"ratio to the untracked statement"
    )
    rows = []
    for name, _, workloads, _, _ in cases:
        cells = [name]
        for wl in ("update", "insert", "noop"):
            if wl in workloads:
                m = statistics.median(results[(name, wl)])
                cells.append(f"{m:.1f} ms ({m / base[wl]:.2f}x)")
            else:
                cells.append("-")
        rows.append(cells)
    print(bench.table(["variant", "bulk UPDATE", "bulk INSERT", "no-op UPDATE"], rows))


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/explain.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--pg", type=int, default=15)
    p.add_argument("--workload", default="update", choices=("update", "insert", "noop"))
    p.add_argument("--variant", action="append", help="variant key(s) (default: all)")
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--touched", type=int, default=100_000)
    p.add_argument(
        "--nested-min-ms",
        type=float,
        default=1.0,
        help="show nested statements slower than this (default 1 ms)",
    )
    p.add_argument("--max-nested", type=int, default=3)
    p.add_argument("--experiments", action="store_true")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = p.parse_args()
    argv = ["--pg", str(args.pg), "--rows", str(args.rows), "--touched", str(args.touched)]
    for s in args.set:
        argv += ["--set", s]
    cfg, _ = bench.parse_args(argv)
    b = bench.Bench(cfg)
    try:
        b.start()
        b.setup()
        print("settings: " + ", ".join(f"{k}={v}" for k, v in b.settings().items()))
        print("levels: " + "; ".join(f"{t}: {lv}" for t, lv in b.results["levels"].items()))
        if args.experiments:
            experiments(b, args)
        else:
            explain(b, args)
    finally:
        b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
