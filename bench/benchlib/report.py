"""The report of a writes run: the issue-13 table (slowdown against the same untracked write),
the goals checked for pghistory and its candidate shapes, context cost, bytes, reads."""

from __future__ import annotations

from typing import Any

from .stats import fmt, median, paired_ratio, table
from .variants import Variant
from .writes import Writes

PGH = (
    "pghistory",
    "pgh_row",
    "pgh_stmt",
    "pgh_11",
    "pgh_a",
    "pgh_b",
    "pgh_c",
)  # whose goals are checked


def _slowdown(rows: list[dict[str, Any]], key: str, metric: str) -> float | None:
    """Median per-round slowdown of variant key against untracked (time ratio; tps inverted)."""
    r = paired_ratio(
        rows, metric, lambda x: x["variant"] == key, lambda x: x["variant"] == "untracked"
    )
    if r is None:
        return None
    return 1 / r if metric.endswith("tps") else r


def figures(w: Writes, cpu: bool) -> dict[str, dict[str, Any]]:
    """{row name: {variant key: slowdown or value, "_raw": {...}}} for the issue's rows; cpu:
    from the CPU time of the run's own processes instead of wall-clock time."""
    tps, ms = ("cpu_tps", "cpu_ms") if cpu else ("tps", "ms")
    n = w.cfg.touched
    bulk, pgb = w.results["bulk"], w.results["pgbench"]
    out: dict[str, dict[str, Any]] = {}

    def add(name: str, rows: list[dict[str, Any]], metric: str) -> None:
        if not rows:
            return
        cell: dict[str, Any] = {"_raw": {}}
        for v in w.variants:
            cell["_raw"][v.key] = median(r[metric] for r in rows if r["variant"] == v.key)
            if v.key != "untracked":
                cell[v.key] = _slowdown(rows, v.key, metric)
        out[name] = cell

    for wl, title in (("update", "UPDATE"), ("insert", "INSERT")):
        for c in w.cfg.clients:
            rs = [r for r in pgb if (r["workload"], r["clients"], r["shape"]) == (wl, c, "auto")]
            add(f"single-row {title}, {c} client{'s' if c > 1 else ''}", rs, tps)
    rs = [r for r in pgb if (r["workload"], r["shape"]) == ("noop", "auto")]
    add("single-row UPDATE that changes nothing, 1 client", rs, tps)
    for wl, title in (("update", "UPDATE"), ("insert", "INSERT"), ("noop", "no-op UPDATE")):
        add(f"bulk {title} {n} rows", [r for r in bulk if r["workload"] == wl], ms)
    for name, rs in (
        (f"bytes per event, after bulk UPDATE {n}", [r for r in bulk if r["workload"] == "update"]),
        (
            "bytes per event, after single-row INSERTs",
            [r for r in pgb if (r["workload"], r["clients"], r["shape"]) == ("insert", 1, "auto")],
        ),
    ):
        if rs:
            cell = {}
            for v in w.variants:
                mine = [r for r in rs if r["variant"] == v.key and r["events"]]
                if mine:
                    cell[v.key] = median(r["bytes"] / r["events"] for r in mine)
            out[name] = cell
    # context: transactions with a context against the same transactions without
    for wl, title in (("update", "UPDATE"), ("insert", "INSERT")):
        cell = {}
        by_function: dict[str, float] = {}
        for v in w.variants:
            rs = [
                r
                for r in pgb
                if r["variant"] == v.key and r["workload"] == wl and r["shape"] != "auto"
            ]
            if not rs or not v.context:
                continue
            with_ctx = [dict(r, shape="ctx" if r["shape"] == v.context else r["shape"]) for r in rs]
            ratio = paired_ratio(
                with_ctx, tps, lambda r: r["shape"] == "tx", lambda r: r["shape"] == "ctx"
            )
            cell[v.key] = None if ratio is None else ratio - 1
            if v.key == "pghistory":
                floor = paired_ratio(
                    rs, tps, lambda r: r["shape"] == "tx", lambda r: r["shape"] == "row"
                )
                cell["floor"] = None if floor is None else floor - 1
                eager = paired_ratio(
                    rs, tps, lambda r: r["shape"] == "tx", lambda r: r["shape"] == "set_context"
                )
                if eager is not None:
                    by_function[v.key] = eager - 1
        if cell:
            out[
                f"context cost per single-row {title} (BEGIN; ctx; W; COMMIT vs BEGIN; W; COMMIT)"
            ] = cell
        if by_function:
            out[f"context cost per single-row {title}, ctx = SELECT pghistory.set_context()"] = (
                by_function
            )
    return out


