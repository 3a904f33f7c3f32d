"""The history browser (pghist.web) through Starlette's test client, `pghistory serve` through a
real uvicorn, and `pghistory export`: filters, keyset pages, escaping, the token, downloads equal to
pghistory.events, bad input (400), a database that goes away (503) and comes back."""

from __future__ import annotations

import csv
import datetime
import html
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import markupsafe
import psycopg
import pytest

pytest.importorskip("starlette", reason="pip install './pyinstaller[web]'")
from starlette.testclient import TestClient

from pghist import history, web
from tests import pgserver

ROOT = Path(__file__).resolve().parents[2]
XSS = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def shop(db_dsn: str) -> str:
    """Customers, orders and lines with history, contexts, and a value holding <script>."""
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute(
            """
            CREATE TABLE customer (id int PRIMARY KEY, name text);
            CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customer,
                                 status text, total numeric);
            CREATE TABLE order_line (id int PRIMARY KEY, order_id int REFERENCES orders, qty int);
            CREATE TABLE link (a int, b int);
            SELECT pghistory.track('customer');
            SELECT pghistory.track('orders', pghistory.insert_event(), pghistory.update_event(),
                                   pghistory.delete_event());
            SELECT pghistory.track('order_line');
            SELECT pghistory.track('link', pghistory.insert_event(), obj_field => NULL,
                                   context_mode => 'json');
            """
        )
        with c.transaction():
            c.execute(
                "SELECT pghistory.set_context(%s)", (json.dumps({"user": "ann", "url": "/new"}),)
            )
            c.execute("INSERT INTO customer VALUES (1, 'ann'), (2, %s)", (XSS,))
            c.execute(
                "INSERT INTO orders SELECT g, 1 + g % 2, 'new', g FROM generate_series(1, 60) g"
            )
            c.execute(
                "INSERT INTO order_line SELECT g, 1 + g % 59, 1 FROM generate_series(1, 90) g"
            )
        with c.transaction():
            c.execute("SELECT pghistory.set_context(%s)", (json.dumps({"user": XSS}),))
            c.execute("UPDATE orders SET status = 'paid' WHERE id <= 30")
            c.execute("INSERT INTO link VALUES (1, 2)")
        c.execute("UPDATE order_line SET qty = 2 WHERE order_id = 5")
        c.execute("UPDATE orders SET status = %s WHERE id = 5", (XSS,))
        c.execute("DELETE FROM orders WHERE id = 60")
    return db_dsn


@pytest.fixture(scope="module")
def application(shop: str) -> Any:
    return web.app(shop, token="secret-token", page_size=25)


@pytest.fixture
def client(application: Any) -> Iterator[TestClient]:
    with TestClient(application) as c:
        c.get("/", params={"token": "secret-token"})  # sets the cookie
        yield c


def slugs(text: str) -> list[str]:
    return re.findall(r'<article class="event[^"]*" id="([^"]+)"', text)


def events(dsn: str, where: str = "true", params: Any = ()) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as c, c.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            f"SELECT * FROM pghistory.events WHERE {where}"
            " ORDER BY pgh_created_at, pgh_model, pgh_id",
            params,
        )
        return cur.fetchall()


# --- the token ----------------------------------------------------------------------------


def test_every_page_needs_the_token(application: Any) -> None:
    with TestClient(application) as c:
        for path in ("/", "/events", "/events?format=csv", "/object?table=orders&obj=1", "/nope"):
            response = c.get(path)
            assert response.status_code == 401, path
            assert "ann" not in response.text
        assert c.get("/", params={"token": "wrong"}).status_code == 401
        first = c.get("/events", params={"token": "secret-token"})
        assert first.status_code == 200
        assert "HttpOnly" in first.headers["set-cookie"]
        # then the cookie carries it
        assert c.get("/events?table=orders").status_code == 200


def test_default_token_is_random(shop: str) -> None:
    a, b = web.app(shop), web.app(shop)
    assert a.state.token != b.state.token and len(a.state.token) >= 32
    with TestClient(a) as c:
        assert c.get("/").status_code == 401
        assert c.get("/", params={"token": a.state.token}).status_code == 200


def test_no_write_path(client: TestClient, shop: str) -> None:
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)("/events").status_code == 405
    # the sessions it opens are read-only
    pool = web._Pool(shop)
    with pool.connection() as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("UPDATE customer SET name = 'x'")


# --- pages --------------------------------------------------------------------------------


