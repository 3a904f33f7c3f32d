"""Every example of API.md section 8, against a real server.

Each test makes its own tables in the module's database (db_dsn, pghistory installed)
and checks the history the server recorded.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

import pghist
from pghist import errors


@pytest.fixture
def schema(conn: psycopg.Connection[Any], request: pytest.FixtureRequest) -> Iterator[str]:
    """A schema of its own for each test, dropped (with its event tables) afterwards."""
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    for row in pghist.status(conn):
        if str(row["target"]).startswith(name + "."):
            pghist.untrack(conn, str(row["target"]), drop_events=True)
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def run(conn: psycopg.Connection[Any], schema: str, statement: str) -> None:
    """Run SQL with the test's schema first on the search_path (for this statement only)."""
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL search_path = {}, public").format(sql.Identifier(schema)))
        conn.execute(statement.encode())


def labels(rows: list[dict[str, Any]]) -> list[str]:
    return [row["pgh_label"] for row in rows]


def test_install_is_harmless_when_installed(conn: psycopg.Connection[Any]) -> None:
    result = pghist.install(conn)
    assert result.action == "unchanged"
    assert result.version == pghist.version(conn)
    assert "already installed" in result.message


def test_version_matches_the_shipped_files(conn: psycopg.Connection[Any]) -> None:
    from pghist._files import extension_files

    assert pghist.version(conn) == extension_files().default_version


def test_track_defaults(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE tracked_model (id int PRIMARY KEY, int_field int, text text)")
    event_table = pghist.track(conn, f"{schema}.tracked_model")
    assert event_table.split(".")[-1] == "tracked_model_event"
    run(conn, schema, "INSERT INTO tracked_model VALUES (1, 10, 'a'), (2, 20, 'b')")
    run(conn, schema, "UPDATE tracked_model SET int_field = 11 WHERE id = 1")
    run(conn, schema, "UPDATE tracked_model SET int_field = 11 WHERE id = 1")  # no change: no event
    run(conn, schema, "DELETE FROM tracked_model WHERE id = 1")  # not tracked by default

    rows = pghist.events(conn, f"{schema}.tracked_model", obj=1)
    assert labels(rows) == ["insert", "update"]
    assert [row["pgh_data"] for row in rows] == [
        {"id": 1, "int_field": 10, "text": "a"},
        {"id": 1, "int_field": 11, "text": "a"},
    ]
    assert rows[0]["pgh_diff"] is None
    assert rows[1]["pgh_diff"] == {"int_field": [10, 11]}
    assert {row["pgh_obj_id"] for row in rows} == {"1"}
    assert rows[0]["pgh_id"] < rows[1]["pgh_id"]
    assert rows[0]["pgh_model"].split(".")[-1] == "tracked_model_event"

    # every object, and the event table itself
    assert len(pghist.events(conn, f"{schema}.tracked_model")) == 3
    count = conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, "tracked_model_event"))
    ).fetchone()
    assert count == (3,)

    # limit keeps the most recent, still oldest first
    recent = pghist.events(conn, f"{schema}.tracked_model", limit=2)
    assert [(row["pgh_obj_id"], row["pgh_label"]) for row in recent] == [
        ("2", "insert"),
        ("1", "update"),
    ]
    assert labels(pghist.events(conn, f"{schema}.tracked_model", label="update")) == ["update"]


