#!/usr/bin/env python3
"""pghistory on a partitioned table: tracked writes against untracked ones, in the same run.

    .venv/bin/python -m bench.partitioned            # PostgreSQL 15, a few minutes
    .venv/bin/python -m bench.partitioned --quick    # small sizes, to prove the script works

It starts its own throwaway server (tests/pgserver.py, synchronous_commit = off) with three
tables of the same shape, partitioned by LIST (region) into 4 partitions: untracked, tracked with
the default level (statement triggers on the partitioned table and row triggers on its
partitions) and tracked with level => 'row'. Each round times, on every table in turn:

  bulk INSERT     rows inserted through the partitioned table
  bulk UPDATE     rows updated through it, none changing partition
  moving UPDATE   rows moved to the next partition through it (recorded as one update each at
                  the default level, as a delete and an insert at row level)
  partition UPDATE  rows updated straight in one partition
  single-row UPDATE  pgbench, 1 client, -M prepared, through the partitioned table

and prints the median, over rounds, of each ratio to the untracked table.
"""

# ruff: noqa: S608  (SQL built from this file's constants)
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import psycopg

from tests import pgserver

TABLES = {
    "untracked": "part_untracked",
    "default level": "part_auto",
    "row level": "part_row",
}


def create(conn: psycopg.Connection, table: str, rows: int) -> None:
    conn.execute(
        f"CREATE TABLE {table} (id bigint, region int, qty int, name text,"
        " PRIMARY KEY (id, region)) PARTITION BY LIST (region)"
    )
    for r in range(4):
        conn.execute(f"CREATE TABLE {table}_{r} PARTITION OF {table} FOR VALUES IN ({r})")
    conn.execute(
        f"INSERT INTO {table} SELECT g, g % 4, 0, 'item ' || g FROM generate_series(1, {rows}) g"
    )
    if table == "part_auto":
        conn.execute(f"SELECT pghistory.track('{table}', obj_field => NULL)")
    elif table == "part_row":
        conn.execute(f"SELECT pghistory.track('{table}', obj_field => NULL, level => 'row')")
    conn.execute(f"VACUUM ANALYZE {table}")


def timed(conn: psycopg.Connection, statement: str) -> float:
    start = time.perf_counter()
    conn.execute(statement)
    return (time.perf_counter() - start) * 1000


def bulk(
    conn: psycopg.Connection, table: str, rows: int, touched: int, rnd: int
) -> dict[str, float]:
    first = rows + rnd * touched + 1  # new ids each round
    out = {
        "bulk INSERT (ms)": timed(
            conn,
            f"INSERT INTO {table} SELECT g, g % 4, 0, 'new ' || g"
            f" FROM generate_series({first}, {first + touched - 1}) g",
        ),
        "bulk UPDATE (ms)": timed(conn, f"UPDATE {table} SET qty = qty + 1 WHERE id <= {touched}"),
        "moving UPDATE (ms)": timed(
            conn,
            f"UPDATE {table} SET region = (region + 1) % 4 WHERE id <= {touched // 5}",
        ),
        "partition UPDATE (ms)": timed(conn, f"UPDATE {table}_1 SET qty = qty + 1"),
    }
    conn.execute(f"DELETE FROM {table} WHERE id >= {first}")  # back to the same size, untimed
    conn.execute(f"VACUUM {table}")
    return out


def single_row(server: pgserver.PgServer, table: str, rows: int, seconds: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(
            f"\\set id random(1, {rows})\n"
            f"UPDATE {table} SET qty = qty + 1 WHERE id = :id AND region = (:id % 4 + 4) % 4;\n"
        )
    try:
        info = psycopg.conninfo.conninfo_to_dict(server.dsn())
        result = subprocess.run(
            [
                str(server.installation.program("pgbench")),
                "-n",
                "-M",
                "prepared",
                "-c",
                "1",
                "-T",
                str(seconds),
                "-f",
                script.name,
                "-h",
                str(info["host"]),
                "-p",
                str(info["port"]),
                "-U",
                str(info["user"]),
                str(info["dbname"]),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PGOPTIONS": "-c synchronous_commit=off"},
        )
    finally:
        os.unlink(script.name)
    line = next(x for x in result.stdout.splitlines() if x.startswith("tps ="))
    return float(line.split()[2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows, touched, rounds, seconds = (
        (20000, 10000, 1, 2) if args.quick else (200000, 100000, args.rounds, 5)
    )
    with (
        pgserver.start(args.pg) as server,
        psycopg.connect(server.dsn(), autocommit=True) as conn,
    ):
        conn.execute("SET synchronous_commit = off")
        conn.execute("CREATE EXTENSION pghistory")
        for table in TABLES.values():
            create(conn, table, rows)
        results: dict[str, dict[str, list[float]]] = {name: {} for name in TABLES}
        for rnd in range(rounds):
            order = list(TABLES.items())
            order = order[rnd % 3 :] + order[: rnd % 3]  # a different table first each round
            for name, table in order:
                measured = bulk(conn, table, rows, touched, rnd)
                measured["single-row UPDATE (tps)"] = single_row(server, table, rows, seconds)
                for key, value in measured.items():
                    results[name].setdefault(key, []).append(value)
            print(f"  .. round {rnd + 1} of {rounds} done", file=sys.stderr)
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        counts = {
            name: conn.execute(
                f"SELECT pgh_label, count(*) FROM {table}_event GROUP BY 1 ORDER BY 1"
            ).fetchall()
            for name, table in TABLES.items()
            if name != "untracked"
        }
    print(
        f"pghistory on a partitioned table: PostgreSQL {version}, {os.cpu_count()} CPUs,"
        f" {time.strftime('%Y-%m-%d')}; synchronous_commit = off; {rows:,} rows in 4 partitions,"
        f" bulk statements over {touched:,} rows ({touched // 5:,} moving); {rounds} rounds"
    )
    print()
    print("| workload | untracked | default level | row level |")
    print("|---|---|---|---|")
    for key in results["untracked"]:
        base = results["untracked"][key]
        cells = [f"{statistics.median(base):.0f}"]
        for name in ("default level", "row level"):
            values = results[name][key]
            ratios = [
                v / b for v, b in zip(values, base, strict=True)
            ]  # per round, against untracked
            cells.append(f"{statistics.median(values):.0f} ({statistics.median(ratios):.2f}x)")
        print(f"| {key} | " + " | ".join(cells) + " |")
    print()
    print("Ratios to the untracked write (time for bulk statements, throughput for single rows),")
    print(
        "the median of the per-round ratios. Events written:",
        "; ".join(
            f"{name}: " + ", ".join(f"{label} {n:,}" for label, n in c)
            for name, c in counts.items()
        ),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
