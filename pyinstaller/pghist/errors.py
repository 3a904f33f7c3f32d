"""Exceptions raised by the pghistory package.

Every error the server reports reaches you as a :class:`PghistoryError` (or one of
its subclasses, chosen by SQLSTATE) carrying the server's message, SQLSTATE,
detail and hint. The original psycopg exception is chained as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

__all__ = [
    "ConnectionFailed",
    "ContextError",
    "DependentObjectsStillExist",
    "DuplicateObject",
    "InstallError",
    "InsufficientPrivilege",
    "InvalidDatetimeFormat",
    "InvalidObjectDefinition",
    "InvalidParameter",
    "InvalidTextRepresentation",
    "NoDataFound",
    "NotInstalled",
    "ObjectNotInPrerequisiteState",
    "PghistoryError",
    "UndefinedColumn",
    "UndefinedFunction",
    "UndefinedObject",
    "UndefinedTable",
    "from_psycopg",
    "translate",
]


class PghistoryError(Exception):
    """Base class: a failed pghistory operation.

    ``sqlstate`` is the server's five-character SQLSTATE (None for errors found on
    the client side), ``message``/``detail``/``hint`` its primary message, detail
    and hint.
    """

    sqlstates: tuple[str, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None = None,
        hint: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.hint = hint
        self.detail = detail

    def __str__(self) -> str:
        text = self.message
        if self.detail:
            text += f"\nDETAIL: {self.detail}"
        if self.hint:
            text += f"\nHINT: {self.hint}"
        return text


class NotInstalled(PghistoryError):
    """The pghistory extension is not installed in this database."""


class InstallError(PghistoryError):
    """Installing or removing the extension failed (files, method, versions)."""


class ConnectionFailed(PghistoryError):
    """The server could not be reached, or the connection broke."""


class ContextError(PghistoryError):
    """A ``pghist.context`` could not be put on a transaction (the write does not happen)."""


class InvalidParameter(PghistoryError):
    """A bad argument: unknown option, label or value (22023)."""

    sqlstates = ("22023",)


class InvalidTextRepresentation(PghistoryError):
    """A value that does not parse as its type (22P02)."""

    sqlstates = ("22P02",)


class InvalidDatetimeFormat(PghistoryError):
    """A timestamp or interval that does not parse, e.g. ``older_than="90 dayz"`` (22007)."""

    sqlstates = ("22007",)


class UndefinedTable(PghistoryError):
    """No such table (42P01)."""

    sqlstates = ("42P01",)


class UndefinedColumn(PghistoryError):
    """No such column (42703)."""

    sqlstates = ("42703",)


class UndefinedObject(PghistoryError):
    """No such object, e.g. tracking or label (42704)."""

    sqlstates = ("42704",)


class UndefinedFunction(PghistoryError):
    """No such function, or wrong arguments for it (42883)."""

    sqlstates = ("42883",)


class DuplicateObject(PghistoryError):
    """The object exists already (42710, 42P07, 42723)."""

    sqlstates = ("42710", "42P07", "42723")


class InsufficientPrivilege(PghistoryError):
    """Not allowed: e.g. tracking a table you do not own (42501)."""

    sqlstates = ("42501",)


class NoDataFound(PghistoryError):
    """No row where one was needed, e.g. create_event for a missing row (P0002)."""

    sqlstates = ("P0002",)


class InvalidObjectDefinition(PghistoryError):
    """A definition that cannot work, e.g. a bad condition (42P17)."""

    sqlstates = ("42P17",)


class DependentObjectsStillExist(PghistoryError):
    """Something still depends on what was to be dropped (2BP01)."""

    sqlstates = ("2BP01",)


class ObjectNotInPrerequisiteState(PghistoryError):
    """The tracking cannot do it, e.g. as_of() of a history without deletes (55000)."""

    sqlstates = ("55000",)


_BY_SQLSTATE: dict[str, type[PghistoryError]] = {
    state: cls
    for cls in (
        InvalidParameter,
        InvalidTextRepresentation,
        UndefinedTable,
        UndefinedColumn,
        UndefinedObject,
        UndefinedFunction,
        DuplicateObject,
        InsufficientPrivilege,
        NoDataFound,
        InvalidObjectDefinition,
        DependentObjectsStillExist,
        InvalidDatetimeFormat,
        ObjectNotInPrerequisiteState,
    )
    for state in cls.sqlstates
}

_INSTALL_HINT = "Install or update it with `pghistory install` (pghistory.install(conn))."


def _missing_pghistory(sqlstate: str | None, message: str) -> bool:
    """Whether a server error says that pghistory's own objects are not there."""
    if sqlstate == "3F000":  # invalid_schema_name
        return '"pghistory"' in message
    if sqlstate in ("42P01", "42883", "42704"):  # relation, function or type
        return '"pghistory.' in message or " pghistory." in message
    return False


def from_psycopg(exc: psycopg.Error) -> PghistoryError:
    """The pghistory exception for a psycopg exception (not raised, returned)."""
    diag = exc.diag
    sqlstate = exc.sqlstate or diag.sqlstate
    message = diag.message_primary or str(exc).strip() or type(exc).__name__
    hint = diag.message_hint
    detail = diag.message_detail
    if isinstance(exc, psycopg.OperationalError) and sqlstate is None:
        return ConnectionFailed(str(exc).strip() or message, hint=hint, detail=detail)
    if sqlstate is not None and sqlstate.startswith("08"):
        return ConnectionFailed(message, sqlstate=sqlstate, hint=hint, detail=detail)
    if _missing_pghistory(sqlstate, message):
        return NotInstalled(
            f"pghistory is not installed in this database, or is too old ({message})",
            sqlstate=sqlstate,
            hint=hint or _INSTALL_HINT,
            detail=detail,
        )
    cls = _BY_SQLSTATE.get(sqlstate or "", PghistoryError)
    return cls(message, sqlstate=sqlstate, hint=hint, detail=detail)


@contextmanager
def translate() -> Iterator[None]:
    """Turn psycopg exceptions raised in the block into pghistory exceptions."""
    try:
        yield
    except psycopg.Error as exc:
        raise from_psycopg(exc) from exc