def goals(
    figs: dict[str, dict[str, Any]], key: str, touched: int, read_ms: float | None
) -> list[str]:
    """The issue's goals for one variant: 'met' or 'MISSED' with the figures compared."""
    out = []

    def check(name: str, ok: bool | None, text: str) -> None:
        if ok is not None:
            out.append(f"{'met   ' if ok else 'MISSED'} {name}: {text}")

    for row, cell in figs.items():
        mine = cell.get(key)
        if mine is None:
            continue
        if row.startswith("single-row"):
            lean = cell.get("lean")
            if lean is not None:
                check(row, mine <= lean, f"{mine:.2f}x vs lean {lean:.2f}x")
        elif row.startswith("bulk no-op UPDATE"):
            check(row, mine <= 1.3, f"{mine:.2f}x (<= 1.3x)")
        elif row.startswith("bulk"):
            stmt = cell.get("stmt")
            ok = mine <= 2.0 and (stmt is None or mine <= stmt)
            check(row, ok, f"{mine:.2f}x (<= 2.0x and <= statement trigger {fmt(stmt, '.2f')}x)")
        elif row.startswith("bytes"):
            ref = cell.get("django", cell.get("lean"))
            if ref is not None:
                check(row, mine <= ref, f"{mine:.0f} vs django-shaped {ref:.0f}")
        elif row.startswith("context"):
            check(row, mine <= 0.05, f"{mine:+.1%} (<= 5%)")
    if read_ms is not None:
        check("one object's history with diffs", read_ms < 5, f"{read_ms:.2f} ms (< 5 ms)")
    return out


def render(w: Writes, meta: dict[str, Any], reads: dict[str, dict[str, Any]], cpu: bool) -> str:
    cfg = w.cfg
    vs: list[Variant] = w.variants
    figs = figures(w, cpu)
    out = [
        f"pghistory write benchmark: PostgreSQL {meta['settings'].get('server_version')}, "
        f"{meta['date']}",
        f"machine: {meta['nproc']} CPUs, {meta['cpu']}, {meta['memory']}, {meta['os']}, "
        f"load average at start {meta['load']}",
        f"extension: {meta['commit']}",
        "settings: "
        + ", ".join(f"{k}={v}" for k, v in meta["settings"].items() if k != "server_version"),
        f"table: {cfg.rows} rows (id bigint pk + int, text, numeric, timestamptz, int); bulk "
        f"statements touch {cfg.touched} rows, {cfg.reps} rounds; pgbench -M prepared "
        + (f"-t {cfg.transactions}" if cfg.transactions else f"-T {cfg.seconds}")
        + f", {cfg.pgbench_reps} rounds, clients "
        + ("pinned with their backends" if cfg.pin else "unpinned")
        + "; rounds interleave the variants; medians of per-round ratios",
    ]
    out += [f"note: {n}" for n in meta.get("notes", [])]
    out += [
        "",
        "Slowdown against the same untracked write (lower is better); bytes per event "
        "(heap + indexes); context cost = extra time per transaction that sets one (in the "
        "floor column: a plain INSERT of one row of a context's shape, what keeping a context as "
        "a row costs at least).",
        "",
    ]
    headers = ["workload", *(v.title for v in vs if v.key != "untracked")]
    rows = []
    for name, cell in figs.items():
        cells = [name]
        for v in vs:
            if v.key == "untracked":
                continue
            x = cell.get(v.key)
            if name.startswith("bytes"):
                cells.append(fmt(x, ".0f"))
            elif name.startswith("context"):
                cells.append("-" if x is None else f"{x:+.1%}")
            else:
                cells.append("-" if x is None else f"{x:.2f}x")
        rows.append(cells)
    for key, r in reads.items():
        cells = [f"one object's history with diffs, {r['events']:,} events"]
        cells += [
            f"{r['median_ms']} ms" if v.key == key else "-" for v in vs if v.key != "untracked"
        ]
        rows.append(cells)
    out.append(table(headers, rows))
    out.append("")
    raw = [
        [name, *(fmt(cell["_raw"].get(v.key), ".1f") for v in vs)]
        for name, cell in figs.items()
        if "_raw" in cell
    ]
    if raw:
        out.append(
            "Raw medians ("
            + ("CPU ms per bulk statement, transactions per CPU second" if cpu else "ms, tps")
            + "):"
        )
        out.append("")
        out.append(table(["workload", *(v.title for v in vs)], raw))
        out.append("")
    for r_key, r in reads.items():
        out.append(
            f"read ({r_key}): median {r['median_ms']} ms, p95 {r['p95_ms']} ms over "
            f"{r['objects']:,} objects, {r['events']:,} events"
        )
    for v in vs:
        if v.key in PGH:
            read = reads.get(v.key, reads.get("pghistory") if v.key == "pghistory" else None)
            lines = goals(figs, v.key, cfg.touched, read["median_ms"] if read else None)
            if lines:
                out.append("")
                out.append(f"Goals of issue 13 for {v.title}:")
                out += [f"  {line}" for line in lines]
    out.append("")
    assert w.quiet is not None
    out.append(w.quiet.summary())
    out += [f"Note: {note}" for note in w.notes]
    if w.problems:
        out.append("PROBLEMS (events not as expected):")
        out += [f"  - {p}" for p in w.problems]
    else:
        out.append("Every measured run wrote the expected events (counts and contexts checked).")
    return "\n".join(out)
