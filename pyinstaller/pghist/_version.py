"""The package version, derived from the extension's control file.

``default_version`` in ``pghistory.control`` is the project's only version literal: the SQL
``pghistory.version()``, the wheel's metadata and ``pghist.__version__`` all follow it. The rule:
the package version is ``default_version`` padded with zeros to major.minor.patch, so
``default_version = '1.2'`` makes package ``1.2.0`` and ``'1.2.1'`` makes ``1.2.1``.

This module imports only the standard library: hatchling loads it standalone, as the package's
version source (``[tool.hatch.version]`` in pyproject.toml), when it builds the wheel or sdist.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["CONTROL", "__version__", "extension_dir", "package_version", "parse_default_version"]

CONTROL = "pghistory.control"

_DEFAULT_VERSION = re.compile(r"^\s*default_version\s*=\s*'([^']*)'", re.MULTILINE)
_NUMERIC = re.compile(r"\d+(\.\d+){0,2}")


def extension_dir() -> Path | None:
    """The directory holding ``pghistory.control`` and the SQL scripts, or None.

    An installed wheel (and an unpacked sdist) carries them as ``pghist/extension``; an editable
    install or a source checkout uses the repository's ``extension/``.
    """
    here = Path(__file__).resolve().parent
    for directory in (here / "extension", here.parent.parent / "extension"):
        if (directory / CONTROL).is_file():
            return directory
    return None


def parse_default_version(text: str, source: object = CONTROL) -> str:
    """The ``default_version`` of a control file's text."""
    match = _DEFAULT_VERSION.search(text)
    if match is None:
        raise ValueError(f"pghistory: no default_version = '...' in {source}")
    return match.group(1)


def package_version(default_version: str) -> str:
    """The Python package version of an extension version: '1.2' -> '1.2.0'."""
    if not _NUMERIC.fullmatch(default_version):
        raise ValueError(
            f"pghistory: default_version {default_version!r} is not MAJOR.MINOR[.PATCH] "
            "(digits only): the package version is derived from it"
        )
    parts = default_version.split(".")
    return ".".join([*parts, *["0"] * (3 - len(parts))])


def _version() -> str:
    directory = extension_dir()
    if directory is None:
        raise RuntimeError(
            f"pghistory: {CONTROL} is missing from the package (pghist/extension/) and from a "
            "source checkout (extension/); reinstall the pghistory package"
        )
    control = directory / CONTROL
    return package_version(parse_default_version(control.read_text(encoding="utf-8"), control))


__version__ = _version()
