"""The package, its tests and tools stay clean: ruff (lint and format) and mypy --strict, as
configured in pyinstaller/pyproject.toml (and ../ruff.toml, which extends it for the rest)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2] / "pyinstaller"
REPO = PROJECT.parent
# What ruff checks, from the repository root; mypy checks the same (`files` in pyproject.toml).
LINTED = ["pyinstaller", "tests", "tools", "bench", "examples"]


def tool(module: str, *args: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install './pyinstaller[test]')")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_ruff_lint() -> None:
    result = tool("ruff", "check", "--no-cache", *LINTED, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = tool("ruff", "format", "--check", "--no-cache", *LINTED, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = tool("mypy", "--no-incremental", "--cache-dir", "/dev/null")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_mypy_and_ruff_check_the_same_directories() -> None:
    # the package's pyproject.toml lists for mypy what LINTED lists for ruff
    (listed,) = re.findall(r"^files = \[(.*)\]$", (PROJECT / "pyproject.toml").read_text(), re.M)
    files = {Path(f).parts[-1] for f in re.findall(r'"([^"]+)"', listed)}
    assert files == {"pghist", *LINTED} - {"pyinstaller"}


def test_harness_is_imported_not_put_on_sys_path() -> None:
    # tests/ and bench/ are packages: `from tests import pgserver`, never a sys.path edit
    edits = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for folder in ("tests", "bench")
        for path in sorted((REPO / folder).rglob("*.py"))
        if "results" not in path.parts
        and ".venv-django" not in path.parts  # (not ours)
        # runs in the reference's own virtualenv, importing the Django app it writes to a temp dir
        and path != REPO / "bench" / "benchlib" / "django_gen.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(r"\s*sys\.path(\.(insert|append|extend)\b|\s*[\[+=])", line)
    ]
    assert edits == []
