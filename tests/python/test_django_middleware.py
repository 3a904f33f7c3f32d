"""pghist.django.ContextMiddleware (API.md sections 12 and 13) in a real Django project.

Django is configured here (settings.configure: the test server's database, auth, sessions,
the models of tests/python/pghist_testapp, django-pghistory installed beside us); requests go
through Django's test client, writes through Django's ORM and cursors on the psycopg 3
backend, and the events are read back with pghist.events.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import django
import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.test import AsyncClient, Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import path
from psycopg.conninfo import conninfo_to_dict

import pghist

BASE_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
OURS = "pghist.django.ContextMiddleware"
THEIRS = "pghistory.middleware.HistoryMiddleware"  # django-pghistory's


# --------------------------------------------------------------------------------------
# views (ROOT_URLCONF is this module)
# --------------------------------------------------------------------------------------


def items(request: Any) -> HttpResponse:
    from pghist_testapp.models import Item

    if request.method == "POST":
        item = Item.objects.create(name=request.POST.get("name", "x"))
        return HttpResponse(str(item.pk))
    return HttpResponse(str(len(list(Item.objects.values_list("name", flat=True)))))


def batch(request: Any) -> HttpResponse:
    from pghist_testapp.models import Item

    with transaction.atomic():
        Item.objects.create(name="a1")
        Item.objects.create(name="a2")
    with pghist.context(reason="batch"), transaction.atomic():
        Item.objects.create(name="b1")
        Item.objects.filter(name="b1").update(qty=5)
    Item.objects.filter(name="a1").update(qty=1)  # autocommit: a transaction of its own
    return HttpResponse("ok")


def raw(request: Any) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO pghist_testapp_item (name, qty) VALUES ('100%', 0)")
        cursor.execute(
            "INSERT INTO pghist_testapp_item (name, qty) VALUES (%(name)s, %(qty)s)",
            {"name": "named", "qty": 1},
        )
        with transaction.atomic():
            cursor.executemany(
                "INSERT INTO pghist_testapp_item (name, qty) VALUES (%s, %s)",
                [("many1", 2), ("many2", 3)],
            )
        cursor.execute("UPDATE pghist_testapp_item SET qty = qty + 1 RETURNING name")
        names = sorted(row[0] for row in cursor.fetchall())
    return HttpResponse(json.dumps(names))


def stream(request: Any) -> StreamingHttpResponse:
    from pghist_testapp.models import Item

    def body() -> Iterator[str]:
        yield "start\n"
        Item.objects.create(name="streamed")  # after the view returned
        yield "end\n"

    return StreamingHttpResponse(body())


def untracked(request: Any) -> HttpResponse:
    from pghist_testapp.models import Untracked

    Untracked.objects.create(name="u")
    return HttpResponse("ok")


def tagged(request: Any) -> HttpResponse:
    import pghistory  # django-pghistory's own context, as a view of a project using it has
    from pghist_testapp.models import Item

    with pghistory.context(source="django-pghistory"), pghist.context(reason="both"):
        Item.objects.create(name="tagged")
    return HttpResponse("ok")


async def async_items(request: Any) -> HttpResponse:
    from pghist_testapp.models import Item

    item = await Item.objects.acreate(name="async")
    return HttpResponse(str(item.pk))


urlpatterns = [
    path("items/", items),
    path("items/batch/", batch),
    path("items/raw/", raw),
    path("items/stream/", stream),
    path("items/async/", async_items),
    path("items/tagged/", tagged),
    path("untracked/", untracked),
]


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_db(db_dsn: str) -> Iterator[str]:
    """Django configured on this module's database, its tables made, Item tracked."""
    assert not settings.configured, "another test module configured Django in this process"
    params = conninfo_to_dict(db_dsn)
    settings.configure(
        SECRET_KEY="pghist-tests",
        ALLOWED_HOSTS=["testserver"],
        USE_TZ=True,
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": params["dbname"],
                "USER": params["user"],
                "HOST": params["host"],
                "PORT": params["port"],
            }
        },
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "pgtrigger",
            "pghistory",  # django-pghistory, installed as a project moving to us would have it
            "pghist_testapp",
        ],
        MIDDLEWARE=[*BASE_MIDDLEWARE, OURS],
        ROOT_URLCONF=__name__,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)
    with psycopg.connect(db_dsn, autocommit=True) as c:
        pghist.track(c, "pghist_testapp_item")
    try:
        yield db_dsn
    finally:
        from django.db import connections

        connections.close_all()


