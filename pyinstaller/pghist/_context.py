"""The ambient context: metadata scopes held in contextvars, applied lazily per transaction.

A scope (``with pghist.context(user=42):``) holds no connection. Integrations (the
SQLAlchemy instrumentation, middlewares, :func:`apply_context` for plain drivers) read
the current :class:`Scope` and put it on a transaction with the two transaction-local
settings the extension honours (API.md section 6): ``pghistory.context_id`` and
``pghistory.context_metadata``. Setting them writes nothing: the server records the
context row only when a tracked write produces an event, so a transaction that only
reads stays read-only (a hot standby accepts it).
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from decimal import Decimal
from typing import Any

from . import errors

__all__ = [
    "APPLY_SQL",
    "SET_LOCAL_SQL",
    "Scope",
    "apply_statement",
    "current_context",
    "current_scope",
    "dumps",
    "json_default",
    "metadata_json",
]


def json_default(value: object) -> object:
    """JSON for the values metadata and events commonly hold (dates, UUIDs, decimals)."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal | datetime.timedelta):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# one encoder, made once (json.dumps with options builds a new one per call)
_ENCODER = json.JSONEncoder(default=json_default, allow_nan=False)


def dumps(value: object) -> str:
    return _ENCODER.encode(value)


def metadata_json(metadata: Mapping[str, Any]) -> str:
    """The metadata as a JSON object; a value JSON cannot hold is a TypeError naming its key.

    Checked when a scope is created, so a bad value never reaches the server.
    """
    try:
        return _ENCODER.encode(metadata if isinstance(metadata, dict) else dict(metadata))
    except (TypeError, ValueError, RecursionError):
        for key, value in metadata.items():
            if not isinstance(key, str | int | float | bool | None):  # what JSON can name
                raise TypeError(
                    f"pghist.context: the metadata key {key!r} is not a string."
                    " Hint: name metadata with strings (keyword arguments are)"
                ) from None
            try:
                _ENCODER.encode(value)
            except (TypeError, ValueError, RecursionError) as exc:
                raise TypeError(
                    f"pghist.context: the value of {key!r} is not JSON serializable"
                    f" ({type(value).__name__}: {exc}). Hint: pass str, int, float, bool, None,"
                    " dates, UUIDs, decimals, or lists and dicts of them; convert anything else"
                    f" yourself, e.g. {key}=str(value)"
                ) from exc
        raise


class Scope:
    """The merged metadata of the innermost scope, and its JSON text (made once, when needed:
    a request that writes nothing never encodes its merged metadata)."""

    __slots__ = ("_json", "metadata")

    def __init__(self, metadata: dict[str, Any], json_text: str | None = None) -> None:
        self.metadata = metadata  # never changed once the scope exists
        self._json = json_text

    @property
    def json(self) -> str:
        if self._json is None:
            self._json = _ENCODER.encode(self.metadata)
        return self._json


_scope: ContextVar[Scope | None] = ContextVar("pghist_context", default=None)


def current_scope() -> Scope | None:
    """The innermost active scope of this thread / asyncio task, or None (cheap)."""
    return _scope.get()


def current_context() -> dict[str, Any]:
    """The metadata of the active ``pghist.context(...)`` scopes, merged; ``{}`` when none."""
    scope = _scope.get()
    return {} if scope is None else dict(scope.metadata)


def enter(metadata: Mapping[str, Any], json_text: str | None = None) -> Any:
    """Open a scope nested in the current one; returns the token for :func:`leave`.

    ``json_text``: :func:`metadata_json` of ``metadata`` when the caller already checked it.
    """
    if json_text is None:
        json_text = metadata_json(metadata)
    outer = _scope.get()
    if outer is None:
        return _scope.set(Scope(dict(metadata), json_text))
    return _scope.set(Scope({**outer.metadata, **metadata}))


def leave(token: Any) -> None:
    _scope.reset(token)


# The statement that puts a context on the current transaction (transaction-local settings):
# the extension's triggers record it, as pghistory.set_context() would, when they write an event.
APPLY_SQL = (
    "SELECT pg_catalog.set_config('pghistory.context_id', {0}, true),"
    " pg_catalog.set_config('pghistory.context_metadata', {1}, true)"
)
# The same with the values as SQL literals: SET is a utility command, which the server runs
# without planning it (a third of the SELECT's cost), but takes no parameters.
SET_LOCAL_SQL = "SET LOCAL pghistory.context_id = {0}; SET LOCAL pghistory.context_metadata = {1}"

_PLACEHOLDERS = {
    "format": ("%s", "%s"),
    "pyformat": ("%s", "%s"),
    "numeric_dollar": ("$1", "$2"),
    "qmark": ("?", "?"),
    "numeric": (":1", ":2"),
}


def apply_statement(paramstyle: str = "format") -> str:
    """:data:`APPLY_SQL` in a DB-API ``paramstyle``; parameters: (context id, metadata JSON)."""
    try:
        return APPLY_SQL.format(*_PLACEHOLDERS[paramstyle])
    except KeyError:
        raise ValueError(f"pghist: unsupported DB-API paramstyle {paramstyle!r}") from None


def check_not_autocommit(connection: object) -> None:
    """Refuse a DB-API connection in autocommit mode outside a transaction.

    Transaction-local settings would vanish with the statement that sets them, and the
    writes that follow would be recorded without their context.
    """
    if not getattr(connection, "autocommit", False):
        return
    info = getattr(connection, "info", None)  # psycopg 3: autocommit, yet in conn.transaction()
    status = getattr(info, "transaction_status", None)
    if status is not None and status != 0:  # 0: pq.TransactionStatus.IDLE
        return
    raise errors.ContextError(
        "pghist: cannot attach the context to a connection in autocommit mode",
        hint="Every statement commits on its own there, so the context would not reach the"
        " writes: run them in a transaction (the default; with SQLAlchemy, not"
        ' isolation_level="AUTOCOMMIT").',
    )
