#!/usr/bin/env python3

"""Where the time goes: EXPLAIN ANALYZE of the statements pghistory's triggers run.

    .venv/bin/python bench/explain.py                       # PG 15, every variant, bulk UPDATE
    .venv/bin/python bench/explain.py --workload insert --variant pghistory
    .venv/bin/python bench/explain.py --set jit=off         # the same with a server setting
    .venv/bin/python bench/explain.py --experiments         # timed alternatives (see below)
    .venv/bin/python bench/explain.py --single-row          # the same for single-row writes

Same server, settings and tables as bench/run.py. For each variant the bulk statement runs
under EXPLAIN (ANALYZE, BUFFERS) with auto_explain (log_analyze, log_buffers,
log_nested_statements, log_level = notice), so the plans of the INSERT ... SELECT the
generated trigger function runs are printed, with their JIT and temp-file lines, next to the
"Trigger ...: time=... calls=..." line of the outer statement. Row-level variants run one
nested INSERT per row; only the slowest few are shown (--nested-min-ms).

--experiments times alternatives on the same server (the extension files are not touched):
the generated functions with SET jit = off or a larger work_mem, event tables without one of
their indexes, the old/new pairing replaced by a primary-key join or dropped (bounds, not
options), the row-level function with the no-context case of current_context_id() inlined,
and the floor (no trigger). --single-row does the same for single-row writes (pgbench, 1
client, pinned) and times what setting a context costs by itself. Each case runs --reps
times, interleaved.
"""

from __future__ import annotations

import argparse
import re
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


JOIN_RE = re.compile(
    r"FROM \(SELECT row_number\(\) OVER \(\) AS pgh_row, \* FROM pgh_old\) AS old "
    r"FULL JOIN \(SELECT row_number\(\) OVER \(\) AS pgh_row, \* FROM pgh_new\) AS new "
    r"ON new\.pgh_row = old\.pgh_row(\s+WHERE[^;]*);"
)


Mod = tuple[Callable[[], Any], Callable[[], Any]]


def modifications(b: bench.Bench) -> dict[str, Mod]:
    """Changes to the generated functions and event-table indexes: name -> (apply, undo)."""
    stmt, row = b.by_key["pgh_stmt"], b.by_key["pgh_row"]
    fstmt, frow = function_of(b, stmt), function_of(b, row)
    stmt_src = b.sql(f"SELECT pg_get_functiondef('{fstmt}'::regprocedure)")[0][0]
    row_src = b.sql(f"SELECT pg_get_functiondef('{frow}'::regprocedure)")[0][0]
    ctx_call = "pghistory.current_context_id()"
    fast = (
        "CASE WHEN coalesce(current_setting('pghistory.context_id', true), '') = '' "
        "THEN NULL::uuid ELSE pghistory.current_context_id() END"
    )
    mods: dict[str, Mod] = {
        "jit off": (
            lambda: b.sql(f"ALTER FUNCTION {fstmt} SET jit = off"),
            lambda: b.sql(f"ALTER FUNCTION {fstmt} RESET jit"),
        ),
        "work_mem 64MB": (
            lambda: b.sql(f"ALTER FUNCTION {fstmt} SET work_mem = '64MB'"),
            lambda: b.sql(f"ALTER FUNCTION {fstmt} RESET work_mem"),
        ),
        # what the second SET clause (jit = off) costs per call, at each level
        "pgh_stmt: without SET jit = off": (
            lambda: b.sql(f"ALTER FUNCTION {fstmt} RESET jit"),
            lambda: b.sql(f"ALTER FUNCTION {fstmt} SET jit = off"),
        ),
        "pgh_row: without SET jit = off": (
            lambda: b.sql(f"ALTER FUNCTION {frow} RESET jit"),
            lambda: b.sql(f"ALTER FUNCTION {frow} SET jit = off"),
        ),
        # not an option (the trigger must not run with the writer's search_path and rights);
        # measures what the GUC switch of SECURITY DEFINER ... SET search_path costs per call
        "no SECURITY DEFINER / SET search_path (cost probe)": (
            lambda: (
                b.sql(f"ALTER FUNCTION {frow} RESET ALL"),
                b.sql(f"ALTER FUNCTION {frow} SECURITY INVOKER"),
            ),
            lambda: (
                b.sql(f"ALTER FUNCTION {frow} SECURITY DEFINER"),
                b.sql(f"ALTER FUNCTION {frow} SET search_path = pg_catalog, pg_temp"),
            ),
        ),
    }
    for v in (stmt, row):
        indexes = b.sql(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = %s::regclass",
            v.event_table,
        )
        for name, ddl in indexes:
            if "::text" in ddl:
                mods[f"{v.key}: no pgh_obj_id::text index"] = (
                    lambda name=name: b.sql(f"DROP INDEX {name}"),
                    lambda ddl=ddl: b.sql(ddl),
                )
            if "(pgh_context_id)" in ddl:
                partial = " WHERE " in ddl
                other = (
                    ddl.split(" WHERE ")[0]
                    if partial
                    else ddl + " WHERE pgh_context_id IS NOT NULL"
                )
                mods[f"{v.key}: context index " + ("not partial" if partial else "partial")] = (
                    lambda name=name, other=other: (
                        b.sql(f"DROP INDEX {name}"),
                        b.sql(other),
                    ),
                    lambda name=name, ddl=ddl: (b.sql(f"DROP INDEX {name}"), b.sql(ddl)),
                )
    if JOIN_RE.search(stmt_src):
        mods["pair old/new by primary key (unsafe, bound)"] = (
            lambda: b.sql(
                JOIN_RE.sub(
                    r"FROM pgh_old AS old JOIN pgh_new AS new ON new.id = old.id\1;", stmt_src
                )
            ),
            lambda: b.sql(stmt_src),
        )
        mods["no pairing, no condition (bound)"] = (
            lambda: b.sql(JOIN_RE.sub("FROM pgh_new AS new WHERE true;", stmt_src)),
            lambda: b.sql(stmt_src),
        )
    if ctx_call in row_src:
        mods["no-context fast path inlined"] = (
            lambda: b.sql(row_src.replace(ctx_call, fast)),
            lambda: b.sql(row_src),
        )
    return mods