def test_overview(client: TestClient, shop: str) -> None:
    text = client.get("/").text
    for table, event_table in (
        ("customer", "customer_event"),
        ("orders", "orders_event"),
        ("order_line", "order_line_event"),
    ):
        (count,) = events_count(shop, event_table)
        row = re.search(rf'href="/events\?table={table}">{table}</a>.*?</tr>', text, re.S)
        assert row, table
        assert f'<td class="num">{count:,}</td>' in row.group(0)
        assert "<svg" in row.group(0) and "<rect" in row.group(0)
    assert re.search(r"<td class=\"num\">60</td>", text)  # 60 order objects


def events_count(dsn: str, event_table: str) -> tuple[int]:
    with psycopg.connect(dsn) as c:
        row = c.execute(f"SELECT count(*) FROM {event_table}").fetchone()
        assert row is not None
        return (row[0],)


def walk(client: TestClient, url: str) -> list[str]:
    """Every event slug of a filtered view, following the 'Older events' links."""
    seen: list[str] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        seen.extend(slugs(response.text))
        match = re.search(r'<a class="older" rel="next" href="([^"]+)"', response.text)
        url = html.unescape(match.group(1)) if match else ""
    return seen


@pytest.mark.parametrize(
    ("query", "where", "params"),
    [
        ("", "true", ()),
        ("table=orders", "pgh_obj_model = 'orders'::regclass", ()),
        ("table=orders&obj=5", "pgh_obj_model = 'orders'::regclass AND pgh_obj_id = '5'", ()),
        (
            "table=orders&label=update",
            "pgh_obj_model = 'orders'::regclass AND pgh_label = 'update'",
            (),
        ),
        ("label=insert", "pgh_label = 'insert'", ()),
        ("context=user:ann", "pgh_context->>'user' = 'ann'", ()),
        (
            "context=user:ann&context=url:/new",
            'pgh_context @> \'{"user": "ann", "url": "/new"}\'',
            (),
        ),
        (
            "context=user:" + XSS.replace("<", "%3C").replace(">", "%3E").replace("'", "%27"),
            "pgh_context->>'user' = %s",
            (XSS,),
        ),
        ("table=link", "pgh_obj_model = 'link'::regclass", ()),
    ],
)
def test_filtered_history_pages_through_everything(
    client: TestClient, shop: str, query: str, where: str, params: Any
) -> None:
    shown = walk(client, "/events?" + query)
    expected = events(shop, where, params)
    assert len(shown) == len(set(shown)), "an event shown twice"
    assert sorted(shown) == sorted(e["pgh_slug"] for e in expected)
    assert expected, "the filter selects something"
    # newest first: within an event table, pgh_id descends
    for model in {s.split(":")[0] for s in shown}:
        ids = [int(s.split(":")[1]) for s in shown if s.split(":")[0] == model]
        assert ids == sorted(ids, reverse=True)


def test_time_range(client: TestClient, shop: str) -> None:
    all_events = events(shop)
    times = sorted({e["pgh_created_at"] for e in all_events})
    since, until = times[1], times[-1]
    shown = walk(
        client,
        "/events?"
        + urllib.parse.urlencode({"since": since.isoformat(), "until": until.isoformat()}),
    )
    expected = [e["pgh_slug"] for e in all_events if since <= e["pgh_created_at"] < until]
    assert sorted(shown) == sorted(expected) and expected


def test_pages_are_keyset(client: TestClient) -> None:
    first = client.get("/events?table=orders").text
    assert len(slugs(first)) == 25
    link = re.search(r'rel="next" href="([^"]+)"', first)
    assert link is not None
    older = html.unescape(link.group(1))
    assert "before=" in older and "offset" not in older.lower()
    second = client.get(older).text
    assert not set(slugs(first)) & set(slugs(second))


def test_diffs_and_context_links(client: TestClient) -> None:
    text = client.get("/events?table=orders&obj=5").text
    # the update of status is shown old -> new, escaped
    assert '<td class="old">paid</td><td class="arrow">→</td><td class="new">' in text
    assert str(markupsafe.escape(XSS)) in text
    # context as links that filter on it
    assert 'href="/events?table=orders&amp;obj=5&amp;context=user%3Aann"' in text
    # object ids link to the object's timeline
    assert 'href="/object?table=orders&amp;obj=5"' in text


def test_values_are_escaped(client: TestClient) -> None:
    for url in (
        "/",
        "/events",
        "/events?table=customer",
        "/object?table=orders&obj=5",
        "/object?table=customer&obj=2",
        "/events?context=user:" + XSS,
    ):
        text = client.get(url).text
        assert "<script>" not in text, url
    assert "&lt;script&gt;" in client.get("/events?table=customer").text


