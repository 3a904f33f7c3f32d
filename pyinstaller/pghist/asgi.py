"""ASGI middleware: every HTTP request runs in a ``pghist.context`` scope.

    app.add_middleware(pghist.asgi.ContextMiddleware)            # Starlette, FastAPI
    app = pghist.asgi.ContextMiddleware(app)                     # any ASGI app

Each HTTP request gets ``{"method": ..., "url": <path>}`` plus ``"user"`` when an
authentication middleware that runs before this one put an authenticated user in
``scope["user"]`` (Starlette's ``AuthenticationMiddleware``: add it after this one, so it
wraps it). ``metadata=callable(scope)`` replaces that default. Connections instrumented
with :func:`pghist.sqlalchemy.instrument` put it on every transaction the request opens;
code in the request adds keys with a nested ``pghist.context(...)``.

The scope lasts for the whole app call, which includes sending a streaming body and
running background tasks (child tasks and worker threads copy the context). Websocket and
lifespan scopes are passed through untouched. Pure ASGI: no framework is imported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from . import _context

__all__ = ["ContextMiddleware", "request_metadata"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
MetadataFunc = Callable[[Scope], Mapping[str, Any]]


def _user(user: Any) -> Any:
    """The identity of an authenticated ``scope["user"]`` (Starlette's BaseUser), else None."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    for attribute in ("identity", "display_name"):
        try:
            value = getattr(user, attribute)
        except (AttributeError, NotImplementedError):
            continue
        if value is not None and value != "":
            return value
    return str(user)


def request_metadata(scope: Scope) -> dict[str, Any]:
    """The default metadata of a request: method, path, and the authenticated user if any."""
    metadata: dict[str, Any] = {"method": scope.get("method", ""), "url": scope.get("path", "")}
    user = _user(scope.get("user"))
    if user is not None:
        metadata["user"] = user
    return metadata


class ContextMiddleware:
    """Wrap an ASGI app so each HTTP request runs in a ``pghist.context`` scope."""

    def __init__(self, app: ASGIApp, metadata: MetadataFunc | None = None) -> None:
        if not callable(app):
            raise TypeError(f"pghist.asgi.ContextMiddleware wraps an ASGI app, not {app!r}")
        if metadata is not None and not callable(metadata):
            raise TypeError(
                "pghist.asgi.ContextMiddleware(metadata=...) takes a callable(scope) -> dict,"
                f" not {metadata!r}"
            )
        self.app = app
        self.metadata = metadata or request_metadata

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # websocket, lifespan: not a request to attribute
            await self.app(scope, receive, send)
            return
        token = _context.enter(self.metadata(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            _context.leave(token)
