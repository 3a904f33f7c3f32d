"""Property: replaying the history rebuilds the table exactly, at every commit.

Random sequences of INSERT / UPDATE / DELETE / TRUNCATE, in transactions with savepoints and
rollbacks, on a table tracked per row or per statement, or on a partitioned table written both
through it and straight to a partition. After every commit the table is compared with
pghistory.as_of() at that moment, which rebuilds it from the events alone.
"""

from __future__ import annotations

import itertools
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

KEYS = st.integers(min_value=1, max_value=12)
VALUES = st.one_of(st.none(), st.integers(min_value=-5, max_value=5))
TEXTS = st.one_of(st.none(), st.sampled_from(["a", "b", "it's", ""]))

statement = st.one_of(
    st.tuples(st.just("insert"), st.lists(st.tuples(KEYS, VALUES, TEXTS), min_size=1, max_size=4)),
    st.tuples(st.just("update"), st.tuples(KEYS, KEYS, VALUES)),  # rows with id in a range
    st.tuples(st.just("update_same"), KEYS),  # changes nothing
    st.tuples(st.just("delete"), st.tuples(KEYS, KEYS)),
    # straight to the partition of odd ids, where the table is partitioned
    st.tuples(st.just("update_partition"), st.tuples(KEYS, KEYS, VALUES)),
    st.tuples(st.just("delete_partition"), st.tuples(KEYS, KEYS)),
    st.tuples(st.just("truncate"), st.none()),
)
# A transaction: statements, then some inside a savepoint that may be rolled back; then commit
# or roll back.
transaction = st.tuples(
    st.lists(statement, min_size=1, max_size=4),
    st.lists(statement, max_size=3),
    st.booleans(),  # roll the savepoint back
    st.booleans(),  # commit (else roll back)
)

counter = itertools.count()


def run(
    conn: psycopg.Connection, table: sql.Identifier, odd: sql.Identifier, op: tuple[str, Any]
) -> None:
    """One statement; the *_partition ones go to ``odd`` (the partition of odd ids or the table)."""
    kind, arg = op
    if kind.endswith("_partition"):
        table, kind = odd, kind.removesuffix("_partition")
    if kind == "insert":
        for key, n, t in arg:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} VALUES (%s, %s, %s)"
                    " ON CONFLICT (id) DO UPDATE SET n = excluded.n, t = excluded.t"
                ).format(table),
                (key, n, t),
            )
    elif kind == "update":
        low, high = sorted(arg[:2])
        conn.execute(
            sql.SQL(
                "UPDATE {} SET n = %s, t = coalesce(t, '') || 'u' WHERE id BETWEEN %s AND %s"
            ).format(table),
            (arg[2], low, high),
        )
    elif kind == "update_same":
        conn.execute(sql.SQL("UPDATE {} SET n = n WHERE id >= %s").format(table), (arg,))
    elif kind == "delete":
        low, high = sorted(arg)
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE id BETWEEN %s AND %s").format(table), (low, high)
        )
    else:
        conn.execute(sql.SQL("TRUNCATE {}").format(table))


@pytest.mark.parametrize("level", ["row", "statement", "partitioned"])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(transactions=st.lists(transaction, min_size=1, max_size=6))
def test_history_rebuilds_the_table_at_every_commit(
    db_dsn: str, level: str, transactions: list[Any]
) -> None:
    name = f"prop_{level}_{next(counter)}"
    table = sql.Identifier(name)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, n int, t text){}").format(
                table,
                sql.SQL(" PARTITION BY LIST (id)" if level == "partitioned" else ""),
            )
        )
        odd = table
        if level == "partitioned":
            odd = sql.Identifier(name + "_odd")
            for partition, ids in (
                (odd, range(1, 13, 2)),
                (sql.Identifier(name + "_even"), range(2, 13, 2)),
            ):
                conn.execute(
                    sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES IN ({})").format(
                        partition, table, sql.SQL(", ").join(map(sql.Literal, ids))
                    )
                )
        conn.execute(
            "SELECT pghistory.track(%s, pghistory.insert_event(), pghistory.update_event(),"
            " pghistory.delete_event(), pghistory.truncate_event(), level => %s)",
            (name, "auto" if level == "partitioned" else level),
        )
        snapshots = []
        for body, nested, rollback_savepoint, commit in transactions:
            conn.execute("BEGIN")
            for op in body:
                run(conn, table, odd, op)
            conn.execute("SAVEPOINT s")
            for op in nested:
                run(conn, table, odd, op)
            conn.execute("ROLLBACK TO SAVEPOINT s" if rollback_savepoint else "RELEASE SAVEPOINT s")
            conn.execute("COMMIT" if commit else "ROLLBACK")
            rows = conn.execute(sql.SQL("SELECT * FROM {} ORDER BY id").format(table)).fetchall()
            row = conn.execute("SELECT clock_timestamp()").fetchone()
            assert row is not None
            (moment,) = row
            snapshots.append((moment, rows))
        for moment, rows in snapshots:
            rebuilt = conn.execute(
                sql.SQL("SELECT * FROM pghistory.as_of(NULL::{}, %s) ORDER BY id").format(table),
                (moment,),
            ).fetchall()
            assert rebuilt == rows
        conn.execute("SELECT pghistory.untrack(%s, drop_events => true)", (name,))
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
