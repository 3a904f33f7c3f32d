"""The oldest psycopg, SQLAlchemy, Alembic and Django that pyinstaller/pyproject.toml admits
(tests/oldest.txt): our wheel installed with them into ONE fresh virtualenv (pip refuses if a
floor there is below ours), then the integration tests run there, on this test run's server.

On PostgreSQL 15's run only: the point is the Python side."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from venvs import REPO, run, wheel_and_virtualenv

OLDEST = REPO / "tests" / "oldest.txt"
# what exercises psycopg, SQLAlchemy (every driver), Alembic and Django migrations
TESTS = (
    "test_api.py",
    "test_async.py",
    "test_conditions.py",
    "test_context_ambient.py",
    "test_migrations.py",
    "test_sqlalchemy.py",
)


@pytest.fixture(scope="module")
def venv(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if pg_server.version != 15:
        pytest.skip("the Python side: runs once, on PostgreSQL 15")
    base = tmp_path_factory.mktemp("oldest_versions")
    wheel, venv, pip = wheel_and_virtualenv(base)
    # our wheel with its extras, resolved against the pins: a pin below our floor fails here
    run(*pip, "-r", OLDEST, f"pghistory[sqlalchemy,alembic,django] @ {wheel.as_uri()}", cwd=base)
    return venv


VERSIONS = """
import importlib.metadata as md, json, sys
print(json.dumps({name: md.version(name) for name in sys.argv[1:]}))
"""


def test_the_oldest_versions_are_the_ones_installed(venv: Path) -> None:
    pins = dict(re.findall(r"^([\w.-]+)(?:\[[\w,]+\])?==(\S+)", OLDEST.read_text(), re.MULTILINE))
    out = run(venv / "bin" / "python", "-c", VERSIONS, *pins, cwd=venv)
    assert json.loads(out) == pins


def test_integration_tests_pass_on_the_oldest_versions(venv: Path, pg_server: Any) -> None:
    env = {
        "PGHISTORY_TEST_DSN": pg_server.dsn(),
        "PGHISTORY_TEST_PG_VERSION": str(pg_server.version),
        "PGHISTORY_TEST_PG_BINDIR": str(pg_server.bindir or ""),
    }
    out = run(
        venv / "bin" / "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *(f"tests/python/{name}" for name in TESTS),
        cwd=REPO,
        env=env,
    )
    # the package under test is the wheel in the virtualenv, not this checkout
    probe = run(venv / "bin" / "python", "-c", "import pghist; print(pghist.__file__)", cwd=REPO)
    assert Path(probe.strip()).resolve().is_relative_to(venv.resolve())
    summary = out.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    assert passed >= 150, summary
    assert "failed" not in summary and "error" not in summary, summary
