"""The read and partitioned-table benchmarks run (small sizes) and print their tables; figures are
for bench/, not tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def quick_run(pg_server: Any, script: str, *args: str) -> str:
    """The benchmark script's --quick output (run once, on PostgreSQL 15)."""
    if pg_server.version != 15:
        pytest.skip("the benchmark scripts are exercised once, on PostgreSQL 15")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            f"bench.{script.removesuffix('.py')}",
            "--quick",
            "--pg",
            "15",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_read_benchmark_quick(pg_server: Any) -> None:
    output = quick_run(pg_server, "read.py")
    assert "| one object's history with diffs (pghistory.events) |" in output
    assert "| prune() one month |" in output


def test_partitioned_benchmark_quick(pg_server: Any) -> None:
    output = quick_run(pg_server, "partitioned.py")
    assert "| moving UPDATE (ms) |" in output
    # the moved rows are updates at the default level, deletes and inserts at row level
    assert "default level: insert 10,000, update" in output
    assert "row level: insert 12,000, update" in output


def test_write_benchmark_quick(pg_server: Any) -> None:
    # django-pghistory's column needs a virtualenv from PyPI: left out of the smoke run
    variants = "untracked,floor,lean,stmt,pghistory,pgh_a"
    output = quick_run(pg_server, "run.py", "--no-django", "--variants", variants)
    assert "| single-row UPDATE that changes nothing, 1 client |" in output
    assert "| bulk INSERT 10000 rows " in output
    assert "Goals of issue 13 for pghistory:" in output
    assert "Every measured run wrote the expected events" in output
