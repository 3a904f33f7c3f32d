"""WSGI middleware: every request runs in a ``pghist.context`` scope.

    app.wsgi_app = pghist.wsgi.ContextMiddleware(app.wsgi_app)   # Flask
    application = pghist.wsgi.ContextMiddleware(application)      # any WSGI app

Each request gets ``{"method": ..., "url": <path>}`` plus ``"user"`` when the server or
an outer middleware authenticated it (``REMOTE_USER``). ``metadata=callable(environ)``
replaces that default. Connections instrumented with :func:`pghist.sqlalchemy.instrument`
(or :func:`pghist.apply_context`) put it on every transaction the request opens; code in
the request adds keys with a nested ``pghist.context(...)``.

The scope stays active while the response body is produced (a streaming body is a
generator the server iterates after the app returned): the app call, every step of the
iteration and ``close()`` run in one :class:`contextvars.Context` of the request.
Nothing but the standard library is needed.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from . import _context

__all__ = ["ContextMiddleware", "request_metadata"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
MetadataFunc = Callable[[dict[str, Any]], Mapping[str, Any]]


def _native(value: str) -> str:
    # PEP 3333: PATH_INFO and friends are bytes decoded as latin-1; show the UTF-8 path
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def request_metadata(environ: Mapping[str, Any]) -> dict[str, Any]:
    """The default metadata of a request: method, path, and ``REMOTE_USER`` when set."""
    metadata: dict[str, Any] = {
        "method": environ.get("REQUEST_METHOD", ""),
        "url": _native(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")),
    }
    user = environ.get("REMOTE_USER")
    if user:
        metadata["user"] = _native(user)
    return metadata


class ContextMiddleware:
    """Wrap a WSGI app so each request runs in a ``pghist.context`` scope (see module doc)."""

    def __init__(self, app: WSGIApp, metadata: MetadataFunc | None = None) -> None:
        if not callable(app):
            raise TypeError(f"pghist.wsgi.ContextMiddleware wraps a WSGI callable, not {app!r}")
        if metadata is not None and not callable(metadata):
            raise TypeError(
                "pghist.wsgi.ContextMiddleware(metadata=...) takes a callable(environ) -> dict,"
                f" not {metadata!r}"
            )
        self.app = app
        self.metadata = metadata or request_metadata

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        # the scope lives in a copy of the server's Context, set there and dropped with it:
        # nothing to reset, and nothing reaches the server's next request on this thread
        request_context = contextvars.copy_context()
        request_context.run(_context.enter, self.metadata(environ))
        result = request_context.run(self.app, environ, start_response)
        if isinstance(result, list | tuple):  # already produced: nothing runs later
            return result
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            return result  # the server may send the file itself (sendfile): no app code runs
        return _Body(result, request_context)


class _Body:
    """The app's response iterable, iterated and closed inside the request's Context."""

    __slots__ = ("_context", "_iterator", "_result")

    def __init__(self, result: Iterable[bytes], ctx: contextvars.Context) -> None:
        self._result = result
        self._iterator: Iterator[bytes] | None = None
        self._context = ctx

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = self._context.run(iter, self._result)
        return self._context.run(next, self._iterator)

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        if close is not None:
            self._context.run(close)
