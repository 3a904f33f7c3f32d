"""pghist.wsgi and pghist.asgi ContextMiddleware (API.md section 12), with real frameworks.

Each request runs in a ``pghist.context`` scope ({"method", "url"} plus "user" when known,
or what ``metadata=`` returns); the scope stays active while a streaming body is produced;
websocket and lifespan scopes pass through untouched. The end-to-end tests write through an
instrumented SQLAlchemy engine on the test server and read the events back.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import flask
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket
from test_sqlalchemy import url as sa_url
from werkzeug.test import Client

import pghist
import pghist.asgi
import pghist.sqlalchemy
import pghist.wsgi


@pytest.fixture
def notes(conn: psycopg.Connection[Any]) -> Iterator[str]:
    """A fresh tracked table for each test."""
    conn.execute("DROP TABLE IF EXISTS note CASCADE")
    conn.execute("DROP TABLE IF EXISTS note_event")
    conn.execute("CREATE TABLE note (id serial PRIMARY KEY, body text NOT NULL)")
    pghist.track(conn, "note")
    yield "note"
    pghist.untrack(conn, "note", drop_events=True)
    conn.execute("DROP TABLE note")


def contexts(conn: psycopg.Connection[Any]) -> list[Any]:
    return [event["pgh_context"] for event in pghist.events(conn, "note")]


# --------------------------------------------------------------------------------------
# WSGI
# --------------------------------------------------------------------------------------


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(pghist.current_context()).encode()]


def test_wsgi_default_metadata() -> None:
    client = Client(pghist.wsgi.ContextMiddleware(echo_app))
    assert json.loads(client.post("/orders/7").get_data()) == {
        "method": "POST",
        "url": "/orders/7",
    }
    # REMOTE_USER (set by the server or an authenticating proxy) is the user
    response = client.get("/a", environ_overrides={"REMOTE_USER": "alice", "SCRIPT_NAME": "/app"})
    assert json.loads(response.get_data()) == {
        "method": "GET",
        "url": "/app/a",
        "user": "alice",
    }
    # a UTF-8 path arrives as latin-1 text (PEP 3333) and is recorded as the client sent it
    assert json.loads(client.get("/caf\u00e9").get_data())["url"] == "/caf\u00e9"
    # nothing stays behind in the caller's context
    assert pghist.current_context() == {}


def test_wsgi_metadata_callable_replaces_default() -> None:
    app = pghist.wsgi.ContextMiddleware(
        echo_app, metadata=lambda environ: {"path": environ["PATH_INFO"], "job": "sync"}
    )
    assert json.loads(Client(app).get("/x").get_data()) == {"path": "/x", "job": "sync"}
    with pytest.raises(TypeError, match="callable"):
        pghist.wsgi.ContextMiddleware(echo_app, metadata={"user": 1})  # type: ignore[arg-type]
    # a value JSON cannot hold fails the request before anything reaches a server
    bad = pghist.wsgi.ContextMiddleware(echo_app, metadata=lambda environ: {"obj": object()})
    with pytest.raises(TypeError, match="'obj'"):
        Client(bad).get("/")


def test_wsgi_streaming_body_is_produced_in_the_scope() -> None:
    seen: list[Any] = []
    closed: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            try:
                for i in range(3):
                    seen.append(pghist.current_context())
                    yield f"{i}\n".encode()
            finally:
                closed.append(pghist.current_context())

        return body()

    wrapped = pghist.wsgi.ContextMiddleware(app)
    # drive it as a server does: call, then iterate, then close, with our own context around
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/stream", "SCRIPT_NAME": ""}
    result = wrapped(environ, lambda status, headers, exc_info=None: None)
    assert seen == [] and pghist.current_context() == {}
    chunks = []
    for chunk in result:
        chunks.append(chunk)
        assert pghist.current_context() == {}  # the server's own context is untouched
    result.close()  # type: ignore[attr-defined]
    assert chunks == [b"0\n", b"1\n", b"2\n"]
    assert seen == [{"method": "GET", "url": "/stream"}] * 3
    assert closed == [{"method": "GET", "url": "/stream"}]


def test_wsgi_streaming_body_keeps_a_scope_it_opens_across_chunks() -> None:
    """A generator body may open a nested scope that spans its yields: each step sees it, as
    the steps run in the request's one Context (the server's own stays untouched)."""
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])

        def body() -> Iterator[bytes]:
            with pghist.context(step="export"):
                for _ in range(2):
                    seen.append(pghist.current_context())
                    yield b"x"
            seen.append(pghist.current_context())
            yield b"y"

        return body()

    result = pghist.wsgi.ContextMiddleware(app)(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/export", "SCRIPT_NAME": ""},
        lambda status, headers, exc_info=None: None,
    )
    for _chunk in result:
        assert pghist.current_context() == {}
    result.close()  # type: ignore[attr-defined]
    request = {"method": "GET", "url": "/export"}
    assert seen == [{**request, "step": "export"}] * 2 + [request]


def test_wsgi_requests_in_threads_are_isolated() -> None:
    barrier = threading.Barrier(4)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        barrier.wait(timeout=10)  # all four requests are inside their scopes at once
        start_response("200 OK", [])
        return [json.dumps(pghist.current_context()).encode()]

    wrapped = pghist.wsgi.ContextMiddleware(app)
    results: dict[int, Any] = {}

    def request(i: int) -> None:
        results[i] = json.loads(Client(wrapped).get(f"/t/{i}").get_data())

    threads = [threading.Thread(target=request, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert results == {i: {"method": "GET", "url": f"/t/{i}"} for i in range(4)}


def test_wsgi_flask_end_to_end(db_dsn: str, conn: psycopg.Connection[Any], notes: str) -> None:
    """Flask + instrumented SQLAlchemy: writes in the view and in a streamed body carry the
    request's context; a read-only request leaves no context row."""
    engine = sa.create_engine(sa_url(db_dsn, "psycopg"))
    pghist.sqlalchemy.instrument(engine)
    app = flask.Flask(__name__)
    app.wsgi_app = pghist.wsgi.ContextMiddleware(app.wsgi_app)  # type: ignore[method-assign]

    def add(body: str) -> None:
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO note (body) VALUES (:b)"), {"b": body})

    @app.post("/notes")
    def post() -> str:
        with pghist.context(reason="api"):
            add("view")
        return "ok"

    @app.get("/notes/stream")
    def stream() -> flask.Response:
        def rows() -> Iterator[str]:
            for i in range(2):
                add(f"streamed {i}")  # after the view returned, while the body is sent
                yield f"{i}\n"

        return flask.Response(rows(), mimetype="text/plain")

    @app.get("/notes")
    def read() -> str:
        with engine.begin() as c:
            return str(c.execute(sa.text("SELECT count(*) FROM note")).scalar())

    client = app.test_client()
    try:
        assert client.post("/notes", environ_overrides={"REMOTE_USER": "ann"}).status_code == 200
        assert client.get("/notes/stream").get_data() == b"0\n1\n"
        (before,) = conn.execute("SELECT count(*) FROM pghistory.context").fetchone()  # type: ignore[misc]
        assert client.get("/notes").get_data() == b"3"
        (after,) = conn.execute("SELECT count(*) FROM pghistory.context").fetchone()  # type: ignore[misc]
    finally:
        engine.dispose()
    assert after == before  # the read-only request wrote nothing
    assert contexts(conn) == [
        {"method": "POST", "url": "/notes", "user": "ann", "reason": "api"},
        {"method": "GET", "url": "/notes/stream"},
        {"method": "GET", "url": "/notes/stream"},
    ]


