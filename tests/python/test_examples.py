"""examples/flask_app.py and examples/fastapi_app.py, end to end over real HTTP.

Each example is served by a real server in a thread (Werkzeug's for Flask, uvicorn for
FastAPI) on a fresh database of the test server; httpx sends the requests; the events in
pghistory.events must say who changed what, from which request.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from psycopg.conninfo import conninfo_to_dict

import pghist

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"pghist_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # SQLAlchemy resolves the models' annotations there
    spec.loader.exec_module(module)
    return module


def database_url(dsn: str, driver: str) -> str:
    params = conninfo_to_dict(dsn)
    url = sa.URL.create(
        f"postgresql+{driver}",
        username=str(params["user"]),
        host=str(params["host"]),
        port=int(str(params["port"])),
        database=str(params["dbname"]),
    )
    return url.render_as_string(hide_password=False)


def history(dsn: str) -> list[tuple[str, Any, Any]]:
    with psycopg.connect(dsn) as conn:
        return [
            (e["pgh_label"], e["pgh_data"]["qty"], e["pgh_context"])
            for e in pghist.events(conn, "orders")
        ]


def context_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        (n,) = conn.execute("SELECT count(*) FROM pghistory.context").fetchone()  # type: ignore[misc]
        return int(n)


def exercise(base_url: str, dsn: str, auth: dict[str, str], bob: dict[str, str]) -> None:
    """The same story against either example: alice orders, bob corrects, anyone reads."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        response = client.post("/orders", json={"item": "tea", "qty": 2}, headers=auth)
        assert response.status_code == 201, response.text
        order = response.json()["id"]
        response = client.patch(f"/orders/{order}", json={"qty": 3, "reason": "typo"}, headers=bob)
        assert response.status_code == 200, response.text
        assert response.json() == {"id": order, "qty": 3}
        rows = context_rows(dsn)
        served = client.get(f"/orders/{order}/history").json()
        assert context_rows(dsn) == rows  # reading wrote no context
    patch = {"method": "PATCH", "url": f"/orders/{order}", "user": "bob", "reason": "typo"}
    expected = [
        ("insert", 2, {"method": "POST", "url": "/orders", "user": "alice"}),
        ("update", 3, patch),
    ]
    assert history(dsn) == expected
    assert [(e["pgh_label"], e["pgh_data"]["qty"], e["pgh_context"]) for e in served] == expected


@pytest.fixture
def shop(make_database: Any) -> str:
    return str(make_database("shop", extension=True))


def test_flask_example(shop: str) -> None:
    from werkzeug.serving import make_server

    app = load("flask_app").create_app(database_url(shop, "psycopg"))

    def authenticating_proxy(environ: dict[str, Any], start_response: Any) -> Any:
        # what a server or proxy in front of the app does: the authenticated user in REMOTE_USER
        user = environ.pop("HTTP_X_AUTHENTICATED_USER", None)
        if user:
            environ["REMOTE_USER"] = user
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, authenticating_proxy, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        exercise(
            f"http://127.0.0.1:{server.server_port}",
            shop,
            {"X-Authenticated-User": "alice"},
            {"X-Authenticated-User": "bob"},
        )
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def uvicorn_server() -> Iterator[Any]:
    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def serve(app: Any) -> str:
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive()


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
def test_fastapi_example(shop: str, uvicorn_server: Any, driver: str) -> None:
    app = load("fastapi_app").create_app(database_url(shop, driver))
    base_url = uvicorn_server(app)
    exercise(
        base_url,
        shop,
        {"Authorization": "Bearer alice"},
        {"Authorization": "Bearer bob"},
    )