def test_object_timeline_merges_related_events(client: TestClient, shop: str) -> None:
    text = client.get("/object?table=orders&obj=5").text
    with psycopg.connect(shop) as c:
        related = [
            r[0]
            for r in c.execute(
                "SELECT pgh_slug FROM pghistory.related_events('orders', '5')"
            ).fetchall()
        ]
    assert slugs(text) == related  # oldest first, with its lines' events
    assert any("order_line_event:" in s for s in related)
    assert 'class="event related"' in text
    # compare: the two newest versions by default, any two on request
    assert 'id="compare"' in text and 'class="differs"' in text
    own = [s for s in related if ".orders_event:" in s]
    chosen = client.get("/object", params={"table": "orders", "obj": "5", "a": own[0], "b": own[1]})
    assert chosen.status_code == 200
    status = re.search(r"<td class=\"mono\">status</td>(.*?)</tr>", chosen.text)
    assert status is not None
    row = status.group(1)
    assert "new" in row and "paid" in row


# --- exports --------------------------------------------------------------------------------


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


@pytest.mark.parametrize(
    "query", ["", "table=orders&label=update", "context=user:ann", "table=link"]
)
def test_downloads_equal_pghistory_events(client: TestClient, shop: str, query: str) -> None:
    where = {
        "": "true",
        "table=orders&label=update": "pgh_obj_model = 'orders'::regclass AND pgh_label = 'update'",
        "context=user:ann": "pgh_context->>'user' = 'ann'",
        "table=link": "pgh_obj_model = 'link'::regclass",
    }[query]
    expected = events(shop, where)
    response = client.get(f"/events?{query}&format=csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["pgh_slug"] for r in rows] == [e["pgh_slug"] for e in expected]
    for row, event in zip(rows, expected, strict=True):
        for column in history.EXPORT_COLUMNS:
            if column in ("pgh_data", "pgh_diff", "pgh_context"):
                assert (json.loads(row[column]) if row[column] else None) == event[column]
            elif column == "pgh_created_at":  # ISO 8601, as JSON writes timestamps
                assert datetime.datetime.fromisoformat(row[column]) == event[column]
            else:
                assert row[column] == as_text(event[column]), column
    response = client.get(f"/events?{query}&format=jsonl")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) == len(expected)
    for line, event in zip(lines, expected, strict=True):
        assert list(line) == list(history.EXPORT_COLUMNS)
        assert line["pgh_data"] == event["pgh_data"] and line["pgh_diff"] == event["pgh_diff"]
        assert line["pgh_context"] == event["pgh_context"]
        assert line["pgh_model"] == str(event["pgh_model"]) and line["pgh_id"] == event["pgh_id"]
        assert datetime.datetime.fromisoformat(line["pgh_created_at"]) == event["pgh_created_at"]
        assert line["pgh_context_id"] == (
            str(event["pgh_context_id"]) if event["pgh_context_id"] else None
        )
        assert line["pgh_obj_id"] == event["pgh_obj_id"] and line["pgh_label"] == event["pgh_label"]


def test_export_command(shop: str, tmp_path: Path) -> None:
    out = tmp_path / "orders.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pghist",
            "export",
            "orders",
            "--dsn",
            shop,
            "--format",
            "jsonl",
            "--label",
            "update",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = events(shop, "pgh_obj_model = 'orders'::regclass AND pgh_label = 'update'")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["pgh_slug"] for x in lines] == [e["pgh_slug"] for e in expected]
    assert f"exported {len(expected):,} events" in result.stderr
    # to stdout as CSV, with a context filter
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pghist",
            "export",
            "--dsn",
            shop,
            "--format",
            "csv",
            "--context",
            "user:ann",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["pgh_slug"] for r in rows] == [
        e["pgh_slug"] for e in events(shop, "pgh_context->>'user' = 'ann'")
    ]
    # bad input: one line naming the value, exit 1
    for args, needle in (
        (["nope"], "unknown table 'nope'"),
        (["orders", "--since", "yesterday"], "since='yesterday' is not a timestamp"),
        (["--context", "user"], "context='user' is not key:value"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "pghist", "export", *args, "--dsn", shop, "--format", "csv"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert needle in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


# --- bad input and a database that goes away ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("/events?table=nope", "unknown table &#39;nope&#39;"),
        ("/events?table=pg_class", "unknown table &#39;pg_class&#39;"),
        ("/events?table=orders;drop table orders", "unknown table"),
        ("/events?since=tomorrow", "since=&#39;tomorrow&#39; is not a timestamp"),
        ("/events?until=2026-13-01", "until=&#39;2026-13-01&#39; is not a timestamp"),
        ("/events?since=2026-02-01&until=2026-01-01", "is not before"),
        ("/events?context=user", "context=&#39;user&#39; is not key:value"),
        ("/events?obj=5", "obj=&#39;5&#39; needs table="),
        ("/events?before=1;2", "is not a page position"),
        ("/events?format=xml", "format=&#39;xml&#39; is not a download format"),
        ("/object?table=orders", "needs table= and obj="),
        ("/object?table=orders&obj=ten", "invalid input syntax for type integer"),
        ("/object?table=orders&obj=999", "no events of orders &#39;999&#39;"),
        ("/object?table=orders&obj=5&a=customer_event:1", "is not a version of orders 5"),
    ],
)
def test_bad_input_is_a_400_page(client: TestClient, url: str, needle: str) -> None:
    response = client.get(url)
    assert response.status_code == 400, response.text
    assert needle in response.text
    assert "Traceback" not in response.text and 'id="error"' in response.text