# --------------------------------------------------------------------------------------
# ASGI (Starlette; FastAPI is Starlette underneath, see test_examples.py)
# --------------------------------------------------------------------------------------


class HeaderUser(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        name = conn.headers.get("x-user")
        return (AuthCredentials(["authenticated"]), SimpleUser(name)) if name else None


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(pghist.current_context())


def starlette_app(*routes: Any, **middleware_options: Any) -> Starlette:
    return Starlette(
        routes=[Route("/echo/{rest:path}", echo, methods=["GET", "POST"]), *routes],
        middleware=[
            # listed first = outermost: the user is known when the context opens
            Middleware(AuthenticationMiddleware, backend=HeaderUser()),
            Middleware(pghist.asgi.ContextMiddleware, **middleware_options),
        ],
    )


def test_asgi_default_metadata_and_user() -> None:
    with TestClient(starlette_app()) as client:
        assert client.post("/echo/a").json() == {"method": "POST", "url": "/echo/a"}
        response = client.get("/echo/b", headers={"x-user": "bob"})
        assert response.json() == {"method": "GET", "url": "/echo/b", "user": "bob"}


def test_asgi_add_middleware_and_metadata_callable() -> None:
    app = Starlette(routes=[Route("/echo", echo)])
    app.add_middleware(
        pghist.asgi.ContextMiddleware,
        metadata=lambda scope: {"path": scope["path"], "client": "test"},
    )
    with TestClient(app) as client:
        assert client.get("/echo").json() == {"path": "/echo", "client": "test"}
    # an unauthenticated scope["user"] is not a user
    plain = starlette_app()
    with TestClient(plain) as client:
        assert "user" not in client.get("/echo/x").json()


def test_asgi_streaming_and_background_tasks_run_in_the_scope() -> None:
    seen: list[Any] = []

    async def agen() -> AsyncIterator[bytes]:
        for i in range(2):
            await asyncio.sleep(0)
            seen.append(("async", pghist.current_context()))
            yield f"{i}\n".encode()

    def gen() -> Iterator[bytes]:  # Starlette iterates it in a worker thread
        for i in range(2):
            seen.append(("sync", pghist.current_context()))
            yield f"{i}\n".encode()

    async def stream(request: Request) -> StreamingResponse:
        body = agen() if request.query_params.get("kind") == "async" else gen()
        task = BackgroundTask(lambda: seen.append(("task", pghist.current_context())))
        return StreamingResponse(body, background=task)

    app = starlette_app(Route("/stream", stream))
    with TestClient(app) as client:
        assert client.get("/stream?kind=async").text == "0\n1\n"
        assert client.get("/stream?kind=sync", headers={"x-user": "cy"}).text == "0\n1\n"
    anon = {"method": "GET", "url": "/stream"}
    cy = {**anon, "user": "cy"}
    assert seen == [
        ("async", anon), ("async", anon), ("task", anon),
        ("sync", cy), ("sync", cy), ("task", cy),
    ]  # fmt: skip


def test_asgi_websocket_and_lifespan_pass_through() -> None:
    events: list[Any] = []

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        message = await websocket.receive_text()
        # no request scope for a websocket: handlers open their own pghist.context
        await websocket.send_json({"echo": message, "context": pghist.current_context()})
        await websocket.close()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append(("startup", pghist.current_context()))
        yield {"ready": True}
        events.append(("shutdown", pghist.current_context()))

    async def state(request: Request) -> JSONResponse:
        return JSONResponse({"ready": request.state.ready, **pghist.current_context()})

    app = Starlette(
        routes=[WebSocketRoute("/ws", ws), Route("/state", state)],
        middleware=[Middleware(pghist.asgi.ContextMiddleware)],
        lifespan=lifespan,
    )
    with TestClient(app) as client:
        assert events == [("startup", {})]
        with client.websocket_connect("/ws") as websocket:
            websocket.send_text("hi")
            assert websocket.receive_json() == {"echo": "hi", "context": {}}
        # the lifespan's state reached the request: the lifespan scope went through untouched
        assert client.get("/state").json() == {
            "ready": True,
            "method": "GET",
            "url": "/state",
        }
    assert events == [("startup", {}), ("shutdown", {})]


def test_asgi_concurrent_requests_are_isolated() -> None:
    async def slow(request: Request) -> JSONResponse:
        before = pghist.current_context()
        await asyncio.sleep(0.05)  # the other requests run meanwhile, on the same loop
        return JSONResponse({"before": before, "after": pghist.current_context()})

    app = pghist.asgi.ContextMiddleware(Starlette(routes=[Route("/s/{i}", slow)]))

    async def run() -> list[Any]:
        import httpx

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            responses = await asyncio.gather(*(client.get(f"/s/{i}") for i in range(5)))
        return [r.json() for r in responses]

    for i, result in enumerate(asyncio.run(run())):
        expected = {"method": "GET", "url": f"/s/{i}"}
        assert result == {"before": expected, "after": expected}


def test_asgi_starlette_end_to_end(db_dsn: str, conn: psycopg.Connection[Any], notes: str) -> None:
    """Starlette + instrumented async SQLAlchemy (asyncpg): writes in the endpoint and in the
    streamed body carry the request's context, including the user."""
    holder: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        holder["engine"] = create_async_engine(sa_url(db_dsn, "asyncpg"))
        pghist.sqlalchemy.instrument(holder["engine"])
        yield
        await holder["engine"].dispose()

    async def add(body: str) -> None:
        async with holder["engine"].begin() as c:
            await c.execute(sa.text("INSERT INTO note (body) VALUES (:b)"), {"b": body})

    async def post(request: Request) -> JSONResponse:
        await add("endpoint")
        return JSONResponse({})

    async def stream(request: Request) -> StreamingResponse:
        async def rows() -> AsyncIterator[str]:
            await add("streamed")
            yield "done"

        return StreamingResponse(rows())

    app = starlette_app(Route("/notes", post, methods=["POST"]), Route("/notes/stream", stream))
    app.router.lifespan_context = lifespan
    with TestClient(app) as client:
        assert client.post("/notes", headers={"x-user": "dee"}).status_code == 200
        assert client.get("/notes/stream").text == "done"
    assert contexts(conn) == [
        {"method": "POST", "url": "/notes", "user": "dee"},
        {"method": "GET", "url": "/notes/stream"},
    ]


# --------------------------------------------------------------------------------------
# SQLAlchemy: what a request that only reads sends (bench/app_context.py measures it)
# --------------------------------------------------------------------------------------


def settings_now(connection: sa.Connection) -> str | None:
    """The transaction's context setting, read past SQLAlchemy's events (what was sent)."""
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    row = dbapi.execute("SELECT current_setting('pghistory.context_id', true)").fetchone()
    return row[0] if row else None


def test_sqlalchemy_reads_send_nothing_writes_carry_it(
    db_dsn: str, conn: psycopg.Connection[Any], notes: str
) -> None:
    conn.execute(
        "CREATE OR REPLACE FUNCTION add_note(body text) RETURNS int LANGUAGE sql"
        " AS $$ INSERT INTO note (body) VALUES (body) RETURNING id $$"
    )
    engine = sa.create_engine(sa_url(db_dsn, "psycopg"))
    pghist.sqlalchemy.instrument(engine)
    note = sa.table("note", sa.column("id"), sa.column("body"))
    try:
        with pghist.context(user="eve"), engine.begin() as c:
            c.execute(sa.select(note.c.id, note.c.body).where(note.c.id == 1)).all()
            c.execute(sa.text("SELECT id FROM note")).all()
            assert settings_now(c) in (None, "")  # plain reads: nothing was sent
            c.execute(sa.insert(note).values(body="written"))
            assert settings_now(c)  # the write came with its context
        # a SELECT calling a function may write: it carries the context
        with pghist.context(user="fay"), engine.begin() as c:
            c.execute(sa.select(sa.func.add_note("by function"))).scalar()
        with pghist.context(user="gus"), engine.begin() as c:
            c.execute(sa.text("SELECT add_note('by text')")).scalar()
    finally:
        engine.dispose()
    assert [(e["pgh_data"]["body"], e["pgh_context"]) for e in pghist.events(conn, "note")] == [
        ("written", {"user": "eve"}),
        ("by function", {"user": "fay"}),
        ("by text", {"user": "gus"}),
    ]