def run_cases(
    b: bench.Bench,
    mods: dict[str, Mod],
    plan: list[tuple[str, bench.Variant, tuple[str, ...], list[str]]],
    reps: int,
    measure: Callable[[bench.Variant, str], float],
) -> dict[tuple[str, str], list[float]]:
    """Each case (name, variant, workloads, modifications), interleaved, reps times."""
    results: dict[tuple[str, str], list[float]] = {}
    for rep in range(reps):
        for name, v, workloads, names in plan:
            for m in names:
                mods[m][0]()
            try:
                for wl in workloads:
                    x = measure(v, wl)
                    results.setdefault((name, wl), []).append(x)
                    bench.progress(f"{name:<55} {wl:<7} round {rep + 1}: {x:10.1f}")
            finally:
                for m in reversed(names):
                    mods[m][1]()
    return results


def experiments(b: bench.Bench, args: argparse.Namespace) -> None:
    stmt, row, untracked = b.by_key["pgh_stmt"], b.by_key["pgh_row"], b.by_key["untracked"]
    mods = modifications(b)
    everything = ("update", "insert", "noop")
    plan: list[tuple[str, bench.Variant, tuple[str, ...], list[str]]] = [
        ("untracked", untracked, everything, []),
        (
            "floor (no trigger, events written by the statement)",
            b.by_key["floor"],
            ("update", "insert"),
            [],
        ),
        ("statement, as generated", stmt, everything, []),
        ("statement + jit off", stmt, ("update", "noop"), ["jit off"]),
        (
            "statement + jit off + work_mem 64MB",
            stmt,
            ("update", "noop"),
            ["jit off", "work_mem 64MB"],
        ),
    ]
    for m in mods:
        if m.startswith("pgh_stmt: "):
            plan.append(
                (f"statement + jit off + {m[10:]}", stmt, ("update", "insert"), ["jit off", m])
            )
        if m.startswith(("pair", "no pairing")):
            plan.append((f"statement + jit off + {m}", stmt, ("update", "noop"), ["jit off", m]))
    plan.append(("row, as generated", row, ("update", "insert"), []))
    if "no-context fast path inlined" in mods:
        plan.append(
            (
                "row + no-context fast path inlined",
                row,
                ("update", "insert"),
                ["no-context fast path inlined"],
            )
        )

    def measure(v: bench.Variant, wl: str) -> float:
        return timed(b, v, b.bulk_sql(wl, v.table))[0]

    results = run_cases(b, mods, plan, args.reps, measure)
    base = {wl: statistics.median(results[("untracked", wl)]) for wl in everything}
    print(
        f"\nbulk statements of {b.cfg.touched} rows: median of {args.reps} runs, "
        "ratio to the untracked statement"
    )
    rows = []
    for name, _, workloads, _ in plan:
        cells = [name]
        for wl in everything:
            if wl in workloads:
                m = statistics.median(results[(name, wl)])
                cells.append(f"{m:.1f} ms ({m / base[wl]:.2f}x)")
            else:
                cells.append("-")
        rows.append(cells)
    print(bench.table(["variant", "bulk UPDATE", "bulk INSERT", "no-op UPDATE"], rows))


