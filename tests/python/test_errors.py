"""pghistory.errors: server errors become a small hierarchy keyed by SQLSTATE."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pghist import errors


def server_error(
    conn: psycopg.Connection[Any], sqlstate: str, hint: str | None = "do this"
) -> psycopg.Error:
    """A real server error with that SQLSTATE, message and hint (raised by PL/pgSQL)."""
    hint_sql = "" if hint is None else f", HINT = '{hint}'"
    try:
        conn.execute(
            f"DO $$ BEGIN RAISE EXCEPTION 'pghistory: bad thing' USING ERRCODE = '{sqlstate}',"
            f" DETAIL = 'some detail'{hint_sql}; END $$"
        )
    except psycopg.Error as exc:
        return exc
    raise AssertionError("no error")


@pytest.mark.parametrize(
    ("sqlstate", "cls"),
    [
        ("22023", errors.InvalidParameter),
        ("22P02", errors.InvalidTextRepresentation),
        ("42P01", errors.UndefinedTable),
        ("42703", errors.UndefinedColumn),
        ("42704", errors.UndefinedObject),
        ("42883", errors.UndefinedFunction),
        ("42710", errors.DuplicateObject),
        ("42P07", errors.DuplicateObject),
        ("42501", errors.InsufficientPrivilege),
        ("P0002", errors.NoDataFound),
        ("42P17", errors.InvalidObjectDefinition),
        ("2BP01", errors.DependentObjectsStillExist),
        ("22007", errors.InvalidDatetimeFormat),
        ("55000", errors.ObjectNotInPrerequisiteState),
        ("P0001", errors.PghistoryError),
        ("42804", errors.PghistoryError),
    ],
)
def test_mapping(
    conn: psycopg.Connection[Any], sqlstate: str, cls: type[errors.PghistoryError]
) -> None:
    error = errors.from_psycopg(server_error(conn, sqlstate))
    assert type(error) is cls
    assert isinstance(error, errors.PghistoryError)
    assert error.sqlstate == sqlstate
    assert error.message == "pghistory: bad thing"
    assert error.hint == "do this"
    assert error.detail == "some detail"
    assert str(error) == "pghistory: bad thing\nDETAIL: some detail\nHINT: do this"


def test_translate_chains_the_original(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(errors.UndefinedColumn) as info, errors.translate():
        conn.execute("SELECT no_such_column FROM pg_class")
    assert isinstance(info.value.__cause__, psycopg.errors.UndefinedColumn)
    assert info.value.sqlstate == "42703"
    assert "no_such_column" in info.value.message


def test_missing_schema_means_not_installed(make_database: Any) -> None:
    with psycopg.connect(make_database(), autocommit=True) as fresh:
        for statement in (
            "SELECT pghistory.version()",
            "SELECT * FROM pghistory.tracking",
            "SELECT NULL::pghistory.tracker",
        ):
            with pytest.raises(errors.NotInstalled) as info, errors.translate():
                fresh.execute(statement.encode())
            assert "not installed" in info.value.message
            assert "pghistory install" in (info.value.hint or "")


def test_connection_failure() -> None:
    with pytest.raises(errors.ConnectionFailed) as info, errors.translate():
        psycopg.connect("host=127.0.0.1 port=1 connect_timeout=3 dbname=x")
    assert info.value.sqlstate is None
    assert info.value.message