@pytest.fixture
def db(django_db: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(django_db, autocommit=True) as c:
        c.execute("TRUNCATE pghist_testapp_item, pghist_testapp_item_event, pghistory.context")
        yield c


@pytest.fixture
def user(django_db: str) -> Any:
    from django.contrib.auth.models import User

    found, _ = User.objects.get_or_create(username="alice")
    return found


def events(c: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return pghist.events(c, "pghist_testapp_item")


def contexts(c: psycopg.Connection[Any]) -> list[Any]:
    return [e["pgh_context"] for e in events(c)]


def context_rows(c: psycopg.Connection[Any]) -> int:
    (n,) = c.execute("SELECT count(*) FROM pghistory.context").fetchone()  # type: ignore[misc]
    return int(n)


# --------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------


def test_request_context_with_user(db: psycopg.Connection[Any], user: Any) -> None:
    client = Client()
    assert client.post("/items/", {"name": "anon"}).status_code == 200
    client.force_login(user)
    assert client.post("/items/", {"name": "mine"}).status_code == 200
    assert contexts(db) == [
        {"method": "POST", "url": "/items/"},
        {"method": "POST", "url": "/items/", "user": user.pk},
    ]


def test_every_transaction_of_the_request_carries_it(
    db: psycopg.Connection[Any], user: Any
) -> None:
    client = Client()
    client.force_login(user)
    assert client.post("/items/batch/").status_code == 200
    base = {"method": "POST", "url": "/items/batch/", "user": user.pk}
    found = [(e["pgh_label"], e["pgh_data"]["name"], e["pgh_context"]) for e in events(db)]
    assert found == [
        ("insert", "a1", base),
        ("insert", "a2", base),
        ("insert", "b1", {**base, "reason": "batch"}),
        ("update", "b1", {**base, "reason": "batch"}),
        ("update", "a1", base),
    ]
    # one context per transaction: the two atomic blocks and the autocommit update
    ids = [e["pgh_context_id"] for e in events(db)]
    assert ids[0] == ids[1] and ids[2] == ids[3]
    assert len({ids[0], ids[2], ids[4]}) == 3
    assert context_rows(db) == 3


def test_raw_cursors_named_params_literal_percent_and_executemany(
    db: psycopg.Connection[Any],
) -> None:
    response = Client().post("/items/raw/")
    # the caller's own statement result comes back, not the context statement's
    assert json.loads(response.content) == ["100%", "many1", "many2", "named"]
    expected = {"method": "POST", "url": "/items/raw/"}
    assert sorted(e["pgh_data"]["name"] for e in events(db) if e["pgh_label"] == "insert") == [
        "100%", "many1", "many2", "named",
    ]  # fmt: skip
    assert contexts(db) == [expected] * 8


def test_streaming_body_writes_in_the_scope(db: psycopg.Connection[Any]) -> None:
    response = Client().get("/items/stream/")
    assert b"".join(response.streaming_content) == b"start\nend\n"
    response.close()
    assert contexts(db) == [{"method": "GET", "url": "/items/stream/"}]


def test_read_only_and_untracked_requests_write_nothing(
    db: psycopg.Connection[Any],
) -> None:
    client = Client()
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/items/").content == b"0"
    assert queries.captured_queries  # the view did query
    assert not any("pghistory.context" in q["sql"] for q in queries.captured_queries)
    assert client.post("/untracked/").status_code == 200  # a write, but no event: no row
    assert context_rows(db) == 0
    with CaptureQueriesContext(connection) as queries:
        client.post("/items/", {"name": "w"})
    assert any("pghistory.context_metadata" in q["sql"] for q in queries.captured_queries)
    assert context_rows(db) == 1


def test_no_scope_outside_requests(db: psycopg.Connection[Any]) -> None:
    from pghist_testapp.models import Item

    Client().get("/items/")  # the middleware has instrumented this thread's connection
    Item.objects.create(name="script")
    with pghist.context(job="import"):  # the same recipe serves management commands
        Item.objects.create(name="job")
    assert contexts(db) == [None, {"job": "import"}]


def test_async_view(db: psycopg.Connection[Any], user: Any) -> None:
    import asyncio

    async def run() -> int:
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.post("/items/async/")
        status: int = response.status_code
        return status

    assert asyncio.run(run()) == 200
    assert contexts(db) == [{"method": "POST", "url": "/items/async/", "user": user.pk}]


@pytest.mark.parametrize("order", ["theirs-outer", "ours-outer"])
def test_beside_django_pghistory_middleware(
    db: psycopg.Connection[Any], user: Any, order: str
) -> None:
    """Both middlewares set the same settings: each transaction gets ONE context holding
    both's metadata, django-pghistory's id (one per request), whichever order they run in."""
    middleware = [OURS, THEIRS] if order == "ours-outer" else [THEIRS, OURS]
    with override_settings(MIDDLEWARE=[*BASE_MIDDLEWARE, *middleware]):
        client = Client()
        client.force_login(user)
        assert client.post("/items/", {"name": "first"}).status_code == 200
        assert client.post("/items/batch/").status_code == 200
        anonymous = Client()
        assert anonymous.post("/items/", {"name": "anon"}).status_code == 200
        assert client.post("/items/tagged/").status_code == 200
    found = events(db)
    first, batch_events, anon, tagged_event = found[0], found[1:6], found[6], found[7]
    assert first["pgh_context"] == {"method": "POST", "url": "/items/", "user": user.pk}
    for event in batch_events:
        assert {k: event["pgh_context"][k] for k in ("method", "url", "user")} == {
            "method": "POST",
            "url": "/items/batch/",
            "user": user.pk,
        }
    # django-pghistory keeps one id for the whole request; ours follows it
    assert len({e["pgh_context_id"] for e in batch_events}) == 1
    assert first["pgh_context_id"] != batch_events[0]["pgh_context_id"]
    # theirs records an anonymous user as null; the metadata of both is there
    assert anon["pgh_context"] == {"method": "POST", "url": "/items/", "user": None}
    assert all(isinstance(e["pgh_context_id"], uuid.UUID) for e in found)
    # keys added in a view through either package's context are all there
    assert tagged_event["pgh_context"] == {
        "method": "POST",
        "url": "/items/tagged/",
        "user": user.pk,
        "source": "django-pghistory",
        "reason": "both",
    }


def test_django_pghistory_context_in_a_view_without_its_middleware(
    db: psycopg.Connection[Any],
) -> None:
    assert Client().post("/items/tagged/").status_code == 200
    assert contexts(db) == [
        {
            "method": "POST",
            "url": "/items/tagged/",
            "source": "django-pghistory",
            "reason": "both",
        }
    ]
