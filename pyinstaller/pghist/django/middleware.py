"""``pghist.django.ContextMiddleware`` and the execute wrapper that applies the context.

The middleware opens a ``pghist.context`` scope per request (method, path, and the id of
the authenticated user); nested ``pghist.context(...)`` blocks in views add keys. The scope
reaches the database through a wrapper on every PostgreSQL connection of Django
(``connection.execute_wrappers``, the hook behind ``connection.execute_wrapper``): before a
statement that may write, in the same round trip, it merges the scope's metadata into the
transaction-local settings the extension reads (``pghistory.context_id``,
``pghistory.context_metadata``), starting a new context id per transaction. Setting them
writes nothing: the context row is recorded with the first event, so read-only requests
cost nothing and work on a read-only server, and each transaction (autocommit statement or
``atomic`` block) carries the context whichever connection a pooler gives it.

django-pghistory's own middleware sets the same settings, with one context id per request.
While its context is active our wrapper (kept outermost, so it runs first) adds our keys to
its metadata and lets it set the settings: an app running both gets one context holding both's
metadata (ours winning on a shared key) under django-pghistory's id. Otherwise ours merges into
whatever the transaction already holds (a ``pghistory.set_context`` call, say).
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
    from django.db import connections
    from django.db.backends.signals import connection_created
    from django.http import FileResponse
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("pghist.django needs Django: pip install 'pghistory[django]'") from exc

from .. import _context
from ..core import context

__all__ = ["ContextMiddleware", "instrument"]

# Statements that cannot write an event, or that must not share a query with another
# statement (VACUUM, CREATE INDEX CONCURRENTLY...): nothing is added to them. A SELECT
# that calls a writing function is the one case this misses (django-pghistory skips
# SELECT too); run it in a transaction after a write, or use pghist.context(conn, ...).
_SKIP = re.compile(
    r"\s*(?:select|show|set|reset|begin|start|commit|end|rollback|savepoint|release|"
    r"prepare|deallocate|declare|fetch|move|close|listen|unlisten|notify|explain|vacuum|"
    r"analy[sz]e|checkpoint|discard|load|cluster|reindex|create|alter|drop|comment|"
    r"grant|revoke|lock)\b",
    re.IGNORECASE,
)

# Merges the scope's metadata (JSON text) into the transaction's context; the id already
# set in this transaction (by us or django-pghistory) is kept, else a new one starts.
_MERGE_SQL = (
    "SELECT pg_catalog.set_config('pghistory.context_id', coalesce(nullif("
    "pg_catalog.current_setting('pghistory.context_id', true), ''),"
    " pg_catalog.gen_random_uuid()::text), true),"
    " pg_catalog.set_config('pghistory.context_metadata', (coalesce(nullif("
    "pg_catalog.current_setting('pghistory.context_metadata', true), ''), '{}')::jsonb"
    " || %s::jsonb)::text, true)"
)
_PARAM = "pghist__context_metadata"
_MERGE_POSITIONAL = _MERGE_SQL + "; "
_MERGE_NAMED = _MERGE_SQL.replace("%s", f"%({_PARAM})s") + "; "


def _django_pghistory_context() -> Any:
    """django-pghistory's active context (id, metadata dict) on this thread, if any."""
    runtime = sys.modules.get("pghistory.runtime")
    return getattr(getattr(runtime, "_tracker", None), "value", None)


def _apply_context(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, ctx: dict[str, Any]
) -> Any:
    """The execute wrapper: adds the context to statements that may write."""
    scope = _context.current_scope()
    if scope is None or not isinstance(sql, str) or _SKIP.match(sql):
        return execute(sql, params, many, ctx)
    raw = ctx["cursor"].cursor
    if getattr(raw, "name", None):  # a named (server-side) cursor reads
        return execute(sql, params, many, ctx)
    theirs = _django_pghistory_context()
    if theirs is not None and isinstance(getattr(theirs, "metadata", None), dict):
        # django-pghistory's wrapper (inner to ours) sets the settings for this statement:
        # give it our keys, so that one context holds both's metadata, under its id
        theirs.metadata.update(scope.metadata)
        return execute(sql, params, many, ctx)
    if many:
        # one statement per parameter set: set the context once, beforehand, when they share
        # a transaction (in autocommit mode each is its own, see README)
        if not ctx["connection"].get_autocommit():
            raw.execute(_MERGE_SQL, (scope.json,))
        return execute(sql, params, many, ctx)
    if isinstance(params, dict):
        params = {**params, _PARAM: scope.json}
        sql = _MERGE_NAMED + sql
    else:
        if params is None:  # no interpolation was due: keep literal % signs literal
            sql = sql.replace("%", "%%")
        params = (scope.json, *(params or ()))
        sql = _MERGE_POSITIONAL + sql
    result = execute(sql, params, many, ctx)
    # psycopg 3 keeps every statement's result: move on to the caller's statement
    if hasattr(raw, "pgresult"):  # psycopg 3 (psycopg2 returns the last result only)
        while raw.nextset():
            pass
    return result


def _install(connection: Any) -> None:
    if connection.vendor == "postgresql" and _apply_context not in connection.execute_wrappers:
        # outermost: its statement runs after those of wrappers added later (django-pghistory)
        connection.execute_wrappers.insert(0, _apply_context)


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    _install(connection)


def instrument() -> None:
    """Apply ``pghist.context`` scopes to every PostgreSQL connection of Django.

    The middleware calls it; call it yourself (once, e.g. in ``AppConfig.ready``) to use
    ``with pghist.context(...)`` in management commands, tasks and scripts without it.
    Harmless to call again.
    """
    connection_created.connect(_on_connection_created, dispatch_uid="pghist.django.instrument")
    for alias in connections:
        _install(connections[alias])


def _iter_in_scope(content: Iterable[bytes], scope: context) -> Iterator[bytes]:
    iterator = iter(content)
    while True:
        with scope:
            try:
                chunk = next(iterator)
            except StopIteration:
                return
        yield chunk


async def _aiter_in_scope(content: AsyncIterator[bytes], scope: context) -> AsyncIterator[bytes]:
    iterator = aiter(content)
    while True:
        with scope:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
        yield chunk


def _streamed_in_scope(response: Any, scope: context) -> Any:
    """A streaming body is produced after the view returned: produce it in the scope too."""
    if getattr(response, "streaming", False) and not isinstance(response, FileResponse):
        if response.is_async:
            response.streaming_content = _aiter_in_scope(response.streaming_content, scope)
        else:
            response.streaming_content = _iter_in_scope(response.streaming_content, scope)
    return response


class ContextMiddleware:
    """Runs each request in a ``pghist.context`` scope: method, path, user id.

    Put it after ``AuthenticationMiddleware`` so that the user is known. Override
    :meth:`get_metadata` in a subclass to record something else.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        instrument()

    def get_metadata(self, request: Any) -> dict[str, Any]:
        """``{"method", "url"}`` plus ``"user"`` (its primary key) when authenticated."""
        metadata: dict[str, Any] = {"method": request.method, "url": request.path}
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            metadata["user"] = user.pk
        return metadata

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self.__acall__(request)
        for alias in connections:  # this thread's connections (cheap once installed)
            _install(connections[alias])
        scope = context(**self.get_metadata(request))
        with scope:
            response = self.get_response(request)
        return _streamed_in_scope(response, scope)

    async def __acall__(self, request: Any) -> Any:
        # request.user loads from the database: in a thread, as Django's async views must
        scope = context(**await sync_to_async(self.get_metadata)(request))
        with scope:
            response = await self.get_response(request)
        return _streamed_in_scope(response, scope)
