"""Keeping and travelling in history from Python (API.md sections 10 and 11): TruncateEvent,
sync, verify, as_of, revert, prune and backfill, as functions and as CLI commands, with their
error paths (exception class and SQLSTATE; the CLI's exit status and one stderr line)."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

import pghist
from pghist import cli, errors

BIN = Path(sys.executable).parent / "pghistory"

FULL = (pghist.InsertEvent(), pghist.UpdateEvent(), pghist.DeleteEvent())


@pytest.fixture
def schema(conn: psycopg.Connection[Any], request: pytest.FixtureRequest) -> Iterator[str]:
    """A schema of its own for each test, dropped (with its event tables) afterwards."""
    name = "h_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    targets = {str(row["target"]) for row in pghist.status(conn)}
    for target in sorted(targets):
        if target.startswith(name + "."):
            pghist.untrack(conn, target, drop_events=True)
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def run(conn: psycopg.Connection[Any], schema: str, statement: str) -> None:
    """Run SQL with the test's schema first on the search_path (for this statement only)."""
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL search_path = {}, public").format(sql.Identifier(schema)))
        conn.execute(statement.encode())


def moment(conn: psycopg.Connection[Any]) -> datetime.datetime:
    """The clock between two transactions: after the last commit, before the next one."""
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    value = row[0]
    assert isinstance(value, datetime.datetime)
    return value


def count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))).fetchone()
    assert row is not None
    return int(row[0])


def ids(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(row.values()) for row in rows)


