"""Put the extension's SQL files into the wheel (and sdist) as ``pghist/extension``.

The files live once, in the repository's ``extension/`` directory, next to this
project. A wheel built from the repository takes them from there; a wheel built
from an sdist finds them already inside the package, where the sdist put them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class ExtensionFilesHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        source = root.parent / "extension"
        if (source / "pghistory.control").is_file():
            for path in sorted(source.iterdir()):
                if path.name == "pghistory.control" or (
                    path.name.startswith("pghistory--") and path.suffix == ".sql"
                ):
                    build_data["force_include"][str(path)] = f"pghist/extension/{path.name}"
            return
        if (root / "pghist" / "extension" / "pghistory.control").is_file():
            return  # building from an sdist: the files are already in the package
        raise RuntimeError(
            f"pghistory: cannot find the extension files: neither {source} "
            "nor pghist/extension/ holds pghistory.control"
        )
