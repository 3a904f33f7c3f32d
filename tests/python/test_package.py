"""The built wheel carries the extension files, and the installed package finds them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "extension"


def default_version() -> str:
    for line in (EXTENSION / "pghistory.control").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "default_version":
            return value.strip().strip("'")
    raise AssertionError("no default_version")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        str(out),
        str(REPO / "pyinstaller"),
    ]
    if importlib.util.find_spec("hatchling") is not None:
        command.insert(4, "--no-build-isolation")  # use the hatchling we have, no download
    subprocess.run(command, check=True, timeout=300)
    (built,) = out.glob("pghistory-*.whl")
    return built


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    version = default_version()
    assert "pghist/extension/pghistory.control" in names
    assert f"pghist/extension/pghistory--{version}.sql" in names
    assert "pghist/py.typed" in names
    assert "pghist/cli.py" in names
    # every extension file, byte for byte from extension/
    with zipfile.ZipFile(wheel) as archive:
        for path in [EXTENSION / "pghistory.control", *EXTENSION.glob("pghistory--*.sql")]:
            assert archive.read(f"pghist/extension/{path.name}") == path.read_bytes()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "pghistory = pghist.cli:main" in archive.read(entry_points).decode()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = [
            line
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
        assert "Requires-Dist: psycopg>=3.2" in requires  # tests/oldest.txt tests that floor
        assert all("extra ==" in line for line in requires if "psycopg>=3.2" not in line)


def test_installed_wheel_finds_its_files(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    probe = (
        "import pathlib, pghist, pghist._files as f\n"
        "files = f.extension_files()\n"
        "print(pathlib.Path(pghist.__file__).resolve())\n"
        "print(files.directory.resolve())\n"
        "print(files.control.is_file())\n"
        "print(files.default_version)\n"
        "print(files.install_script().is_file())\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r})\n" + probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    module, directory, control, version, script = result.stdout.splitlines()
    assert Path(module).is_relative_to(target.resolve())
    assert Path(directory) == (target / "pghist" / "extension").resolve()
    assert control == "True"
    assert version == default_version()
    assert script == "True"


def test_source_checkout_uses_the_repository() -> None:
    import pghist._files as files

    found = files.extension_files()
    if (Path(files.__file__).parent / "extension").is_dir():
        pytest.skip("running from an installed wheel")
    assert found.directory.resolve() == EXTENSION.resolve()
