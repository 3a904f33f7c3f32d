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


def installed(conn: psycopg.Connection[Any]) -> Installed | None:
    """What pghistory the database holds, if any."""
    with translate(), conn.cursor() as cur:
        cur.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pghistory'")
        row = cur.fetchone()
        if row is not None:
            return Installed("extension", str(row[0]))
        cur.execute("SELECT pg_catalog.to_regprocedure('pghistory.version()') IS NOT NULL")
        row = cur.fetchone()
        if row is not None and row[0]:
            cur.execute("SELECT pghistory.version()")
            row = cur.fetchone()
            return Installed("script", str(row[0]) if row else "unknown")
        return None


def _available_versions(conn: psycopg.Connection[Any]) -> set[str]:
    with translate(), conn.cursor() as cur:
        cur.execute(
            "SELECT version FROM pg_catalog.pg_available_extension_versions"
            " WHERE name = 'pghistory'"
        )
        return {str(row[0]) for row in cur.fetchall()}


def _extension_dir(conn: psycopg.Connection[Any]) -> Path:
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT setting FROM pg_catalog.pg_config WHERE name = 'SHAREDIR'")
            row = cur.fetchone()
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
    if row is None or not row[0]:
        raise InstallError("pghistory: the server does not report its SHAREDIR")
    return Path(str(row[0])) / "extension"


def copy_files(
    conn: psycopg.Connection[Any], files: ExtensionFiles
) -> tuple[list[Path], list[Path]]:
    """Copy the extension files into the server's extension directory.

    Returns (copied, newly created). Raises InstallError when that directory is not
    on this machine or not writable, or the server does not see the copies.
    """
    target = _extension_dir(conn)
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
    if files.default_version not in _available_versions(conn):
        _remove(created)
        raise InstallError(
            f"pghistory: copied the extension files into {target}, but the server does not "
            "see them: it runs on another machine",
            hint=hint,
        )
    return copied, created


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


def _lock(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_catalog.pg_advisory_xact_lock(%s)", (_LOCK_KEY,))


def _run_scripts(conn: psycopg.Connection[Any], paths: list[Path]) -> None:
    """Run extension scripts as CREATE/ALTER EXTENSION would, in the current transaction.

    Like those, without checking function bodies: a function may use one defined further down.
    """
    conn.execute("SET LOCAL check_function_bodies = off")
    for path in paths:
        conn.execute(_script(path))


def _create_extension(conn: psycopg.Connection[Any], version: str) -> None:
    with translate(), conn.transaction():
        _lock(conn)
        conn.execute(
            sql.SQL("CREATE EXTENSION IF NOT EXISTS pghistory VERSION {}").format(
                sql.Literal(version)
            )
        )


def _run_script(conn: psycopg.Connection[Any], files: ExtensionFiles) -> None:
    with translate(), conn.transaction():
        _lock(conn)
        conn.execute("CREATE SCHEMA pghistory")
        _run_scripts(conn, [files.install_script()])


def install(conn: psycopg.Connection[Any], method: Method | str = "auto") -> InstallResult:
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
    present = installed(conn)

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
        if method == "files" or target not in _available_versions(conn):
            copied, created = copy_files(conn, files)
        with translate(), conn.transaction():
            _lock(conn)
            conn.execute(
                sql.SQL("ALTER EXTENSION pghistory UPDATE TO {}").format(sql.Literal(target))
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
        with translate(), conn.transaction():
            _lock(conn)
            _run_scripts(conn, chain)
        return InstallResult("script", "updated", target, previous_version=present.version)

    if method == "script":
        _run_script(conn, files)
        return InstallResult("script", "created", target)
    if method == "auto" and target in _available_versions(conn):
        _create_extension(conn, target)
        return InstallResult("extension", "created", target)
    try:
        copied, created = copy_files(conn, files)
    except InstallError as exc:
        if method == "files":
            raise
        _run_script(conn, files)
        note = exc.message.removeprefix("pghistory: ")
        return InstallResult("script", "created", target, note=note)
    _create_extension(conn, target)
    return InstallResult("files", "created", target, copied=copied, created_files=created)


def uninstall(
    conn: psycopg.Connection[Any], *, cascade: bool = False, missing_ok: bool = False
) -> str:
    """Remove pghistory from the database; returns a sentence saying what was dropped.

    Event tables live in your schemas and stay. While tables are still tracked (their
    triggers would fail without pghistory) this refuses, unless ``cascade``, which
    first untracks them (``pghistory.untrack``: triggers go, history stays).
    """
    present = installed(conn)
    if present is None:
        if missing_ok:
            return "pghistory is not installed; nothing dropped"
        raise NotInstalled(
            "pghistory is not installed in this database", hint="Nothing to uninstall."
        )
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
    with conn.transaction():
        with translate():
            _lock(conn)
            tracked = [str(row[0]) for row in conn.execute(_TRACKED).fetchall()]
        if tracked and not cascade:
            raise DependentObjectsStillExist(
                f"cannot uninstall pghistory: tables are still tracked: {', '.join(tracked)}",
                sqlstate="2BP01",
                hint=hint,
            )
        with translate():
            for target in tracked:
                conn.execute("SELECT pghistory.untrack(%s::regclass)", (target,))
        try:
            conn.execute(statement)
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
                with conn.transaction():
                    conn.execute("DROP SCHEMA IF EXISTS pghistory RESTRICT")
            except psycopg.errors.DependentObjectsStillExist:
                what = what.replace(
                    "and its schema pghistory", "(schema pghistory kept: it holds other objects)"
                )
    if tracked:
        what += f"; untracked {', '.join(tracked)}"
    return what + "; event tables stay"


# Tables whose tracking is active (they have pghistory triggers).
_TRACKED = sql.SQL(
    "SELECT DISTINCT target::text FROM pghistory.tracking WHERE active ORDER BY 1"
).format()
