"""A read-only history browser: ``pghist.web.app(conninfo)``, served by ``pghistory serve``.

An ASGI application (Starlette, Jinja2 templates with autoescape) rendering plain HTML on
the server: it works without JavaScript and loads nothing from elsewhere. It reads as the
connecting role through ``pghistory.events`` (see ``pghist.history``), in read-only
sessions, and has no route that writes. Every request needs the token: ``?token=`` once,
then a cookie.

    from pghist.web import app
    application = app("dbname=shop")          # application.state.token is the secret
    application = app("dbname=shop", token=None)   # no token: behind your own auth
"""

from __future__ import annotations

import datetime
import decimal
import functools
import hmac
import json
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

try:
    import jinja2
    from starlette.applications import Starlette
    from starlette.datastructures import MutableHeaders
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response, StreamingResponse
    from starlette.routing import Route
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"pghist.web needs the web extra ({exc.name} is missing): pip install 'pghistory[web]'"
    ) from exc

import psycopg
from psycopg import pq
from psycopg.types.json import set_json_loads

from . import history
from .history import FilterError, Filters

__all__ = ["app", "serve"]

Connection = psycopg.Connection[Any]
T = TypeVar("T")

TEMPLATES = Path(__file__).resolve().parent / "templates"
PAGE_SIZE = 50


class _Generate:
    """The default of ``app(token=...)``: a new random token."""


GENERATE = _Generate()


# --- connections ------------------------------------------------------------------------


class _Pool:
    """A few idle read-only connections, reused across requests (threads)."""

    def __init__(self, conninfo: str, size: int = 4) -> None:
        self.conninfo = conninfo
        self.size = size
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def _connect(self) -> Connection:
        conn = psycopg.connect(
            self.conninfo, autocommit=True, application_name="pghistory web", connect_timeout=5
        )
        # No write path at all: every transaction of this session is read-only.
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        conn.execute("SET jit = off")  # short queries; compiling them costs more than it saves
        # numbers as recorded (59.90 stays 59.90, not the float 59.9)
        set_json_loads(functools.partial(json.loads, parse_float=decimal.Decimal), conn)
        return conn

    def _put(self, conn: Connection) -> None:
        if conn.closed or conn.info.transaction_status != pq.TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(conn)
                return
        conn.close()

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    @contextmanager
    def connection(self, fresh: bool = False) -> Iterator[Connection]:
        conn = None
        if not fresh:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        self._put(conn)

    def run(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)``; a connection the server dropped (a restart) is retried once."""
        try:
            with self.connection() as conn:
                return work(conn)
        except psycopg.OperationalError:
            self.clear()
        with self.connection(fresh=True) as conn:
            return work(conn)


# --- templates ----------------------------------------------------------------------------


def _value(value: Any) -> str:
    """A column value as text: strings as they are, the rest as JSON."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _when(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return "" if value is None else str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every value is HTML-escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["value"] = _value
    env.filters["when"] = _when
    env.globals["link"] = _link
    return env


def _link(path: str, *items: Any, **params: Any) -> str:
    """``path?query`` from (key, value) items and keywords; None values left out."""
    pairs: list[tuple[str, str]] = []
    for item in items:
        pairs.extend(item)
    pairs.extend((k, str(v)) for k, v in params.items() if v is not None)
    return path + ("?" + urllib.parse.urlencode(pairs) if pairs else "")


# --- the token gate -------------------------------------------------------------------------


