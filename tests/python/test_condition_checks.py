"""Conditions are checked as trigger WHEN clauses, without creating a trigger to check them.

track() checks every condition the way CREATE TRIGGER ... WHEN would, for row-level and
statement-level trackers alike: the SQLSTATE and message are PostgreSQL's own, compared here with
what a real CREATE TRIGGER says about the same condition on the same table.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

OPERATIONS = {"insert": "INSERT", "update": "UPDATE", "delete": "DELETE"}

BAD_CONDITIONS = [
    ("update", "NEW.balnce > 0"),  # unknown column
    ("update", "NEW.balance >"),  # syntax
    ("update", "balance > 0"),  # ambiguous: OLD or NEW
    ("update", "NEW.balance"),  # not boolean
    ("update", "nosuchfunction(NEW.balance)"),  # unknown function
    ("insert", "OLD.balance > 0"),  # an insert has no OLD row
    ("delete", "NEW.balance > 0"),  # a delete has no NEW row
    ("update", "NEW.balance > (SELECT 1)"),  # subquery
    ("update", "EXISTS (SELECT FROM pg_class)"),
    ("update", "NEW.balance IN (VALUES (1), (2))"),
    ("update", "sum(NEW.balance) > 0"),  # aggregate
    ("update", "row_number() OVER () > 1"),  # window function
    ("update", "generate_series(1, 2) > 1"),  # set-returning function
]


def error_of(conn: psycopg.Connection[Any], statement: sql.Composed) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as info, conn.transaction():
        conn.execute(statement)
    return info.value


@pytest.fixture
def table(conn: psycopg.Connection[Any]) -> str:
    conn.execute("DROP TABLE IF EXISTS acct, acct_event")
    conn.execute("CREATE TABLE acct (id int PRIMARY KEY, balance numeric, owner text)")
    conn.execute(
        "CREATE OR REPLACE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql "
        "AS 'BEGIN RETURN NULL; END'"
    )
    return "acct"


@pytest.mark.parametrize("level", ["row", "statement"])
@pytest.mark.parametrize(("operation", "condition"), BAD_CONDITIONS)
def test_same_error_as_create_trigger(
    conn: psycopg.Connection[Any], table: str, level: str, operation: str, condition: str
) -> None:
    reference = error_of(
        conn,
        sql.SQL(
            "CREATE TRIGGER reference AFTER {} ON acct FOR EACH ROW WHEN ({}) "
            "EXECUTE FUNCTION noop()"
        ).format(sql.SQL(OPERATIONS[operation]), sql.SQL(condition)),
    )
    got = error_of(
        conn,
        sql.SQL(
            "SELECT pghistory.track('acct', pghistory.{}(condition => {}), level => {})"
        ).format(sql.Identifier(f"{operation}_event"), sql.Literal(condition), sql.Literal(level)),
    )
    assert reference.diag.message_primary is not None and got.diag.message_primary is not None
    assert got.sqlstate == reference.sqlstate, (got, reference)
    assert got.diag.message_primary.endswith(reference.diag.message_primary), (got, reference)
    if got.diag.message_primary != reference.diag.message_primary:  # wrapped: names the tracker
        assert got.diag.message_primary.startswith(
            f'pghistory: invalid condition for tracker "{operation}" of public.acct: '
        )
        assert got.diag.message_detail == f"Condition: {condition}"
    # nothing was left behind
    assert conn.execute("SELECT to_regclass('acct_event')").fetchone() == (None,)
    assert conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'acct'::regclass"
    ).fetchone() == (0,)


def test_valid_conditions_pass_on_both_levels(conn: psycopg.Connection[Any], table: str) -> None:
    conditions = [
        ("insert", "NEW.balance > 0 AND NEW.owner IS NOT NULL"),
        ("update", "OLD.balance IS DISTINCT FROM NEW.balance"),
        ("update", "NEW.owner = 'it''s (select me)'"),  # a literal is not a subquery
        ("update", "NEW.\"owner\" LIKE '%(values%'"),
        ("delete", "OLD.balance < 0"),
    ]
    for level in ("row", "statement"):
        for operation, condition in conditions:
            conn.execute(
                sql.SQL(
                    "SELECT pghistory.track('acct', pghistory.{}(condition => {}), level => {})"
                ).format(
                    sql.Identifier(f"{operation}_event"), sql.Literal(condition), sql.Literal(level)
                )
            )
            assert conn.execute(
                "SELECT t->>'level' FROM pghistory.tracking, jsonb_array_elements(trackers) t "
                "WHERE target = 'acct'::regclass"
            ).fetchone() == (level,)
    # and they work: the last one was a statement-level delete condition
    conn.execute("INSERT INTO acct VALUES (1, -5, 'a'), (2, 5, 'b')")
    conn.execute("DELETE FROM acct")
    assert conn.execute("SELECT id FROM acct_event").fetchall() == [(1,)]


def test_no_trigger_is_created_only_to_be_dropped(
    conn: psycopg.Connection[Any], table: str
) -> None:
    # An event trigger sees every DROP, including those run inside track().
    conn.execute("CREATE TABLE dropped_triggers (name text)")
    conn.execute(
        """
        CREATE FUNCTION log_drops() RETURNS event_trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO dropped_triggers
            SELECT object_identity FROM pg_event_trigger_dropped_objects()
            WHERE object_type = 'trigger';
        END $$
        """
    )
    conn.execute("CREATE EVENT TRIGGER log_drops ON sql_drop EXECUTE FUNCTION log_drops()")
    try:
        conn.execute(
            "SELECT pghistory.track('acct', pghistory.insert_event(), "
            "pghistory.update_event(condition => 'NEW.balance < 0'), pghistory.delete_event())"
        )
        levels = conn.execute(
            "SELECT DISTINCT t->>'level' FROM pghistory.tracking, jsonb_array_elements(trackers) t "
            "WHERE target = 'acct'::regclass"
        ).fetchall()
        assert levels == [("statement",)]
        assert conn.execute("SELECT * FROM dropped_triggers").fetchall() == []
        assert conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'acct'::regclass"
        ).fetchone() == (3,)
    finally:
        conn.execute("DROP EVENT TRIGGER log_drops")
        conn.execute("DROP TABLE dropped_triggers")
        conn.execute("DROP FUNCTION log_drops()")
