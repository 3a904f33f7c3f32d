"""Installing the extension into a database, by whatever way that server allows.

* ``files``: copy ``pghistory.control`` and ``pghistory--*.sql`` into the server's
  ``SHAREDIR/extension`` (the server must run on this machine, and that directory be
  writable by you), then ``CREATE EXTENSION``.
* ``script``: for servers whose files you cannot touch (managed PostgreSQL): run the
  same install script into schema ``pghistory`` directly; its ``pghistory.version()``
  records what is installed, so a later install can upgrade it.
* ``auto``: ``CREATE EXTENSION`` when the server already offers this version, else
  ``files`` when possible, else ``script``.

Installing twice is harmless. Installing over an older version updates it
(``ALTER EXTENSION ... UPDATE``, or the upgrade scripts for a script install) and says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql

from ._files import ExtensionFiles, extension_files
from ._run import Execute, Steps, Transaction, dual
from .errors import (
    DependentObjectsStillExist,
    InstallError,
    NotInstalled,
    from_psycopg,
    translate,
)

__all__ = ["InstallResult", "install", "installed", "uninstall"]

Method = Literal["auto", "files", "script"]
METHODS: tuple[str, ...] = ("auto", "files", "script")

# A fixed key for pg_advisory_xact_lock, so two installers never interleave.
_LOCK_KEY = 0x7067_6869  # "pghi"


@dataclass
class InstallResult:
    """What :func:`install` did."""

    #: "extension" (CREATE EXTENSION of files the server had), "files" or "script".
    method: str
    #: "created", "updated" or "unchanged".
    action: str
    #: The version installed now.
    version: str
    #: The version that was there before (None if none).
    previous_version: str | None = None
    #: Files copied into the server's extension directory (files method).
    copied: list[Path] = field(default_factory=list)
    #: Files that did not exist there before (what a cleanup may remove).
    created_files: list[Path] = field(default_factory=list)
    #: Why the method differs from the one asked for, if it does.
    note: str | None = None

    @property
    def message(self) -> str:
        how = {
            "extension": "as an extension",
            "files": "as an extension (files copied into the server)",
            "script": "with the script method (schema pghistory)",
        }[self.method]
        if self.action == "unchanged":
            text = f"pghistory {self.version} is already installed"
        elif self.action == "updated":
            text = f"updated pghistory from {self.previous_version} to {self.version} {how}"
        else:
            text = f"installed pghistory {self.version} {how}"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class Installed:
    """What is in the database now: ``kind`` is "extension" or "script"."""

    kind: str
    version: str


def _installed() -> Steps[Installed | None]:
    rows = yield Execute(
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pghistory'"
    )
    if rows.rows:
        return Installed("extension", str(rows.first()))
    rows = yield Execute("SELECT pg_catalog.to_regprocedure('pghistory.version()') IS NOT NULL")
    if rows.rows and rows.first():
        rows = yield Execute("SELECT pghistory.version()")
        return Installed("script", str(rows.first()) if rows.rows else "unknown")
    return None


@dual
def installed(conn: Any) -> Steps[Installed | None]:
    """What pghistory the database holds, if any."""
    return (yield from _installed())


def _available_versions() -> Steps[set[str]]:
    rows = yield Execute(
        "SELECT version FROM pg_catalog.pg_available_extension_versions WHERE name = 'pghistory'"
    )
    return {str(row[0]) for row in rows.rows}


def _sharedir() -> Steps[Any]:
    return (yield Execute("SELECT setting FROM pg_catalog.pg_config WHERE name = 'SHAREDIR'"))


def _extension_dir() -> Steps[Path]:
    try:
        rows = yield Transaction(_sharedir())
    except psycopg.errors.InsufficientPrivilege as exc:
        raise InstallError(
            "pghistory: cannot read the server's SHAREDIR from pg_config "
            "(needs superuser or pg_read_all_settings)",
            sqlstate=exc.sqlstate,
            hint="Use --method script (method='script') to install without server files.",
        ) from exc
    except psycopg.Error as exc:
        raise InstallError(
            f"pghistory: cannot read the server's SHAREDIR: {exc.diag.message_primary or exc}",
            sqlstate=exc.sqlstate,
        ) from exc
    if not rows.rows or not rows.first():
        raise InstallError("pghistory: the server does not report its SHAREDIR")
    return Path(str(rows.first())) / "extension"


def _copy_files(files: ExtensionFiles) -> Steps[tuple[list[Path], list[Path]]]:
    target = yield from _extension_dir()
    hint = (
        "Run `make install` on the database server, or use --method script "
        "(method='script') to install without server files."
    )
    if not target.is_dir():
        raise InstallError(
            f"pghistory: the server's extension directory {target} is not on this machine",
            hint=hint,
        )
    sources = [files.control, *files.sql_files()]
    copied: list[Path] = []
    created: list[Path] = []
    try:
        for source in sources:
            destination = target / source.name
            existed = destination.exists()
            # Write beside, then rename: a server reading the file never sees half of it.
            partial = target / f".{source.name}.pghistory-partial"
            try:
                shutil.copyfile(source, partial)
                partial.chmod(0o644)
                os.replace(partial, destination)
            finally:
                partial.unlink(missing_ok=True)
            copied.append(destination)
            if not existed:
                created.append(destination)
    except OSError as exc:
        _remove(created)
        raise InstallError(
            f"pghistory: cannot copy the extension files into {target}: {exc.strerror or exc}",
            hint=hint,
        ) from exc
    if files.default_version not in (yield from _available_versions()):
        _remove(created)
        raise InstallError(
            f"pghistory: copied the extension files into {target}, but the server does not "
            "see them: it runs on another machine",
            hint=hint,
        )
    return copied, created


@dual
def copy_files(conn: Any, files: ExtensionFiles) -> Steps[tuple[list[Path], list[Path]]]:
    """Copy the extension files into the server's extension directory.

    Returns (copied, newly created). Raises InstallError when that directory is not
    on this machine or not writable, or the server does not see the copies.
    """
    return (yield from _copy_files(files))


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def _script(path: Path) -> bytes:
    """An extension script made runnable outside CREATE EXTENSION."""
    text = path.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    if first.lstrip().startswith("\\echo"):
        text = rest
    return text.replace("@extschema@", "pghistory").encode("utf-8")


_LOCK = Execute("SELECT pg_catalog.pg_advisory_xact_lock(%s)", (_LOCK_KEY,))


def _locked(*statements: Execute) -> Steps[None]:
    """In the current transaction: the installers' lock, then ``statements``."""
    yield _LOCK
    for statement in statements:  # noqa: UP028 (a tuple iterator takes no send())
        yield statement


