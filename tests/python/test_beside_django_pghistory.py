"""Our wheel and django-pghistory in ONE fresh virtualenv: a Django project that already uses
django-pghistory installs us, and both import side by side. `import pghist` is ours,
`import pghistory` stays django-pghistory's, and the `pghistory` command is ours.

The versions are tests/requirements.txt's pins; pip's cache keeps the installs fast, and the
virtualenv is made once for the module (on PostgreSQL 15's run only: it needs no server)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from venvs import REPO, run, wheel_and_virtualenv

# django-pghistory as a project has it, then psycopg's binary build (no libpq needed) for us
THEIRS = ("django-pghistory", "django-pgtrigger", "django")
OURS_DEPENDENCIES = ("psycopg[binary]",)


def pinned(*names: str) -> list[str]:
    """`name==version` for each name, from tests/requirements.txt."""
    text = (REPO / "tests" / "requirements.txt").read_text()
    pins = []
    for name in names:
        match = re.search(rf"^{re.escape(name)}==\S+", text, re.MULTILINE | re.IGNORECASE)
        assert match, f"tests/requirements.txt pins no {name}"
        pins.append(match.group(0))
    return pins


@pytest.fixture(scope="module")
def venv(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if pg_server.version != 15:
        pytest.skip("needs no server: runs once, on PostgreSQL 15")
    base = tmp_path_factory.mktemp("beside_django_pghistory")
    wheel, venv, pip = wheel_and_virtualenv(base)
    run(*pip, *pinned(*THEIRS), cwd=base)  # the project as it was
    run(*pip, wheel, *pinned(*OURS_DEPENDENCIES), cwd=base)  # then we arrive
    return venv


PROBE = """
import importlib.metadata as md, json, pghist, pghistory
print(json.dumps({
    "pghist": pghist.__file__,
    "pghistory": pghistory.__file__,
    "pghist_version": pghist.__version__,
    "pghistory_version": pghistory.__version__,
    "pghist_from": md.packages_distributions().get("pghist"),
    "pghistory_from": md.packages_distributions().get("pghistory"),
    "pghistory_track_is_django": pghistory.track.__module__,
    "context_is_ours": pghist.context.__module__,
}))
"""


def test_both_import_side_by_side(venv: Path, tmp_path: Path) -> None:
    import pghist

    out = json.loads(run(venv / "bin" / "python", "-I", "-c", PROBE, cwd=tmp_path))
    site = venv.resolve()
    assert Path(out["pghist"]).resolve().is_relative_to(site)
    assert Path(out["pghistory"]).resolve().is_relative_to(site)
    assert out["pghist_from"] == ["pghistory"]  # the import package pghist is our distribution's
    assert out["pghistory_from"] == ["django-pghistory"]  # and pghistory is theirs alone
    assert out["pghist_version"] == pghist.__version__
    (theirs,) = pinned("django-pghistory")
    assert out["pghistory_version"] == theirs.split("==")[1]
    assert out["pghistory_track_is_django"] == "pghistory.core"
    assert out["context_is_ours"].startswith("pghist")


def test_pip_sees_no_conflict(venv: Path, tmp_path: Path) -> None:
    out = run(venv / "bin" / "python", "-m", "pip", "check", cwd=tmp_path)
    assert "No broken requirements found" in out


def test_the_pghistory_command_is_ours(venv: Path, tmp_path: Path) -> None:
    import pghist

    assert run(venv / "bin" / "pghistory", "--version", cwd=tmp_path).strip() == (
        f"pghistory {pghist.__version__}"
    )
    script = (venv / "bin" / "pghistory").read_text()
    assert "from pghist.cli import main" in script
    assert run(venv / "bin" / "python", "-m", "pghist", "--version", cwd=tmp_path).strip() == (
        f"pghistory {pghist.__version__}"
    )