def test_email_changed_with_old_snapshot(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE my_user (id int PRIMARY KEY, email text, name text)")
    event_table = pghist.track(
        conn,
        f"{schema}.my_user",
        pghist.UpdateEvent("email_changed", row=pghist.Old, condition=pghist.AnyChange("email")),
        model_name=f"{schema}.user_email_history",
    )
    assert event_table.split(".")[-1] == "user_email_history"
    run(conn, schema, "INSERT INTO my_user VALUES (1, 'a@x.org', 'Ann')")
    run(conn, schema, "UPDATE my_user SET name = 'Anne' WHERE id = 1")
    run(conn, schema, "UPDATE my_user SET email = 'b@x.org' WHERE id = 1")
    rows = pghist.events(conn, f"{schema}.my_user", obj=1)
    assert labels(rows) == ["email_changed"]
    assert rows[0]["pgh_data"]["email"] == "a@x.org"  # the old row
    assert rows[0]["pgh_data"]["name"] == "Anne"


def test_money_down_with_q_and_f(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE cash (id int PRIMARY KEY, dollars int)")
    pghist.track(
        conn,
        f"{schema}.cash",
        pghist.UpdateEvent(
            "money_down", condition=pghist.Q(old__dollars__gt=pghist.F("new__dollars"))
        ),
    )
    run(conn, schema, "INSERT INTO cash VALUES (1, 100)")
    for dollars in (120, 90, 95, 10):
        run(conn, schema, f"UPDATE cash SET dollars = {dollars} WHERE id = 1")
    rows = pghist.events(conn, f"{schema}.cash", obj=1)
    assert labels(rows) == ["money_down", "money_down"]
    assert [row["pgh_data"]["dollars"] for row in rows] == [90, 10]


def test_user_groups_without_object_column(conn: psycopg.Connection[Any], schema: str) -> None:
    run(
        conn,
        schema,
        "CREATE TABLE user_groups (user_id int, group_id int, PRIMARY KEY (user_id, group_id))",
    )
    event_table = pghist.track(
        conn,
        f"{schema}.user_groups",
        pghist.AfterInsert("group.add"),
        pghist.BeforeDelete("group.remove"),
        obj_field=None,
    )
    columns = [
        row[0]
        for row in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND NOT attisdropped ORDER BY attnum",
            (event_table,),
        )
    ]
    assert "pgh_obj_id" not in columns
    assert columns[:3] == ["pgh_id", "pgh_created_at", "pgh_label"]
    assert columns[-2:] == ["user_id", "group_id"]
    run(conn, schema, "INSERT INTO user_groups VALUES (1, 7), (2, 7)")
    run(conn, schema, "DELETE FROM user_groups WHERE user_id = 1")
    got = conn.execute(
        sql.SQL("SELECT pgh_label, user_id, group_id FROM {} ORDER BY pgh_id").format(
            sql.Identifier(*event_table.split("."))
            if "." in event_table
            else sql.Identifier(event_table)
        )
    ).fetchall()
    assert got == [("group.add", 1, 7), ("group.add", 2, 7), ("group.remove", 1, 7)]


def test_create_event(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE my_user (id int PRIMARY KEY, email text)")
    pghist.track(conn, f"{schema}.my_user", pghist.ManualEvent("user_create"))
    run(conn, schema, "INSERT INTO my_user VALUES (5, 'e@x.org')")
    assert pghist.events(conn, f"{schema}.my_user") == []  # manual: no trigger
    user_id = 5
    pgh_id = pghist.create_event(conn, f"{schema}.my_user", user_id, label="user_create")
    assert isinstance(pgh_id, int)
    rows = pghist.events(conn, f"{schema}.my_user", obj=user_id)
    assert [(row["pgh_id"], row["pgh_label"], row["pgh_data"]) for row in rows] == [
        (pgh_id, "user_create", {"id": 5, "email": "e@x.org"})
    ]

    with pytest.raises(errors.UndefinedObject) as unknown:
        pghist.create_event(conn, f"{schema}.my_user", 5, label="nope")
    assert unknown.value.sqlstate == "42704"
    assert "nope" in unknown.value.message
    assert unknown.value.hint
    with pytest.raises(errors.NoDataFound) as missing:
        pghist.create_event(conn, f"{schema}.my_user", 6, label="user_create")
    assert missing.value.sqlstate == "P0002"


def test_context(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE orders (id int PRIMARY KEY, total int)")
    pghist.track(conn, f"{schema}.orders")
    with pghist.context(conn, user=42, url="/orders") as context_id:
        assert isinstance(context_id, uuid.UUID)
        run(conn, schema, "INSERT INTO orders VALUES (1, 10)")
        with pghist.context(conn, step="inner") as inner_id:
            assert inner_id == context_id
            run(conn, schema, "UPDATE orders SET total = 11 WHERE id = 1")
    run(conn, schema, "UPDATE orders SET total = 12 WHERE id = 1")  # no context any more

    rows = pghist.events(conn, f"{schema}.orders", obj=1)
    assert labels(rows) == ["insert", "update", "update"]
    assert rows[0]["pgh_context_id"] == rows[1]["pgh_context_id"] == context_id
    assert rows[2]["pgh_context_id"] is None
    # nested blocks merged their metadata into the one context
    assert rows[0]["pgh_context"] == {"user": 42, "url": "/orders", "step": "inner"}
    metadata = conn.execute(
        "SELECT metadata FROM pghistory.context WHERE id = %s", (context_id,)
    ).fetchone()
    assert metadata == ({"user": 42, "url": "/orders", "step": "inner"},)


def test_context_as_decorator(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE jobs (id int PRIMARY KEY, state text)")
    pghist.track(conn, f"{schema}.jobs")

    @pghist.context(conn, job="nightly")
    def work(job_id: int) -> None:
        run(conn, schema, f"INSERT INTO jobs VALUES ({job_id}, 'done')")

    work(1)
    work(2)
    rows = pghist.events(conn, f"{schema}.jobs")
    assert [row["pgh_context"] for row in rows] == [{"job": "nightly"}, {"job": "nightly"}]
    # each call is its own transaction, so its own context
    assert rows[0]["pgh_context_id"] != rows[1]["pgh_context_id"]


def test_context_metadata_types(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE k (id int PRIMARY KEY)")
    pghist.track(conn, f"{schema}.k")
    when = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)
    request_id = uuid.UUID(int=7)
    with pghist.context(conn, at=when, request=request_id, amount=decimal.Decimal("1.50")):
        run(conn, schema, "INSERT INTO k VALUES (1)")
    (event,) = pghist.events(conn, f"{schema}.k")
    assert event["pgh_context"] == {
        "at": "2024-05-01T12:30:00+00:00",
        "request": str(request_id),
        "amount": "1.50",
    }
    # what JSON cannot hold is refused before anything is written, and nothing stays open
    with (
        pytest.raises(TypeError, match="not JSON serializable"),
        pghist.context(conn, thing=object()),
    ):
        run(conn, schema, "INSERT INTO k VALUES (2)")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert len(pghist.events(conn, f"{schema}.k")) == 1


def test_context_rolls_back_with_its_block(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE acct (id int PRIMARY KEY, n int)")
    pghist.track(conn, f"{schema}.acct")
    with pytest.raises(RuntimeError), pghist.context(conn, user="x"):
        run(conn, schema, "INSERT INTO acct VALUES (1, 1)")
        raise RuntimeError("boom")
    assert pghist.events(conn, f"{schema}.acct") == []
    count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, "acct")))
    assert count.fetchone() == (0,)


def test_context_in_an_open_transaction(db_dsn: str, schema: str) -> None:
    # a connection that is not autocommit: the block is a savepoint of the caller's transaction
    with psycopg.connect(db_dsn) as tx_conn:
        run(tx_conn, schema, "CREATE TABLE t (id int PRIMARY KEY)")
        pghist.track(tx_conn, f"{schema}.t")
        with pghist.context(tx_conn, who="outer") as outer:
            run(tx_conn, schema, "INSERT INTO t VALUES (1)")
        with pghist.context(tx_conn, who="inner") as inner:
            run(tx_conn, schema, "INSERT INTO t VALUES (2)")
        assert outer == inner  # one transaction, one context
        tx_conn.commit()
        rows = pghist.events(tx_conn, f"{schema}.t")
        assert [row["pgh_context"] for row in rows] == [{"who": "inner"}, {"who": "inner"}]


def test_status_and_untrack(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE s (id int PRIMARY KEY, a int, b int)")
    event_table = pghist.track(conn, f"{schema}.s", pghist.InsertEvent(), fields=["id", "a"])
    rows = [row for row in pghist.status(conn) if str(row["target"]) == f"{schema}.s"]
    assert len(rows) == 1
    assert str(rows[0]["event_table"]) == event_table
    assert [tracker["label"] for tracker in rows[0]["trackers"]] == ["insert"]
    assert list(rows[0]["fields"]) == ["id", "a"]

    pghist.untrack(conn, f"{schema}.s")
    run(conn, schema, "INSERT INTO s VALUES (1, 1, 1)")
    assert pghist.events(conn, f"{schema}.s") == []
    # history table still there
    assert conn.execute("SELECT to_regclass(%s) IS NOT NULL", (event_table,)).fetchone() == (True,)
    pghist.untrack(conn, f"{schema}.s", drop_events=True)
    assert conn.execute("SELECT to_regclass(%s) IS NULL", (event_table,)).fetchone() == (True,)
    assert [row for row in pghist.status(conn) if str(row["target"]) == f"{schema}.s"] == []


def test_more_trackers(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE m (id int PRIMARY KEY, v text)")
    pghist.track(
        conn,
        f"{schema}.m",
        pghist.InsertEvent("made"),
        pghist.UpdateEvent(),
        pghist.DeleteEvent("gone"),
        pghist.RowEvent("before_v", "update", row=pghist.Old, timing="before"),
        pghist.AfterInsertOrUpdate("touched"),
    )
    run(conn, schema, "INSERT INTO m VALUES (1, 'a')")
    run(conn, schema, "UPDATE m SET v = 'b' WHERE id = 1")
    run(conn, schema, "DELETE FROM m WHERE id = 1")
    rows = pghist.events(conn, f"{schema}.m", obj=1)
    got = sorted((row["pgh_label"], row["pgh_data"]["v"]) for row in rows)
    assert got == sorted(
        [
            ("made", "a"),
            ("touched", "a"),
            ("update", "b"),
            ("before_v", "a"),
            ("touched", "b"),
            ("gone", "b"),
        ]
    )


# --- conditions evaluated by the server ------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (pghist.Q(new__name="O'Brien"), ["O'Brien"]),
        (pghist.Q(new__name="back\\slash"), ["back\\slash"]),
        (pghist.Q(new__name__in=["O'Brien", "x"]), ["O'Brien", "x"]),
        # NOT (NULL = 'O''Brien') is NULL: SQL's three-valued logic, as in a WHEN clause
        (~pghist.Q(new__name="O'Brien"), ["x", "back\\slash"]),
        (pghist.Q(new__name__isnull=True), [None]),
        (
            pghist.Q(new__name__df=pghist.F("old__name")) & pghist.Q(new__n__gt=1),
            ["x", "back\\slash", None],
        ),
        (pghist.Q(new__name="x") | pghist.Q(new__n__gte=4), ["x", None]),
        (pghist.Condition("NEW.n % 2 = 0"), ["x", None]),
        (
            pghist.AnyChange("name") & ~pghist.Q(new__name="x"),
            ["O'Brien", "back\\slash"],
        ),
        (pghist.AnyDontChange("name", "n"), []),
    ],
)
def test_conditions_on_the_server(
    conn: psycopg.Connection[Any],
    schema: str,
    condition: pghist.BaseCondition,
    expected: list[str | None],
) -> None:
    run(conn, schema, "CREATE TABLE c (id int PRIMARY KEY, name text, n int)")
    pghist.track(conn, f"{schema}.c", pghist.UpdateEvent("hit", condition=condition))
    run(conn, schema, "INSERT INTO c VALUES (1, 'start', 0)")
    for n, name in enumerate(["O'Brien", "x", "back\\slash", None], start=1):
        conn.execute(
            sql.SQL("UPDATE {} SET name = %s, n = %s WHERE id = 1").format(
                sql.Identifier(schema, "c")
            ),
            (name, n),
        )
    rows = pghist.events(conn, f"{schema}.c")
    assert [row["pgh_data"]["name"] for row in rows] == expected


# --- errors ----------------------------------------------------------------------------


def test_unknown_table(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(errors.UndefinedTable) as info:
        pghist.track(conn, "public.no_such_table")
    assert info.value.sqlstate == "42P01"
    assert "no_such_table" in info.value.message
    with pytest.raises(errors.UndefinedTable):
        pghist.events(conn, "public.no_such_table")


def test_unknown_column(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE u (id int PRIMARY KEY, a int)")
    with pytest.raises(errors.UndefinedColumn) as info:
        pghist.track(conn, f"{schema}.u", fields=["id", "nope"])
    assert info.value.sqlstate == "42703"
    assert "nope" in info.value.message
    assert info.value.hint
    # nothing half-created
    assert [row for row in pghist.status(conn) if str(row["target"]) == f"{schema}.u"] == []


def test_unknown_option_value(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE o (id int PRIMARY KEY)")
    with pytest.raises(errors.InvalidParameter) as info:
        pghist.track(conn, f"{schema}.o", context_mode="sometimes")
    assert info.value.sqlstate == "22023"
    assert "sometimes" in info.value.message
    assert info.value.hint


def test_bad_snapshot(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE b (id int PRIMARY KEY)")
    with pytest.raises(errors.PghistoryError) as info:
        pghist.track(conn, f"{schema}.b", pghist.RowEvent("x", "insert", row=pghist.Old))
    assert info.value.sqlstate is not None
    assert info.value.sqlstate[:2] in ("22", "42")


def test_condition_on_unknown_column(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE q (id int PRIMARY KEY, a int)")
    with pytest.raises(errors.PghistoryError) as info:
        pghist.track(conn, f"{schema}.q", pghist.UpdateEvent(condition=pghist.Q(new__zzz=1)))
    assert info.value.sqlstate == "42703"


def test_old_in_insert_condition(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE r (id int PRIMARY KEY, a int)")
    with pytest.raises(errors.PghistoryError) as info:
        pghist.track(conn, f"{schema}.r", pghist.InsertEvent(condition=pghist.Q(old__a=1)))
    assert info.value.sqlstate is not None
    assert info.value.sqlstate != "XX000"


def test_untrack_unknown(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE n (id int PRIMARY KEY)")
    with pytest.raises(errors.UndefinedObject) as info:
        pghist.untrack(conn, f"{schema}.n")
    assert info.value.sqlstate == "42704"


def test_not_owner(conn: psycopg.Connection[Any], schema: str, db_dsn: str) -> None:
    role = f"pgh_intruder_{schema}"[:60]
    run(conn, schema, "CREATE TABLE owned (id int PRIMARY KEY)")
    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(schema), sql.Identifier(role)
            )
        )
        with psycopg.connect(db_dsn, user=role, autocommit=True) as other:
            with pytest.raises(errors.InsufficientPrivilege) as info:
                pghist.track(other, f"{schema}.owned")
            assert info.value.sqlstate == "42501"
    finally:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_not_installed(make_database: Any) -> None:
    with psycopg.connect(make_database(), autocommit=True) as fresh:
        fresh.execute("CREATE TABLE t (id int PRIMARY KEY)")
        with pytest.raises(errors.NotInstalled) as info:
            pghist.track(fresh, "public.t")
        assert info.value.hint
        with pytest.raises(errors.NotInstalled):
            pghist.events(fresh, "public.t")
        with pytest.raises(errors.NotInstalled):
            pghist.status(fresh)
        with pytest.raises(errors.NotInstalled):
            pghist.version(fresh)
        with pytest.raises(errors.NotInstalled), pghist.context(fresh, user=1):
            pass


def test_track_partitioned_history(conn: psycopg.Connection[Any], schema: str) -> None:
    run(conn, schema, "CREATE TABLE clicks (id int PRIMARY KEY, url text)")
    event_table = pghist.track(conn, f"{schema}.clicks", partition_by="week")
    kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", (event_table,))
    assert kind.fetchone() == ("p",)
    run(conn, schema, "INSERT INTO clicks VALUES (1, '/a')")
    assert labels(pghist.events(conn, f"{schema}.clicks", obj=1)) == ["insert"]
    status = pghist.status(conn)
    assert [row["partition_by"] for row in status if row["event_table"] == event_table] == ["week"]
    with pytest.raises(errors.InvalidParameter):
        pghist.track(conn, f"{schema}.clicks", model_name="other", partition_by="year")
