"""One version number: extension/pghistory.control's default_version. The package metadata,
pghist.__version__, the built wheel and sdist, and pghistory.version() of a fresh install follow
it (package version = default_version padded to major.minor.patch: '1.2' -> '1.2.0')."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

import pghist
from pghist._version import package_version

REPO = Path(__file__).resolve().parents[2]
CONTROL = REPO / "extension" / "pghistory.control"


def control_version() -> str:
    (version,) = re.findall(r"^default_version\s*=\s*'(.+)'\s*$", CONTROL.read_text(), re.M)
    return str(version)


def expected_package_version() -> str:
    parts = control_version().split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))


def test_rule() -> None:
    assert package_version("1.2") == "1.2.0"
    assert package_version("1.2.3") == "1.2.3"
    assert package_version("2") == "2.0.0"
    with pytest.raises(ValueError, match=re.escape("'1.2beta'")):
        package_version("1.2beta")
    assert re.fullmatch(r"\d+\.\d+\.\d+", expected_package_version())


def test_installed_metadata_follows_the_control_file() -> None:
    metadata = importlib.metadata.version("pghistory")
    assert metadata == expected_package_version(), (
        f"installed package metadata says {metadata}, the control file says "
        f"{control_version()!r}: reinstall (pip install -e ./pyinstaller; tests/run does it)"
    )


def test_dunder_version_follows_the_control_file() -> None:
    assert pghist.__version__ == expected_package_version()


def test_sql_version_of_a_fresh_install(make_database: Callable[..., str]) -> None:
    with psycopg.connect(make_database(extension=True), autocommit=True) as conn:
        row = conn.execute(
            "SELECT pghistory.version(), extversion FROM pg_extension WHERE extname = 'pghistory'"
        ).fetchone()
        assert row == (control_version(), control_version())
        assert pghist.version(conn) == control_version()


def test_no_other_version_literal_in_the_package() -> None:
    # no `version = "1.2.0"` nor `__version__ = '1.2'` beside the control file's
    assignment = re.compile(r"""\bversion\w*\s*=\s*["']\d""", re.IGNORECASE)
    found = [
        f"{path.relative_to(REPO)}: {line.strip()}"
        for path in [
            *(REPO / "pyinstaller").rglob("*.py"),
            REPO / "pyinstaller/pyproject.toml",
        ]
        for line in path.read_text().splitlines()
        if assignment.search(line)
    ]
    assert found == []


def test_sdist_and_its_wheel_carry_the_version(tmp_path: Path) -> None:
    # hatchling's own command line builds the sdist (no download); pip builds a wheel from it
    version = expected_package_version()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "hatchling",
            "build",
            "-t",
            "sdist",
            "-d",
            str(tmp_path),
        ],
        cwd=REPO / "pyinstaller",
        check=True,
        capture_output=True,
        timeout=300,
    )
    sdist = tmp_path / f"pghistory-{version}.tar.gz"
    with tarfile.open(sdist) as archive:
        pkg_info = archive.extractfile(f"pghistory-{version}/PKG-INFO")
        control = archive.extractfile(f"pghistory-{version}/pghist/extension/pghistory.control")
        assert pkg_info is not None
        assert control is not None
        assert f"Version: {version}" in pkg_info.read().decode().splitlines()
        assert control.read() == CONTROL.read_bytes()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "wheel"),
            str(sdist),
        ],
        check=True,
        timeout=300,
    )
    wheel = tmp_path / "wheel" / f"pghistory-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"pghistory-{version}.dist-info/METADATA").decode()
        assert f"Version: {version}" in metadata.splitlines()
        assert archive.read("pghist/extension/pghistory.control") == CONTROL.read_bytes()