def pghistory_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (falls back to python -m pghistory), no PG* env."""
    command = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "pghistory"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pghistory: error: "), err
    return lines[0]


# --- TruncateEvent ---------------------------------------------------------------------


def test_truncate_event_sql() -> None:
    fragment = pghist.TruncateEvent().as_sql()
    assert (fragment.render(), fragment.params) == (
        '"pghistory"."truncate_event"()',
        (),
    )
    fragment = pghist.TruncateEvent("wiped").as_sql()
    assert (fragment.render(), fragment.params) == (
        '"pghistory"."truncate_event"("label" => %s::text)',
        ("wiped",),
    )
    assert repr(pghist.TruncateEvent("wiped")) == "TruncateEvent('wiped')"
    assert isinstance(cli.parse_event("truncate"), pghist.TruncateEvent)
    assert cli.parse_event("truncate:gone").label == "gone"


def test_truncate_event_records_every_row(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE stock (id int PRIMARY KEY, qty int)")
    run(conn, schema, "CREATE TABLE bin (id int PRIMARY KEY)")
    pghist.track(conn, f"{schema}.stock", pghist.InsertEvent(), pghist.TruncateEvent())
    pghist.track(conn, f"{schema}.bin", pghist.TruncateEvent("wiped"))
    run(conn, schema, "INSERT INTO stock VALUES (1, 5), (2, 7)")
    run(conn, schema, "INSERT INTO bin VALUES (1)")
    run(conn, schema, "TRUNCATE stock, bin")

    rows = pghist.events(conn, f"{schema}.stock")
    assert [row["pgh_label"] for row in rows] == [
        "insert",
        "insert",
        "truncate",
        "truncate",
    ]
    assert sorted((row["pgh_data"]["id"], row["pgh_data"]["qty"]) for row in rows[2:]) == [
        (1, 5),
        (2, 7),
    ]
    assert [row["pgh_label"] for row in pghist.events(conn, f"{schema}.bin")] == ["wiped"]


def test_truncate_event_from_the_cli(
    capsys: pytest.CaptureFixture[str],
    conn: psycopg.Connection[Any],
    db_dsn: str,
    schema: str,
) -> None:
    run(conn, schema, "CREATE TABLE crate (id int PRIMARY KEY)")
    status, out, err = run_main(
        capsys,
        "track",
        f"{schema}.crate",
        "--dsn",
        db_dsn,
        "--event",
        "truncate:emptied",
    )
    assert (status, err) == (0, "")
    assert out.strip().endswith("crate_event")
    run(conn, schema, "INSERT INTO crate VALUES (1)")
    run(conn, schema, "TRUNCATE crate")
    rows = pghist.events(conn, f"{schema}.crate")
    assert [(row["pgh_label"], row["pgh_data"]) for row in rows] == [("emptied", {"id": 1})]


# --- as_of -----------------------------------------------------------------------------


def test_as_of_at_moments_between_transactions(conn: psycopg.Connection[Any], schema: str) -> None:
    # A name that needs quoting everywhere: the table reaches SQL only as an identifier.
    table = sql.Identifier(schema, 'Order "items"; x').as_string(conn)
    conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, name text)").format(sql.SQL(table)))
    pghist.track(conn, table, *FULL, model_name=f"{schema}.items_history")
    before = moment(conn)
    conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 'pen'), (2, 'ink')").format(sql.SQL(table)))
    inserted = moment(conn)
    conn.execute(sql.SQL("UPDATE {} SET name = 'Pen' WHERE id = 1").format(sql.SQL(table)))
    updated = moment(conn)
    conn.execute(sql.SQL("DELETE FROM {} WHERE id = 2").format(sql.SQL(table)))
    deleted = moment(conn)
    conn.execute(sql.SQL("INSERT INTO {} VALUES (3, 'cap')").format(sql.SQL(table)))

    assert pghist.as_of(conn, table, before) == []
    assert ids(pghist.as_of(conn, table, inserted)) == [(1, "pen"), (2, "ink")]
    assert ids(pghist.as_of(conn, table, updated)) == [(1, "Pen"), (2, "ink")]
    assert ids(pghist.as_of(conn, table, deleted)) == [(1, "Pen")]
    rows = pghist.as_of(conn, table, "now")
    assert ids(rows) == [(1, "Pen"), (3, "cap")]
    assert list(rows[0]) == ["id", "name"]  # the table's columns, in order
    # a timestamp as text, read by the server
    assert ids(pghist.as_of(conn, table, updated.isoformat())) == [
        (1, "Pen"),
        (2, "ink"),
    ]
    columns, rows = pghist.core.as_of_table(conn, table, before)
    assert (columns, rows) == (["id", "name"], [])


def test_as_of_errors(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE partial (id int PRIMARY KEY, v int)")
    pghist.track(conn, f"{schema}.partial")  # inserts and updates: no deletes
    with pytest.raises(errors.ObjectNotInPrerequisiteState) as caught:
        pghist.as_of(conn, f"{schema}.partial", "now")
    assert caught.value.sqlstate == "55000"
    assert "cannot rebuild" in caught.value.message
    assert "no delete events" in caught.value.message
    assert caught.value.hint and "pghistory.delete_event()" in caught.value.hint

    run(conn, schema, "CREATE TABLE untracked (id int PRIMARY KEY)")
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="not tracked"):
        pghist.as_of(conn, f"{schema}.untracked", "now")

    run(conn, schema, "CREATE VIEW a_view AS SELECT 1 AS id")
    with pytest.raises(errors.InvalidParameter) as bad:
        pghist.as_of(conn, f"{schema}.a_view", "now")
    assert bad.value.sqlstate == "22023"

    with pytest.raises(errors.UndefinedTable) as missing:
        pghist.as_of(conn, f"{schema}.nope", "now")
    assert missing.value.sqlstate == "42P01"

    run(conn, schema, "CREATE TABLE full_history (id int PRIMARY KEY)")
    pghist.track(conn, f"{schema}.full_history", *FULL)
    with pytest.raises(errors.InvalidDatetimeFormat) as timestamp:
        pghist.as_of(conn, f"{schema}.full_history", "yesterday-ish")
    assert timestamp.value.sqlstate == "22007"


# --- revert ----------------------------------------------------------------------------


def test_revert_an_update_and_a_delete(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE price (id int PRIMARY KEY, amount int, note text)")
    event_table = pghist.track(conn, f"{schema}.price", *FULL)
    run(conn, schema, "INSERT INTO price VALUES (1, 10, 'first')")
    run(conn, schema, "UPDATE price SET amount = 12, note = 'raised' WHERE id = 1")
    first = pghist.events(conn, f"{schema}.price", obj=1)[0]
    assert first["pgh_label"] == "insert"

    assert pghist.revert(conn, event_table, first["pgh_id"]) == "updated"
    assert conn.execute(f'SELECT amount, note FROM "{schema}".price').fetchall() == [(10, "first")]

    run(conn, schema, "DELETE FROM price WHERE id = 1")
    gone = pghist.events(conn, f"{schema}.price", obj=1)[-1]
    assert gone["pgh_label"] == "delete"
    assert pghist.revert(conn, event_table, gone["pgh_id"]) == "inserted"
    assert conn.execute(f'SELECT id, amount, note FROM "{schema}".price').fetchall() == [
        (1, 10, "first")
    ]

    # each revert is an ordinary write, tracked like any other
    rows = pghist.events(conn, f"{schema}.price", obj=1)
    assert [row["pgh_label"] for row in rows] == [
        "insert",
        "update",
        "update",
        "delete",
        "insert",
    ]
    assert rows[2]["pgh_diff"] == {"amount": [12, 10], "note": ["raised", "first"]}


def test_revert_errors(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE slim (id int PRIMARY KEY, a int, b int)")
    slim_events = pghist.track(conn, f"{schema}.slim", fields=["id", "a"])
    run(conn, schema, "INSERT INTO slim VALUES (1, 1, 1)")
    event = pghist.events(conn, f"{schema}.slim")[0]
    with pytest.raises(errors.ObjectNotInPrerequisiteState) as partial:
        pghist.revert(conn, slim_events, event["pgh_id"])
    assert partial.value.sqlstate == "55000"
    assert '"b"' in partial.value.message or " b" in partial.value.message

    run(conn, schema, "CREATE TABLE whole (id int PRIMARY KEY, a int)")
    whole_events = pghist.track(conn, f"{schema}.whole")
    with pytest.raises(errors.NoDataFound) as missing:
        pghist.revert(conn, whole_events, 987654)
    assert missing.value.sqlstate == "P0002"
    assert "987654" in missing.value.message

    with pytest.raises(errors.UndefinedObject) as not_events:
        pghist.revert(conn, f"{schema}.whole", 1)
    assert not_events.value.sqlstate == "42704"
    assert "not an event table" in not_events.value.message

    with pytest.raises(errors.UndefinedTable):
        pghist.revert(conn, f"{schema}.nope_event", 1)


# --- prune -----------------------------------------------------------------------------


def test_prune_keep_last_and_older_than(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE item (id int PRIMARY KEY, v int)")
    event_table = pghist.track(conn, f"{schema}.item")
    run(conn, schema, "INSERT INTO item VALUES (1, 0), (2, 0)")
    for value in (1, 2, 3):
        run(conn, schema, f"UPDATE item SET v = {value} WHERE id = 1")
    assert count(conn, event_table) == 5  # object 1: 4 events, object 2: 1

    assert pghist.prune(conn, f"{schema}.item", keep_last=2) == 2
    kept = pghist.events(conn, f"{schema}.item")
    assert sorted((row["pgh_obj_id"], row["pgh_data"]["v"]) for row in kept) == [
        ("1", 2),
        ("1", 3),
        ("2", 0),
    ]
    assert pghist.prune(conn, f"{schema}.item", older_than="1 day") == 0
    assert pghist.prune(conn, f"{schema}.item", older_than=datetime.timedelta(days=1)) == 0
    # older than now, but the newest of each object kept
    assert pghist.prune(conn, f"{schema}.item", older_than="0 seconds", keep_last=1) == 1
    assert pghist.prune(conn, f"{schema}.item", older_than=datetime.timedelta(0)) == 2
    assert count(conn, event_table) == 0


def test_prune_append_only_only_when_named(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE ledger (id int PRIMARY KEY, v int)")
    run(conn, schema, "CREATE TABLE scratch (id int PRIMARY KEY, v int)")
    ledger_events = pghist.track(conn, f"{schema}.ledger", append_only=True)
    scratch_events = pghist.track(conn, f"{schema}.scratch")
    for table in ("ledger", "scratch"):
        run(conn, schema, f"INSERT INTO {table} VALUES (1, 0)")
        run(conn, schema, f"UPDATE {table} SET v = 1")
        run(conn, schema, f"UPDATE {table} SET v = 2")

    # every table you own, but append-only histories are left alone
    assert pghist.prune(conn, older_than=datetime.timedelta(0)) == 3
    assert (count(conn, ledger_events), count(conn, scratch_events)) == (3, 0)

    # named: its owner may prune it, and the guard is back afterwards
    assert pghist.prune(conn, f"{schema}.ledger", keep_last=1) == 2
    assert count(conn, ledger_events) == 1
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        conn.execute(sql.SQL("DELETE FROM {}").format(sql.SQL(ledger_events)))
    assert [row for row in pghist.verify(conn) if row["event_table"] == ledger_events] == []


def test_prune_errors(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE item (id int PRIMARY KEY)")
    pghist.track(conn, f"{schema}.item")
    with pytest.raises(errors.InvalidParameter) as neither:
        pghist.prune(conn, f"{schema}.item")
    assert neither.value.sqlstate == "22023"
    assert "older_than or keep_last" in neither.value.message
    assert neither.value.hint
    with pytest.raises(errors.InvalidParameter, match="negative"):
        pghist.prune(conn, f"{schema}.item", keep_last=-1)
    with pytest.raises(errors.InvalidDatetimeFormat) as interval:
        pghist.prune(conn, f"{schema}.item", older_than="90 dayz")
    assert interval.value.sqlstate == "22007"
    run(conn, schema, "CREATE TABLE loose (id int PRIMARY KEY)")
    with pytest.raises(errors.UndefinedObject, match="not tracked"):
        pghist.prune(conn, f"{schema}.loose", keep_last=1)
    with pytest.raises(errors.UndefinedTable):
        pghist.prune(conn, f"{schema}.nope", keep_last=1)
    with pytest.raises(TypeError):
        pghist.prune(conn, f"{schema}.item", older_than=90)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        pghist.prune(conn, f"{schema}.item", keep_last="3")  # type: ignore[call-overload]


# --- backfill --------------------------------------------------------------------------

ROWS = 12_345  # more than one batch of 10000


def test_backfill_reports_progress(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE big (id int PRIMARY KEY, v text)")
    run(
        conn,
        schema,
        f"INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, {ROWS}) g",
    )
    run(conn, schema, "ANALYZE big")
    event_table = pghist.track(conn, f"{schema}.big", *FULL)
    run(conn, schema, "DELETE FROM big WHERE id = 1")  # tracked from here on

    messages: list[str] = []
    assert pghist.backfill(conn, f"{schema}.big", progress=messages.append) == ROWS - 1
    assert len(messages) >= 2
    assert all(message.startswith("pghistory: backfill of ") for message in messages)
    assert all(event_table in message for message in messages)
    assert messages[0].endswith(f"10000 rows of about {ROWS}")
    assert messages[-1].endswith(f"{ROWS - 1} rows of about {ROWS}")

    # the handler is gone afterwards
    conn.execute("DO $$ BEGIN RAISE NOTICE 'unrelated'; END $$")
    assert "unrelated" not in messages

    # with the backfill, as_of covers rows older than the tracking
    assert len(pghist.as_of(conn, f"{schema}.big", "now")) == ROWS - 1
    assert count(conn, event_table) == 1 + ROWS - 1  # the delete, and the backfill of the rest

    # into one event table only, without a progress callback
    run(conn, schema, "CREATE TABLE small (id int PRIMARY KEY)")
    run(conn, schema, "INSERT INTO small VALUES (1), (2)")
    pghist.track(conn, f"{schema}.small", model_name="small_a")
    pghist.track(conn, f"{schema}.small", pghist.InsertEvent("b"), model_name="small_b")
    assert pghist.backfill(conn, f"{schema}.small", "small_b") == 2
    assert count(conn, f'"{schema}".small_a') == 0
    assert count(conn, f'"{schema}".small_b') == 2
    assert {row["pgh_label"] for row in pghist.events(conn, f"{schema}.small")} == {"backfill"}


def test_backfill_errors(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE loose (id int PRIMARY KEY)")
    messages: list[str] = []
    with pytest.raises(errors.UndefinedObject) as untracked:
        pghist.backfill(conn, f"{schema}.loose", progress=messages.append)
    assert untracked.value.sqlstate == "42704"
    assert "not tracked" in untracked.value.message
    with pytest.raises(errors.UndefinedTable):
        pghist.backfill(conn, f"{schema}.nope")
    assert messages == []


# --- sync and verify -------------------------------------------------------------------


def test_sync_and_verify(make_database: Any, capsys: pytest.CaptureFixture[str]) -> None:
    dsn = make_database(extension=True)  # verify() looks at the whole database
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE TABLE stock (id int PRIMARY KEY, qty int)")
        event_table = pghist.track(c, "public.stock")
        assert pghist.verify(c) == []
        status, out, err = run_main(capsys, "verify", "--dsn", dsn)
        assert (status, out, err) == (0, "", "")
        status, out, err = run_main(capsys, "verify", "--dsn", dsn, "--json")
        assert (status, json.loads(out), err) == (0, [], "")

        # a schema change nobody followed (as where no event trigger runs): sync() follows it
        c.execute("ALTER EVENT TRIGGER pghistory_ddl_end DISABLE")
        try:
            c.execute("ALTER TABLE stock ADD COLUMN note text")
        finally:
            c.execute("ALTER EVENT TRIGGER pghistory_ddl_end ENABLE")
        problems = pghist.verify(c)
        assert [(row["target"], row["event_table"]) for row in problems] == [("stock", event_table)]
        assert "note" in problems[0]["problem"]
        assert "pghistory.sync" in problems[0]["problem"]
        pghist.sync(c, "public.stock")
        assert pghist.verify(c) == []
        c.execute("INSERT INTO stock VALUES (1, 5, 'new column')")
        assert pghist.events(c, "public.stock")[-1]["pgh_data"]["note"] == "new column"
        pghist.sync(c)  # every table: nothing left to do

        # a disabled trigger: listed, and the CLI exits 1
        c.execute("ALTER TABLE stock DISABLE TRIGGER pghistory_insert")
        assert pghist.verify(c) == [
            {
                "target": "stock",
                "event_table": event_table,
                "problem": 'trigger pghistory_insert of tracker "insert" is disabled',
                "kind": "trigger_disabled",
            }
        ]
        status, out, err = run_main(capsys, "verify", "--dsn", dsn)
        assert status == 1
        lines = out.splitlines()
        assert [cell.strip() for cell in lines[0].split("|")] == [
            "target",
            "event_table",
            "problem",
            "kind",
        ]
        assert "pghistory_insert" in lines[2]
        assert "disabled" in lines[2]
        assert lines[-1] == "(1 row)"
        assert err == "pghistory: verify found 1 problem\n"
        result = pghistory_cmd("verify", "--dsn", dsn, "--json")
        assert result.returncode == 1
        assert [row["problem"] for row in json.loads(result.stdout)] == [
            'trigger pghistory_insert of tracker "insert" is disabled'
        ]
        # filtered by kind: what is not asked for is not a problem here
        assert pghist.verify(c, ["trigger_missing", "privilege"]) == []
        assert [row["kind"] for row in pghist.verify(c, ["trigger_disabled"])] == [
            "trigger_disabled"
        ]
        status, out, err = run_main(capsys, "verify", "--dsn", dsn, "--kind", "trigger_missing")
        assert (status, out, err) == (0, "", "")
        status, out, err = run_main(
            capsys, "verify", "--dsn", dsn, "--kind", "privilege", "--kind", "trigger_disabled"
        )
        assert status == 1 and "trigger_disabled" in out
        c.execute("ALTER TABLE stock ENABLE TRIGGER pghistory_insert")
        assert pghistory_cmd("verify", "--dsn", dsn).returncode == 0

        # sync from the CLI: quiet; -v says what it did
        status, out, err = run_main(capsys, "sync", "--dsn", dsn)
        assert (status, out, err) == (0, "", "")
        status, out, err = run_main(capsys, "sync", "public.stock", "--dsn", dsn, "-v")
        assert (status, out, err) == (0, "synced public.stock\n", "")

        # errors
        c.execute("CREATE TABLE loose (id int PRIMARY KEY)")
        with pytest.raises(errors.UndefinedObject) as untracked:
            pghist.sync(c, "public.loose")
        assert untracked.value.sqlstate == "42704"
        with pytest.raises(errors.UndefinedTable):
            pghist.sync(c, "public.nope")
        status, out, err = run_main(capsys, "sync", "public.loose", "--dsn", dsn)
        assert (status, out) == (1, "")
        assert "not tracked" in one_error_line(err)


# --- the CLI ---------------------------------------------------------------------------


def test_cli_lists_the_new_commands() -> None:
    result = pghistory_cmd("--help")
    assert result.returncode == 0
    for command in ("prune", "backfill", "verify", "sync", "as-of", "revert"):
        assert command in result.stdout


def test_cli_events_show_the_diff(
    capsys: pytest.CaptureFixture[str],
    conn: psycopg.Connection[Any],
    db_dsn: str,
    schema: str,
) -> None:
    run(conn, schema, "CREATE TABLE item (id int PRIMARY KEY, price int)")
    pghist.track(conn, f"{schema}.item")
    run(conn, schema, "INSERT INTO item VALUES (1, 3)")
    run(conn, schema, "UPDATE item SET price = 4 WHERE id = 1")
    status, out, err = run_main(capsys, "events", f"{schema}.item", "--obj", "1", "--dsn", db_dsn)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    header = [cell.strip() for cell in lines[0].split("|")]
    assert "pgh_diff" in header
    column = header.index("pgh_diff")
    assert [line.split("|")[column].strip() for line in lines[2:4]] == [
        "",
        '{"price": [3, 4]}',
    ]
    status, out, err = run_main(
        capsys, "events", f"{schema}.item", "--obj", "1", "--dsn", db_dsn, "--json"
    )
    assert [row["pgh_diff"] for row in json.loads(out)] == [None, {"price": [3, 4]}]


def test_cli_prune(
    capsys: pytest.CaptureFixture[str],
    conn: psycopg.Connection[Any],
    db_dsn: str,
    schema: str,
) -> None:
    run(conn, schema, "CREATE TABLE item (id int PRIMARY KEY, v int)")
    event_table = pghist.track(conn, f"{schema}.item", append_only=True)
    run(conn, schema, "INSERT INTO item VALUES (1, 0), (2, 0)")
    run(conn, schema, "UPDATE item SET v = 1")
    status, out, err = run_main(
        capsys, "prune", f"{schema}.item", "--keep-last", "1", "--dsn", db_dsn
    )
    assert (status, out, err) == (0, "2\n", "")
    status, out, err = run_main(
        capsys, "prune", f"{schema}.item", "--older-than", "1 day", "--dsn", db_dsn
    )
    assert (status, out, err) == (0, "0\n", "")
    assert count(conn, event_table) == 2

    status, out, err = run_main(capsys, "prune", f"{schema}.item", "--dsn", db_dsn)
    assert (status, out) == (1, "")
    line = one_error_line(err)
    assert "older_than or keep_last" in line
    assert "HINT:" in line
    status, out, err = run_main(capsys, "prune", "--older-than", "soon", "--dsn", db_dsn)
    assert (status, out) == (1, "")
    assert "soon" in one_error_line(err)
    status, out, err = run_main(
        capsys, "prune", f"{schema}.nope", "--keep-last", "1", "--dsn", db_dsn
    )
    assert (status, out) == (1, "")
    assert "nope" in one_error_line(err)


def test_cli_backfill_shows_progress(
    conn: psycopg.Connection[Any], db_dsn: str, schema: str
) -> None:
    run(conn, schema, "CREATE TABLE big (id int PRIMARY KEY)")
    run(conn, schema, f"INSERT INTO big SELECT generate_series(1, {ROWS})")
    run(conn, schema, "ANALYZE big")
    event_table = pghist.track(conn, f"{schema}.big")
    result = pghistory_cmd("backfill", f"{schema}.big", "--dsn", db_dsn)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{ROWS}\n"
    lines = result.stderr.splitlines()
    assert len(lines) >= 2
    assert lines[0] == f"pghistory: backfill of {event_table}: 10000 rows of about {ROWS}"
    assert lines[-1] == f"pghistory: backfill of {event_table}: {ROWS} rows of about {ROWS}"

    result = pghistory_cmd(
        "backfill",
        f"{schema}.big",
        "--model-name",
        event_table.split(".")[-1],
        "--dsn",
        db_dsn,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{ROWS}\n"

    run(conn, schema, "CREATE TABLE loose (id int PRIMARY KEY)")
    result = pghistory_cmd("backfill", f"{schema}.loose", "--dsn", db_dsn)
    assert (result.returncode, result.stdout) == (1, "")
    assert "not tracked" in one_error_line(result.stderr)


def test_cli_as_of_and_revert(
    capsys: pytest.CaptureFixture[str],
    conn: psycopg.Connection[Any],
    db_dsn: str,
    schema: str,
) -> None:
    run(conn, schema, "CREATE TABLE item (id int PRIMARY KEY, name text)")
    event_table = pghist.track(conn, f"{schema}.item", *FULL)
    run(conn, schema, "INSERT INTO item VALUES (1, 'pen'), (2, 'ink')")
    then = moment(conn)
    run(conn, schema, "UPDATE item SET name = 'Pen' WHERE id = 1")
    run(conn, schema, "DELETE FROM item WHERE id = 2")

    status, out, err = run_main(
        capsys, "as-of", f"{schema}.item", then.isoformat(), "--dsn", db_dsn
    )
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert [cell.strip() for cell in lines[0].split("|")] == ["id", "name"]
    assert sorted(line.split("|")[1].strip() for line in lines[2:-1]) == ["ink", "pen"]
    assert lines[-1] == "(2 rows)"
    status, out, err = run_main(capsys, "as-of", f"{schema}.item", "now", "--json", "--dsn", db_dsn)
    assert (status, json.loads(out), err) == (0, [{"id": 1, "name": "Pen"}], "")
    status, out, err = run_main(capsys, "as-of", f"{schema}.item", "1999-01-01", "--dsn", db_dsn)
    assert (status, out) == (0, " id | name\n----+------\n(0 rows)\n")

    first = pghist.events(conn, f"{schema}.item", obj=1, label="insert")[0]
    gone = pghist.events(conn, f"{schema}.item", obj=2, label="delete")[0]
    status, out, err = run_main(
        capsys, "revert", event_table, str(first["pgh_id"]), "--dsn", db_dsn
    )
    assert (status, out, err) == (0, "updated\n", "")
    status, out, err = run_main(capsys, "revert", event_table, str(gone["pgh_id"]), "--dsn", db_dsn)
    assert (status, out, err) == (0, "inserted\n", "")
    assert sorted(conn.execute(f'SELECT id, name FROM "{schema}".item').fetchall()) == [
        (1, "pen"),
        (2, "ink"),
    ]

    # errors: one line, exit 1
    status, out, err = run_main(capsys, "revert", event_table, "987654", "--dsn", db_dsn)
    assert (status, out) == (1, "")
    assert "987654" in one_error_line(err)
    run(conn, schema, "CREATE TABLE partial (id int PRIMARY KEY)")
    pghist.track(conn, f"{schema}.partial")
    status, out, err = run_main(capsys, "as-of", f"{schema}.partial", "now", "--dsn", db_dsn)
    assert (status, out) == (1, "")
    line = one_error_line(err)
    assert "cannot rebuild" in line
    assert "HINT:" in line
    result = pghistory_cmd("as-of", f"{schema}.item", "not a time", "--dsn", db_dsn)
    assert (result.returncode, result.stdout) == (1, "")
    one_error_line(result.stderr)
    result = pghistory_cmd("revert", event_table, "abc", "--dsn", db_dsn)
    assert result.returncode == 2  # argparse: not an integer
