"""Where the extension's .control and .sql files are.

An installed wheel carries them as the package resource ``pghist/extension``;
an editable install or a source checkout uses the repository's ``extension/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ._version import CONTROL, extension_dir, parse_default_version
from .errors import InstallError

__all__ = ["ExtensionFiles", "extension_files"]


@dataclass(frozen=True)
class ExtensionFiles:
    directory: Path

    @property
    def control(self) -> Path:
        return self.directory / CONTROL

    @property
    def default_version(self) -> str:
        try:
            return parse_default_version(self.control.read_text(encoding="utf-8"), self.control)
        except ValueError as exc:
            raise InstallError(str(exc)) from None

    def install_script(self, version: str | None = None) -> Path:
        """The full install script ``pghistory--<version>.sql``."""
        path = self.directory / f"pghistory--{version or self.default_version}.sql"
        if not path.is_file():
            raise InstallError(f"pghistory: missing install script {path}")
        return path

    def sql_files(self) -> list[Path]:
        """Every ``pghistory--*.sql`` (install and upgrade scripts)."""
        return sorted(self.directory.glob("pghistory--*.sql"))

    def upgrade_path(self, start: str, end: str) -> list[Path]:
        """The upgrade scripts leading from ``start`` to ``end`` (shortest chain)."""
        steps: dict[str, list[tuple[str, Path]]] = {}
        for path in self.sql_files():
            match = re.fullmatch(r"pghistory--(.+)--(.+)\.sql", path.name)
            if match:
                steps.setdefault(match.group(1), []).append((match.group(2), path))
        frontier: list[tuple[str, list[Path]]] = [(start, [])]
        seen = {start}
        while frontier:
            following: list[tuple[str, list[Path]]] = []
            for version, chain in frontier:
                if version == end:
                    return chain
                for target, path in steps.get(version, []):
                    if target not in seen:
                        seen.add(target)
                        following.append((target, [*chain, path]))
            frontier = following
        raise InstallError(
            f"pghistory: no upgrade path from version {start} to {end}",
            hint="Upgrade scripts pghistory--A--B.sql are missing from the package.",
        )


def extension_files() -> ExtensionFiles:
    """The extension files this package installs."""
    directory = extension_dir()
    if directory is None:
        raise InstallError(
            "pghistory: the extension files are missing from the package",
            hint="Reinstall the pghistory package; a source checkout needs extension/.",
        )
    return ExtensionFiles(directory)