def single_row(b: bench.Bench, args: argparse.Namespace) -> None:
    """pgbench, 1 client (pinned): single-row writes under the same modifications, and what
    a context costs by itself (set_context, the raw settings) in a transaction that writes
    nothing."""
    stmt, row, untracked = b.by_key["pgh_stmt"], b.by_key["pgh_row"], b.by_key["untracked"]
    mods = modifications(b)
    both = ("update", "insert")
    plan: list[tuple[str, bench.Variant, tuple[str, ...], list[str]]] = [
        ("untracked", untracked, both, []),
        ("floor (no trigger, events written by the statement)", b.by_key["floor"], both, []),
        ("django reference", b.by_key["django"], both, []),
        ("statement, as generated", stmt, both, []),
        ("row, as generated", row, both, []),
    ]
    for m in mods:
        if m.startswith("pgh_row: ") or m in (
            "no-context fast path inlined",
            "no SECURITY DEFINER / SET search_path (cost probe)",
        ):
            plan.append((f"row + {m.removeprefix('pgh_row: ')}", row, both, [m]))
        if m.startswith("pgh_stmt: "):
            plan.append((f"statement + {m[10:]}", stmt, both, [m]))

    def measure(v: bench.Variant, wl: str) -> float:
        return float(b.run_pgbench_once(wl, v, "auto", 1)["tps"])

    results = run_cases(b, mods, plan, args.reps, measure)
    base = {wl: statistics.median(results[("untracked", wl)]) for wl in both}
    print(
        f"\nsingle-row writes, pgbench 1 client -T {b.cfg.seconds}: median tps of "
        f"{args.reps} runs, ratio to untracked, and microseconds of CPU added per event"
    )
    rows = []
    for name, _, _, _ in plan:
        cells = [name]
        for wl in both:
            t = statistics.median(results[(name, wl)])
            extra = (1 / t - 1 / base[wl]) * 1e6
            cells.append(f"{t:.0f} ({t / base[wl]:.2f}x, +{extra:.1f} us)")
        rows.append(cells)
    print(bench.table(["variant", "single-row UPDATE", "single-row INSERT"], rows))

    # the context by itself: transactions that only set it (no write)
    scripts = {
        "BEGIN; SELECT 1; COMMIT": "BEGIN;\nSELECT 1;\nCOMMIT;\n",
        "BEGIN; set_context(); COMMIT": f"BEGIN;\n{bench.CONTEXT_SQL['set_context']};\nCOMMIT;\n",
        "BEGIN; raw set_config x2; COMMIT": f"BEGIN;\n{bench.CONTEXT_SQL['raw']};\nCOMMIT;\n",
    }
    tps: dict[str, list[float]] = {}
    for rep in range(args.reps):
        for name, text in scripts.items():
            r = b.pgbench_run(text, 1, lambda: b.reset(untracked), name)
            tps.setdefault(name, []).append(r["tps"])
            bench.progress(f"{name:<40} round {rep + 1}: {r['tps']:10.1f}")
    base_t = statistics.median(tps["BEGIN; SELECT 1; COMMIT"])
    print("\ncontext by itself (no write): tps, and microseconds over BEGIN; SELECT 1; COMMIT")
    print(
        bench.table(
            ["transaction", "tps", "us added"],
            [
                [
                    name,
                    f"{statistics.median(v):.0f}",
                    f"{(1 / statistics.median(v) - 1 / base_t) * 1e6:.1f}",
                ]
                for name, v in tps.items()
            ],
        )
    )


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
    p.add_argument("--experiments", action="store_true", help="timed bulk alternatives")
    p.add_argument("--single-row", action="store_true", help="timed single-row alternatives")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--seconds", type=int, default=5, help="pgbench -T for --single-row")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = p.parse_args()
    argv = ["--pg", str(args.pg), "--rows", str(args.rows), "--touched", str(args.touched)]
    argv += ["--seconds", str(args.seconds)]
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
        if args.single_row:
            single_row(b, args)
        if not (args.experiments or args.single_row):
            explain(b, args)
    finally:
        b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
