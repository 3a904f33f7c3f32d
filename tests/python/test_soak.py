"""The soak's short version: 4 clients for 20 s of mixed tracked writes (contexts, savepoints,
rollbacks, bulk) while another session tracks, alters and syncs, prunes and backfills; the
history replayed must rebuild every table exactly, and no writer may fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_soak_short(pg_server: Any) -> None:
    if pg_server.version != 15:
        pytest.skip("the soak runs once, on PostgreSQL 15")
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--pg", "15", "--clients", "4", "--seconds", "20"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "every one rebuilt exactly" in result.stdout, result.stdout + result.stderr
    assert "no deadlock, serialization failure or other error" in result.stdout, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
    # every kind of transaction and every admin action ran
    for kind in ("bulk_insert", "bulk_update", "delete", "rollback", "savepoint", "noop"):
        assert f"{kind} " in result.stdout
    for action in ("track", "alter", "prune", "backfill"):
        assert f"{action} " in result.stdout.split("admin actions:")[1]
