"""Reads: one object's history with diffs, as_of() of a table, prune() of a month."""

# ruff: noqa: S608  (SQL built from this module's constants and identifiers)
from __future__ import annotations

import random
import statistics
import time
from typing import Any

import psycopg


def timed(
    conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()
) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    rows = conn.execute(query, params).fetchall()
    return (time.perf_counter() - start) * 1000, rows


def object_history(
    conn: psycopg.Connection[Any],
    objects: int,
    per_object: int,
    samples: int,
    *,
    table: str = "item",
    setup: list[str] | None = None,
) -> dict[str, Any]:
    """One object's history with diffs through pghistory.events: `objects` objects with
    `per_object` events each; `setup` alters the tracked table's objects before it is filled."""
    conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, qty int, name text, price numeric)")
    conn.execute("SELECT pghistory.track(%s)", (table,))
    for stmt in setup or []:
        conn.execute(stmt)
    conn.execute(
        f"INSERT INTO {table} SELECT g, 0, 'item ' || g, g * 1.5 FROM generate_series(1, %s) g",
        (objects,),
    )
    for _ in range(per_object - 1):
        conn.execute(f"UPDATE {table} SET qty = qty + 1, price = price + 0.01")
    conn.execute(f"VACUUM ANALYZE {table}_event")
    (events,) = conn.execute(f"SELECT count(*) FROM {table}_event").fetchone()  # type: ignore[misc]
    query = (
        "SELECT pgh_id, pgh_label, pgh_data, pgh_diff, pgh_context FROM pghistory.events"
        f" WHERE pgh_obj_model = '{table}'::regclass AND pgh_obj_id = %s ORDER BY pgh_id"
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


def as_of(conn: psycopg.Connection[Any], rows: int, updates: int) -> dict[str, Any]:
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
            (middle,) = conn.execute("SELECT clock_timestamp()").fetchone()  # type: ignore[misc]
    conn.execute("VACUUM ANALYZE account_event")
    (events,) = conn.execute("SELECT count(*) FROM account_event").fetchone()  # type: ignore[misc]
    times = []
    for at in (middle, middle, middle):
        ms, result = timed(conn, "SELECT count(*) FROM pghistory.as_of(NULL::account, %s)", (at,))
        assert result == [(rows,)]
        times.append(ms)
    return {"rows": rows, "events": events, "median_ms": round(statistics.median(times), 1)}


def prune(conn: psycopg.Connection[Any], events: int) -> dict[str, Any]:
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
            " SELECT '2020-01-01'::timestamptz + g * interval '1 second', 'insert',"
            " g %% 1000, g %% 1000, '/page/' || g FROM generate_series(1, %s) g",
            (events,),
        )
        conn.execute(f"VACUUM ANALYZE {name}_event")
    result: dict[str, Any] = {"events": events}
    for name in ("clicks_partitioned", "clicks_plain"):
        ms, rows = timed(conn, "SELECT pghistory.prune(%s, older_than => '1 year')", (name,))
        assert rows == [(events,)]
        result[name.split("_")[1] + "_ms"] = round(ms, 1)
    return result