def _scripts(paths: list[Path]) -> list[Execute]:
    """Extension scripts run as CREATE/ALTER EXTENSION would, in the current transaction.

    Like those, without checking function bodies: a function may use one defined further down.
    """
    return [Execute("SET LOCAL check_function_bodies = off")] + [
        Execute(_script(path)) for path in paths
    ]


def _create_extension(version: str) -> Steps[None]:
    yield Transaction(
        _locked(
            Execute(
                sql.SQL("CREATE EXTENSION IF NOT EXISTS pghistory VERSION {}").format(
                    sql.Literal(version)
                )
            )
        )
    )


def _run_script(files: ExtensionFiles) -> Steps[None]:
    yield Transaction(
        _locked(Execute("CREATE SCHEMA pghistory"), *_scripts([files.install_script()]))
    )


@dual
def install(conn: Any, method: Method | str = "auto") -> Steps[InstallResult]:
    """Install (or update) the pghistory extension in ``conn``'s database.

    See the module documentation for the methods. Returns what was done.
    """
    if method not in METHODS:
        raise InstallError(
            f"pghistory: unknown install method {method!r}",
            hint="Use one of: " + ", ".join(METHODS) + ".",
        )
    files = extension_files()
    target = files.default_version
    present = yield from _installed()

    if present is not None and present.kind == "extension":
        if method == "script":
            raise InstallError(
                "pghistory is installed as an extension here; the script method cannot manage it",
                hint="Use --method auto or files, or uninstall first.",
            )
        if present.version == target:
            return InstallResult("extension", "unchanged", target)
        copied: list[Path] = []
        created: list[Path] = []
        if method == "files" or target not in (yield from _available_versions()):
            copied, created = yield from _copy_files(files)
        yield Transaction(
            _locked(
                Execute(
                    sql.SQL("ALTER EXTENSION pghistory UPDATE TO {}").format(sql.Literal(target))
                )
            )
        )
        return InstallResult(
            "files" if copied else "extension",
            "updated",
            target,
            previous_version=present.version,
            copied=copied,
            created_files=created,
        )

    if present is not None:  # a script install
        if method == "files":
            raise InstallError(
                "pghistory is installed here with the script method (schema pghistory); "
                "it cannot be turned into an extension in place",
                hint="Use --method script or auto to update it, or uninstall first.",
            )
        if present.version == target:
            return InstallResult("script", "unchanged", target)
        chain = files.upgrade_path(present.version, target)
        yield Transaction(_locked(*_scripts(chain)))
        return InstallResult("script", "updated", target, previous_version=present.version)

    if method == "script":
        yield from _run_script(files)
        return InstallResult("script", "created", target)
    if method == "auto" and target in (yield from _available_versions()):
        yield from _create_extension(target)
        return InstallResult("extension", "created", target)
    try:
        copied, created = yield from _copy_files(files)
    except InstallError as exc:
        if method == "files":
            raise
        yield from _run_script(files)
        note = exc.message.removeprefix("pghistory: ")
        return InstallResult("script", "created", target, note=note)
    yield from _create_extension(target)
    return InstallResult("files", "created", target, copied=copied, created_files=created)


