"""For the tests that install our wheel into a virtualenv of their own
(test_beside_django_pghistory, test_oldest_versions): build it, make the virtualenv, run in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``command`` outside this test run's environment (plus ``env``); its stdout."""
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def wheel_and_virtualenv(base: Path) -> tuple[Path, Path, tuple[str | Path, ...]]:
    """Our wheel, built from pyinstaller/, and a fresh virtualenv, both under ``base``; with
    the virtualenv's quiet ``pip install`` command."""
    wheels = base / "wheels"
    pip_wheel = ("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels)
    run(sys.executable, *pip_wheel, REPO / "pyinstaller", cwd=base)
    (wheel,) = wheels.glob("pghistory-*.whl")
    venv = base / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=base)
    pip = (venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check")
    return wheel, venv, pip