class _TokenGate:
    """401 for every request without the token (``?token=`` or the cookie it sets)."""

    def __init__(self, app: ASGIApp, token: str, env: jinja2.Environment) -> None:
        self.app = app
        self.token = token
        self.env = env

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        server = scope.get("server") or ("", 0)
        cookie = f"pghistory_token_{server[1]}"  # one per port: two servers, two cookies
        given = request.query_params.get("token")
        if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):

            async def send_with_cookie(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = MutableHeaders(scope=message)
                    headers.append(
                        "Set-Cookie",
                        f"{cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict",
                    )
                await send(message)

            await self.app(scope, receive, send_with_cookie)
            return
        held = request.cookies.get(cookie)
        if held is not None and hmac.compare_digest(held.encode(), self.token.encode()):
            await self.app(scope, receive, send)
            return
        body = self.env.get_template("error.html").render(
            status=401,
            title="Token required",
            message="This history browser needs the token printed by pghistory serve.",
            hint="Open the URL it printed (…/?token=…).",
        )
        await HTMLResponse(body, status_code=401)(scope, receive, send)


# --- the application ------------------------------------------------------------------------


def app(
    conninfo: str = "", *, token: str | _Generate | None = GENERATE, page_size: int = PAGE_SIZE
) -> Starlette:
    """The history browser as an ASGI application.

    ``token``: the secret every request must carry (default: a new random one, in
    ``app.state.token``); ``None`` turns the check off, for mounting behind your own auth.
    ``page_size``: events per page of the filtered history.
    """
    env = _environment()
    pool = _Pool(conninfo)

    def render(name: str, code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=code)

    def error(status: int, title: str, message: str, hint: str | None = None) -> HTMLResponse:
        return render("error.html", status, status=status, title=title, message=message, hint=hint)

    def guarded(
        handler: Callable[[Request, Connection], Response],
    ) -> Callable[[Request], Response]:
        """Bad input and database trouble become pages, never stack traces."""

        def endpoint(request: Request) -> Response:
            try:
                return pool.run(lambda conn: handler(request, conn))
            except FilterError as exc:
                return error(400, "Bad request", exc.message, exc.hint)
            except psycopg.OperationalError as exc:
                return error(
                    503,
                    "Database unavailable",
                    f"The database cannot be reached: {_first_line(exc)}",
                    "This page works again as soon as the database is back; reload it.",
                )
            except psycopg.DataError as exc:  # e.g. an object id that is not of the key's type
                return error(400, "Bad request", _first_line(exc))
            except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as exc:
                return error(
                    500,
                    "pghistory is not installed",
                    f"This database has no pghistory to read: {_first_line(exc)}",
                    "Connect to the database whose history you want, or install it there:"
                    " CREATE EXTENSION pghistory.",
                )
            except psycopg.errors.InsufficientPrivilege as exc:
                return error(403, "Not allowed", _first_line(exc))
            except psycopg.Error as exc:
                return error(500, "Database error", _first_line(exc))

        return endpoint

    def filters_of(request: Request, conn: Connection) -> Filters:
        q = request.query_params
        return history.parse_filters(
            conn,
            table=q.get("table"),
            obj=q.get("obj"),
            label=q.get("label"),
            since=q.get("since"),
            until=q.get("until"),
            context=q.getlist("context"),
        )

    def overview(request: Request, conn: Connection) -> Response:
        return render("overview.html", tables=history.overview(conn))

    def events(request: Request, conn: Connection) -> Response:
        filters = filters_of(request, conn)
        fmt = request.query_params.get("format")
        if fmt:
            return download(filters, fmt)
        before = request.query_params.get("before")
        result = history.page(conn, filters, before, page_size)
        return render(
            "events.html",
            filters=filters,
            items=filters.query_items(),
            page=result,
            before=before,
            tables=sorted({t.target for t in history.event_tables(conn)}),
        )

    def download(filters: Filters, fmt: str) -> Response:
        if fmt not in history.FORMATS:
            raise FilterError(
                f"format={fmt!r} is not a download format", "Use format=csv or format=jsonl."
            )

        def chunks() -> Iterator[str]:
            # its own connection, held while the response streams
            with pool.connection(fresh=True) as conn:
                yield from _batched(history.export_lines(conn, filters, fmt))

        media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
        name = "pghistory-events." + fmt
        return StreamingResponse(
            chunks(),
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    def object_page(request: Request, conn: Connection) -> Response:
        filters = filters_of(request, conn)
        if filters.table is None or filters.obj is None:
            raise FilterError(
                "an object's timeline needs table= and obj=", "e.g. /object?table=orders&obj=1"
            )
        rows, related = history.object_timeline(conn, filters)
        own = [
            r
            for r in rows
            if r["pgh_obj_model"] is not None
            and str(r["pgh_obj_model"]) == filters.table
            and r["pgh_obj_id"] == filters.obj
        ]
        if not own:
            raise FilterError(
                f"no events of {filters.table} {filters.obj!r} that you may read",
                "Check the object id; its history may have been pruned.",
            )
        slugs = {r["pgh_slug"]: r for r in own}
        a = request.query_params.get("a") or (own[-2]["pgh_slug"] if len(own) > 1 else None)
        b = request.query_params.get("b") or own[-1]["pgh_slug"]
        for name, slug in (("a", a), ("b", b)):
            if slug is not None and slug not in slugs:
                raise FilterError(
                    f"{name}={slug!r} is not a version of {filters.table} {filters.obj}",
                    "Pick versions from the timeline.",
                )
        comparison = history.compare_versions(slugs.get(a) if a else None, slugs[b])
        return render(
            "object.html",
            filters=filters,
            items=filters.query_items(),
            rows=rows,
            related=related,
            own_slugs=set(slugs),
            a=a,
            b=b,
            version_a=slugs.get(a) if a else None,
            version_b=slugs[b],
            comparison=comparison,
        )

    def not_found(request: Request, exc: Exception) -> Response:
        return error(
            404, "Not found", f"no page {request.url.path!r}", "Start from the overview: /"
        )

    def internal(request: Request, exc: Exception) -> Response:
        return error(500, "Internal error", f"{type(exc).__name__}: the request failed")

    routes = [
        Route("/", guarded(overview), methods=["GET"]),
        Route("/events", guarded(events), methods=["GET"]),
        Route("/object", guarded(object_page), methods=["GET"]),
    ]
    application = Starlette(
        routes=routes,
        exception_handlers={404: not_found, 500: internal},
    )
    if isinstance(token, _Generate):
        token = secrets.token_urlsafe(24)
    application.state.token = token
    if token is not None:
        application.add_middleware(_TokenGate, token=token, env=env)
    return application


def _batched(chunks: Iterator[str], size: int = 65536) -> Iterator[str]:
    """Chunks of about ``size`` characters: one hop to the event loop per chunk, not per row."""
    parts: list[str] = []
    length = 0
    for chunk in chunks:
        parts.append(chunk)
        length += len(chunk)
        if length >= size:
            yield "".join(parts)
            parts, length = [], 0
    if parts:
        yield "".join(parts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def serve(
    conninfo: str = "",
    host: str = "127.0.0.1",
    port: int = 8765,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve :func:`app` with uvicorn until interrupted; announces the URL with its token."""
    import uvicorn

    application = app(conninfo)
    shown = f"[{host}]" if ":" in host else host
    announce(f"http://{shown}:{port}/?token={application.state.token}")
    uvicorn.run(application, host=host, port=port, log_level="warning")
