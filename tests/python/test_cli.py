"""The pghistory command: each subcommand, its output and its error paths."""

from __future__ import annotations

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
from pghist import cli

BIN = Path(sys.executable).parent / "pghistory"


def pghistory_cmd(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (falls back to python -m pghist)."""
    command = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "pghist"]
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"
    }
    full_env.update(env or {})
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env=full_env, timeout=120, check=False
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def table(conn: psycopg.Connection[Any]) -> Iterator[str]:
    conn.execute("DROP TABLE IF EXISTS public.cli_items CASCADE")
    conn.execute("CREATE TABLE public.cli_items (id int PRIMARY KEY, name text, price int)")
    yield "public.cli_items"
    for row in pghist.status(conn):
        if str(row["target"]) in ("cli_items", "public.cli_items"):
            pghist.untrack(conn, "public.cli_items", drop_events=True)
    conn.execute("DROP TABLE IF EXISTS public.cli_items CASCADE")


# --- without a server ------------------------------------------------------------------


def test_parse_event() -> None:
    assert isinstance(cli.parse_event("insert"), pghist.InsertEvent)
    tracker = cli.parse_event("update:price_changed")
    assert isinstance(tracker, pghist.UpdateEvent)
    assert tracker.label == "price_changed"
    assert isinstance(cli.parse_event("before-delete:gone"), pghist.BeforeDelete)
    with pytest.raises(cli.UsageError, match="needs a label"):
        cli.parse_event("manual")
    with pytest.raises(cli.UsageError, match="unknown event kind"):
        cli.parse_event("upsert")


def test_format_table() -> None:
    text = cli.format_table(
        [{"a": 1, "b": None, "c": {"k": [1, 2]}}, {"a": 22, "b": "x", "c": ["p", "q"]}]
    )
    assert text == (
        " a  | b |       c\n"
        "----+---+---------------\n"
        ' 1  |   | {"k": [1, 2]}\n'
        " 22 | x | p, q\n"
        "(2 rows)\n"
    )
    assert cli.format_table([], ["x"]) == " x\n---\n(0 rows)\n"


def test_error_line_is_one_line() -> None:
    error = pghist.errors.UndefinedTable(
        'pghistory: relation\n "x" does not exist', sqlstate="42P01", hint="Check the\nname."
    )
    assert cli.error_line(error) == (
        'pghistory: error: relation "x" does not exist HINT: Check the name.'
    )


def test_usage_errors_exit_non_zero() -> None:
    result = pghistory_cmd("track")
    assert result.returncode == 2
    assert "usage:" in result.stderr
    result = pghistory_cmd("frobnicate")
    assert result.returncode == 2


def test_help_and_version() -> None:
    result = pghistory_cmd("--help")
    assert result.returncode == 0
    for command in ("install", "uninstall", "track", "untrack", "status", "events", "demo"):
        assert command in result.stdout
    result = pghistory_cmd("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"pghistory {pghist.__version__}"


def test_bad_dsn_is_one_line_and_exit_1() -> None:
    result = pghistory_cmd("status", "--dsn", "host=127.0.0.1 port=1 dbname=x connect_timeout=3")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("pghistory: error: ")
    assert "127.0.0.1" in lines[0] or "connect" in lines[0]


def test_malformed_dsn() -> None:
    result = pghistory_cmd("status", "--dsn", "this is not a dsn")
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("pghistory: error: ")


# --- against the server ----------------------------------------------------------------


def test_track_events_status_untrack(
    capsys: pytest.CaptureFixture[str], conn: psycopg.Connection[Any], db_dsn: str, table: str
) -> None:
    status, out, err = run_main(
        capsys,
        "track",
        table,
        "--dsn",
        db_dsn,
        "--event",
        "insert",
        "--event",
        "update:repriced",
        "--event",
        "manual:snap",
        "--exclude",
        "name",
    )
    assert (status, err) == (0, "")
    assert out.strip().split(".")[-1] == "cli_items_event"

    conn.execute("INSERT INTO public.cli_items VALUES (1, 'pen', 3), (2, 'ink', 9)")
    conn.execute("UPDATE public.cli_items SET price = 4 WHERE id = 1")
    conn.execute("UPDATE public.cli_items SET name = 'Pen' WHERE id = 1")  # excluded: no event

    status, out, err = run_main(capsys, "events", table, "--dsn", db_dsn, "--obj", "1", "--json")
    assert (status, err) == (0, "")
    rows = json.loads(out)
    assert [row["pgh_label"] for row in rows] == ["insert", "repriced"]
    assert rows[1]["pgh_data"] == {"id": 1, "price": 4}

    status, out, err = run_main(capsys, "events", table, "--dsn", db_dsn)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split("|")[0].strip() == "pgh_id"
    assert lines[-1] == "(3 rows)"
    assert "repriced" in out

    status, out, _ = run_main(capsys, "events", table, "--dsn", db_dsn, "--limit", "1", "--json")
    assert [row["pgh_label"] for row in json.loads(out)] == ["repriced"]

    status, out, err = run_main(capsys, "status", "--dsn", db_dsn, "--json")
    assert status == 0
    mine = [row for row in json.loads(out) if row["target"] in ("cli_items", "public.cli_items")]
    assert len(mine) == 1
    assert sorted(tracker["label"] for tracker in mine[0]["trackers"]) == [
        "insert",
        "repriced",
        "snap",
    ]

    status, out, err = run_main(capsys, "status", "--dsn", db_dsn)
    assert status == 0
    assert "cli_items_event" in out
    assert "repriced" in out

    status, out, err = run_main(capsys, "untrack", table, "--dsn", db_dsn)
    assert (status, out, err) == (0, "", "")
    conn.execute("INSERT INTO public.cli_items VALUES (3, 'cap', 1)")
    assert len(pghist.events(conn, table)) == 3  # no new event, history kept

    status, out, err = run_main(capsys, "untrack", table, "--dsn", db_dsn, "--drop-events")
    assert status == 0
    assert conn.execute("SELECT to_regclass('public.cli_items_event')").fetchone() == (None,)


def test_track_options(
    capsys: pytest.CaptureFixture[str], conn: psycopg.Connection[Any], db_dsn: str, table: str
) -> None:
    status, out, err = run_main(
        capsys,
        "track",
        table,
        "--dsn",
        db_dsn,
        "--no-obj-field",
        "--fields",
        "id,price",
        "--model-name",
        "public.cli_prices",
        "--context-mode",
        "json",
        "--append-only",
        "--level",
        "row",
        "--partition-by",
        "month",
    )
    assert (status, err) == (0, "")
    assert out.strip().split(".")[-1] == "cli_prices"
    columns = [
        row[0]
        for row in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'public.cli_prices'::regclass"
            " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        )
    ]
    assert "pgh_obj_id" not in columns
    assert "pgh_context" in columns
    assert columns[-2:] == ["id", "price"]
    row = next(r for r in pghist.status(conn) if str(r["event_table"]).endswith("cli_prices"))
    assert row["append_only"] is True
    assert row["level"] == "row"
    assert row["partition_by"] == "month"


def test_environment_connection(
    conn: psycopg.Connection[Any], db_dsn: str, table: str, pg_server: Any
) -> None:
    pghist.track(conn, table)
    conn.execute("INSERT INTO public.cli_items VALUES (1, 'pen', 3)")
    # DATABASE_URL
    result = pghistory_cmd("events", table, "--json", env={"DATABASE_URL": db_dsn})
    assert result.returncode == 0, result.stderr
    assert [row["pgh_label"] for row in json.loads(result.stdout)] == ["insert"]
    # the PG* variables
    params = psycopg.conninfo.conninfo_to_dict(db_dsn)
    env = {
        "PGHOST": str(params["host"]),
        "PGPORT": str(params["port"]),
        "PGDATABASE": str(params["dbname"]),
    }
    if params.get("user"):
        env["PGUSER"] = str(params["user"])
    result = pghistory_cmd("events", table, "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 1


def test_unknown_table_error(db_dsn: str) -> None:
    for args in (["track", "public.nope"], ["events", "public.nope"], ["untrack", "public.nope"]):
        result = pghistory_cmd(*args, "--dsn", db_dsn)
        assert result.returncode == 1, args
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("pghistory: error: ")
        assert "nope" in lines[0]


def test_server_error_carries_hint(db_dsn: str, table: str) -> None:
    result = pghistory_cmd("track", table, "--dsn", db_dsn, "--fields", "id,bogus")
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line
    assert "bogus" in line
    assert "HINT:" in line


def test_not_installed_error(make_database: Any) -> None:
    dsn = make_database()
    for args in (["status"], ["events", "pg_class"], ["uninstall"]):
        result = pghistory_cmd(*args, "--dsn", dsn)
        assert result.returncode == 1, args
        assert "not installed" in result.stderr
        assert len(result.stderr.splitlines()) == 1
    result = pghistory_cmd("uninstall", "--if-exists", "--dsn", dsn)
    assert result.returncode == 0, result.stderr


def test_install_and_uninstall(make_database: Any) -> None:
    dsn = make_database()
    result = pghistory_cmd("install", "--dsn", dsn, "--method", "script")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    with psycopg.connect(dsn, autocommit=True) as c:
        assert pghist.installed(c) == pghist.installer.Installed("script", pghist.version(c))
    result = pghistory_cmd("install", "--dsn", dsn, "-v")
    assert result.returncode == 0
    assert "already installed" in result.stdout
    result = pghistory_cmd("uninstall", "--dsn", dsn, "-v")
    assert result.returncode == 0, result.stderr
    assert "dropped schema pghistory" in result.stdout
    result = pghistory_cmd("install", "--dsn", dsn)
    assert (result.returncode, result.stderr) == (0, "")
    with psycopg.connect(dsn, autocommit=True) as c:
        installed = pghist.installed(c)
        assert installed is not None and installed.kind == "extension"


def test_uninstall_refuses_while_tracked(make_database: Any) -> None:
    dsn = make_database(extension=True)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY)")
        event_table = pghist.track(c, "public.t")
    result = pghistory_cmd("uninstall", "--dsn", dsn)
    assert result.returncode == 1
    assert "--cascade" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    result = pghistory_cmd("uninstall", "--dsn", dsn, "--cascade")
    assert result.returncode == 0, result.stderr
    with psycopg.connect(dsn, autocommit=True) as c:
        assert pghist.installed(c) is None
        # the history stays, and writes still work
        assert c.execute(
            sql.SQL("SELECT to_regclass(%s) IS NOT NULL"), (event_table,)
        ).fetchone() == (True,)
        c.execute("INSERT INTO t VALUES (1)")
