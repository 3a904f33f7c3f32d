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


def experiments(b: bench.Bench, args: argparse.Namespace) -> None:
    stmt, row = b.by_key.get("pgh_stmt"), b.by_key.get("pgh_row")
    untracked = b.by_key["untracked"]
    if stmt is None or row is None:
        print("--experiments needs the level variants (drop --no-levels)")
        return
    fstmt, frow = function_of(b, stmt), function_of(b, row)
    stmt_src = b.sql(f"SELECT pg_get_functiondef('{fstmt}'::regprocedure)")[0][0]
    row_src = b.sql(f"SELECT pg_get_functiondef('{frow}'::regprocedure)")[0][0]
    indexes = b.sql(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = %s::regclass",
        stmt.event_table,
    )
    text_idx = [(n, d) for n, d in indexes if "::text" in d]
    ctx_idx = [(n, d) for n, d in indexes if "(pgh_context_id)" in d]
    ctx_call = "pghistory.current_context_id()"
    fast = (
        "CASE WHEN coalesce(current_setting('pghistory.context_id', true), '') = '' "
        "THEN NULL::uuid ELSE pghistory.current_context_id() END"
    )

    # modifications: name -> (apply, undo); a case applies several
    Mod = tuple[Callable[[], None], Callable[[], None]]
    mods: dict[str, Mod] = {
        "jit off": (
            lambda: b.sql(f"ALTER FUNCTION {fstmt} SET jit = off"),
            lambda: b.sql(f"ALTER FUNCTION {fstmt} RESET jit"),
        ),
        "work_mem 64MB": (
            lambda: b.sql(f"ALTER FUNCTION {fstmt} SET work_mem = '64MB'"),
            lambda: b.sql(f"ALTER FUNCTION {fstmt} RESET work_mem"),
        ),
    }
    if text_idx:
        t_name, t_ddl = text_idx[0]
        mods["no pgh_obj_id::text index"] = (
            lambda: b.sql(f"DROP INDEX {t_name}"),
            lambda: b.sql(t_ddl),
        )
    if ctx_idx:
        c_name, c_ddl = ctx_idx[0]
        partial = " WHERE " in c_ddl
        c_other = (
            c_ddl.split(" WHERE ")[0] if partial else c_ddl + " WHERE pgh_context_id IS NOT NULL"
        )
        mods["context index " + ("not partial" if partial else "partial")] = (
            lambda: (b.sql(f"DROP INDEX {c_name}"), b.sql(c_other)),
            lambda: (b.sql(f"DROP INDEX {c_name}"), b.sql(c_ddl)),
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

    everything = ("update", "insert", "noop")
    plan: list[tuple[str, bench.Variant, tuple[str, ...], list[str]]] = [
        ("untracked", untracked, everything, []),
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
        if m.startswith(("no pgh_obj", "context index")):
            plan.append((f"statement + jit off + {m}", stmt, ("update", "insert"), ["jit off", m]))
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
    cases = [
        (
            name,
            v,
            wls,
            (lambda ms=ms: [mods[m][0]() for m in ms]),
            (lambda ms=ms: [mods[m][1]() for m in reversed(ms)]),
        )
        for name, v, wls, ms in plan
    ]
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