def _drop_empty_schema() -> Steps[None]:
    yield Execute("DROP SCHEMA IF EXISTS pghistory RESTRICT")


def _uninstall(present: Installed, cascade: bool) -> Steps[str]:
    hint = (
        "Untrack the tables first (pghistory untrack TABLE), or uninstall with --cascade "
        "(cascade=True), which untracks them; their history stays."
    )
    if present.kind == "extension":
        what = f"dropped extension pghistory {present.version} and its schema pghistory"
        statement = sql.SQL("DROP EXTENSION pghistory {}").format(
            sql.SQL("CASCADE" if cascade else "RESTRICT")
        )
    else:
        what = f"dropped schema pghistory (pghistory {present.version}, script install)"
        statement = sql.SQL("DROP SCHEMA pghistory CASCADE").format()
    with translate():
        yield _LOCK
        tracked = [str(row[0]) for row in (yield Execute(_TRACKED)).rows]
    if tracked and not cascade:
        raise DependentObjectsStillExist(
            f"cannot uninstall pghistory: tables are still tracked: {', '.join(tracked)}",
            sqlstate="2BP01",
            hint=hint,
        )
    with translate():
        for target in tracked:
            yield Execute("SELECT pghistory.untrack(%s::regclass)", (target,))
    try:
        yield Execute(statement)
    except psycopg.errors.DependentObjectsStillExist as exc:
        raise DependentObjectsStillExist(
            "cannot uninstall pghistory: "
            + (exc.diag.message_primary or "other objects depend on it"),
            sqlstate=exc.sqlstate,
            detail=exc.diag.message_detail,
            hint="Drop them first, or uninstall with --cascade (cascade=True).",
        ) from exc
    except psycopg.Error as exc:
        raise from_psycopg(exc) from exc
    if present.kind == "extension":
        # CREATE EXTENSION made schema pghistory, but DROP EXTENSION leaves it behind:
        # drop it too unless something else was put there.
        try:
            yield Transaction(_drop_empty_schema())
        except psycopg.errors.DependentObjectsStillExist:
            what = what.replace(
                "and its schema pghistory", "(schema pghistory kept: it holds other objects)"
            )
    if tracked:
        what += f"; untracked {', '.join(tracked)}"
    return what + "; event tables stay"


@dual
def uninstall(conn: Any, *, cascade: bool = False, missing_ok: bool = False) -> Steps[str]:
    """Remove pghistory from the database; returns a sentence saying what was dropped.

    Event tables live in your schemas and stay. While tables are still tracked (their
    triggers would fail without pghistory) this refuses, unless ``cascade``, which
    first untracks them (``pghistory.untrack``: triggers go, history stays).
    """
    present = yield from _installed()
    if present is None:
        if missing_ok:
            return "pghistory is not installed; nothing dropped"
        raise NotInstalled(
            "pghistory is not installed in this database", hint="Nothing to uninstall."
        )
    return (yield Transaction(_uninstall(present, cascade)))  # type: ignore[no-any-return]


# Tables whose tracking is active (they have pghistory triggers).
_TRACKED = sql.SQL(
    "SELECT DISTINCT target::text FROM pghistory.tracking WHERE active ORDER BY 1"
).format()