def test_database_without_pghistory(make_database: Callable[..., str]) -> None:
    dsn = make_database()
    with TestClient(web.app(dsn, token=None)) as client:
        response = client.get("/")
        assert response.status_code == 500
        assert "pghistory is not installed" in response.text and "CREATE EXTENSION" in response.text
        assert "Traceback" not in response.text


def test_unknown_page_is_404(client: TestClient) -> None:
    response = client.get("/admin")
    assert response.status_code == 404 and 'id="error"' in response.text


def test_reads_as_the_connecting_role(shop: str) -> None:
    with psycopg.connect(shop, autocommit=True) as c:
        c.execute("DROP ROLE IF EXISTS web_reader")
        c.execute("CREATE ROLE web_reader LOGIN")
        c.execute("GRANT SELECT ON orders_event TO web_reader")
    try:
        dsn = psycopg.conninfo.make_conninfo(shop, user="web_reader")
        with TestClient(web.app(dsn, token=None)) as c:
            text = c.get("/").text
            assert "orders_event" in text and "order_line_event" not in text
            assert "customer_event" not in text
            assert c.get("/events?table=customer").status_code == 400
            shown = walk(c, "/events")
            assert shown and all(".orders_event:" in s for s in shown)
            timeline = c.get("/object?table=orders&obj=5").text
            assert "order_line_event" not in timeline
    finally:
        with psycopg.connect(shop, autocommit=True) as c:
            c.execute("REVOKE ALL ON orders_event FROM web_reader")
            c.execute("DROP ROLE web_reader")


def test_database_down_is_a_503_and_recovers(pg_server: Any) -> None:
    server = pgserver.start(pg_server.version)
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as c:
            c.execute("CREATE EXTENSION pghistory")
            c.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            c.execute("SELECT pghistory.track('t')")
            c.execute("INSERT INTO t VALUES (1, 'one')")
        with TestClient(web.app(server.dsn(), token=None)) as client:
            assert client.get("/events?table=t").status_code == 200
            assert server._pg is not None
            server._pg.terminate(signal.SIGTERM)  # a clean shutdown: the database goes away
            for url in ("/", "/events?table=t", "/object?table=t&obj=1"):
                response = client.get(url)
                assert response.status_code == 503, response.text
                assert "Database unavailable" in response.text and "Traceback" not in response.text
            server._pg.start()  # it comes back, on the same port
            response = client.get("/events?table=t")
            assert response.status_code == 200 and "t_event:1" in response.text
    finally:
        server.stop()


# --- packaging and serving ------------------------------------------------------------------


def test_import_pghist_does_not_import_the_web_framework() -> None:
    code = (
        "import sys, pghist, pghist.history\n"
        "assert not {'starlette', 'jinja2', 'uvicorn'} & set(sys.modules), sys.modules.keys()\n"
        "sys.modules['starlette'] = None\n"
        "try:\n    import pghist.web\nexcept ImportError as e:\n    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'pghistory[web]'" in result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_prints_its_url_and_guards_it(shop: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pghist", "serve", "--dsn", shop, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/\?token=[\w-]{{32,}}", url), url
        for _ in range(100):
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200
                    assert "orders" in response.read().decode()
                break
            except urllib.error.URLError as exc:
                if isinstance(exc, urllib.error.HTTPError):
                    raise
                time.sleep(0.1)
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/events", timeout=5)
        assert denied.value.code == 401
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


def test_web_benchmark_quick(pg_server: Any) -> None:
    if pg_server.version != 15:
        pytest.skip("the benchmark scripts are exercised once, on PostgreSQL 15")
    result = subprocess.run(
        [sys.executable, "-m", "bench.web", "--quick", "--pg", "15"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert "| overview page (ms) |" in result.stdout
    assert "| export, events per second |" in result.stdout
