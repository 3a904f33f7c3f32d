"""A writer's search_path cannot reach into the generated trigger code.

The generated trigger function runs as the table's owner (writers need no grant on the event
table). Whatever its shape (a pinned search_path, or every name in it schema-qualified), a writer
who puts a schema of their own before pg_catalog, with operators and functions named like the
ones the trigger code uses, must not get any of them run: not as the owner, not at all. Row
level, statement level, with and without a condition, with and without a context, and with a
temporary table named like the event table."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

TRAPS = """
GRANT USAGE ON SCHEMA {evil} TO PUBLIC;  -- else the owner's lookups skip it anyway
CREATE TABLE {evil}.calls (who name, what text);
GRANT INSERT, SELECT ON {evil}.calls TO PUBLIC;
CREATE FUNCTION {evil}.trap(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {evil}.calls VALUES (current_user, 'operator = on ' OPERATOR(pg_catalog.||) a);
    RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE FUNCTION {evil}.trap_ne(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {evil}.calls VALUES (current_user, 'operator <> on ' OPERATOR(pg_catalog.||) a);
    RETURN a OPERATOR(pg_catalog.<>) b;
END $$;
CREATE OPERATOR {evil}.= (LEFTARG = text, RIGHTARG = text, FUNCTION = {evil}.trap);
CREATE FUNCTION {evil}.trap_name(a name, b name) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {evil}.calls VALUES (current_user, 'operator = on names');
    RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE FUNCTION {evil}.trap_int(a integer, b integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {evil}.calls VALUES (current_user, 'operator = on integers');
    RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR {evil}.= (LEFTARG = name, RIGHTARG = name, FUNCTION = {evil}.trap_name);
CREATE OPERATOR {evil}.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = {evil}.trap_int);
CREATE OPERATOR {evil}.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = {evil}.trap_ne);
CREATE FUNCTION {evil}.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {evil}.calls VALUES (current_user, 'current_setting');
    RETURN pg_catalog.current_setting($1, $2);
END $$;
CREATE FUNCTION {evil}.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {evil}.calls VALUES (current_user, 'now');
    RETURN pg_catalog.now();
END $$;
CREATE FUNCTION {evil}.current_context_id() RETURNS uuid LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {evil}.calls VALUES (current_user, 'current_context_id');
    RETURN NULL;
END $$;
CREATE FUNCTION {evil}.trap_concat(a text, b text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {evil}.calls VALUES (current_user, 'operator ||');
    RETURN a OPERATOR(pg_catalog.||) b;
END $$;
CREATE FUNCTION {evil}.trap_match(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {evil}.calls VALUES (current_user, 'operator ~');
    RETURN a OPERATOR(pg_catalog.~) b;
END $$;
CREATE OPERATOR {evil}.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = {evil}.trap_concat);
CREATE OPERATOR {evil}.~ (LEFTARG = text, RIGHTARG = text, FUNCTION = {evil}.trap_match);
CREATE FUNCTION {evil}.concat(a text, b text, c text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {evil}.calls VALUES (current_user, 'concat');
    RETURN pg_catalog.concat(a, b, c);
END $$;
CREATE FUNCTION {evil}.set_config(text, text, boolean) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {evil}.calls VALUES (current_user, 'set_config');
    RETURN pg_catalog.set_config($1, $2, $3);
END $$;
CREATE FUNCTION {evil}.jsonb_typeof(jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {evil}.calls VALUES (current_user, 'jsonb_typeof');
    RETURN pg_catalog.jsonb_typeof($1);
END $$;
-- types named like the ones the code declares: a domain's check runs whoever assigns to it
CREATE FUNCTION {evil}.domain_trap() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {evil}.calls VALUES (current_user, 'domain');
    RETURN true;
END $$;
CREATE DOMAIN {evil}.text AS pg_catalog.text CHECK ({evil}.domain_trap());
CREATE DOMAIN {evil}.uuid AS pg_catalog.uuid CHECK ({evil}.domain_trap());
CREATE DOMAIN {evil}.jsonb AS pg_catalog.jsonb CHECK ({evil}.domain_trap());
"""


@pytest.fixture
def roles(conn: psycopg.Connection[Any]) -> Iterator[tuple[str, str, str]]:
    """(owner, writer, the writer's schema of traps); the owner owns schema app."""
    suffix = conn.info.dbname[-20:].replace("-", "_")
    owner, writer, evil = (
        f"pgh_owner_{suffix}",
        f"pgh_writer_{suffix}",
        f"evil_{suffix}",
    )
    for role in (owner, writer):
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    conn.execute("DROP SCHEMA IF EXISTS app CASCADE")
    conn.execute(sql.SQL("CREATE SCHEMA app AUTHORIZATION {}").format(sql.Identifier(owner)))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA app TO {}").format(sql.Identifier(writer)))
    conn.execute(
        sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
            sql.Identifier(evil), sql.Identifier(writer)
        )
    )
    conn.execute(
        sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}").format(
            sql.Identifier(conn.info.dbname), sql.Identifier(writer)
        )
    )
    try:
        yield owner, writer, evil
    finally:
        conn.execute("DROP SCHEMA IF EXISTS app CASCADE")
        for role in (writer, owner):
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize(
    "options",
    [
        "",
        ", level => 'row'",
        ", level => 'statement'",
        ", pghistory.insert_event(), pghistory.delete_event(),"
        " pghistory.update_event(condition => 'NEW.status <> OLD.status')",
        ", context_mode => 'json'",
    ],
    ids=["default", "row", "statement", "condition", "json-context"],
)
def test_hostile_search_path_reaches_nothing(
    conn: psycopg.Connection[Any],
    db_dsn: str,
    roles: tuple[str, str, str],
    options: str,
) -> None:
    owner, writer, evil = roles
    with psycopg.connect(db_dsn, user=owner, autocommit=True) as own:
        own.execute("CREATE TABLE app.orders (id int PRIMARY KEY, status text NOT NULL, qty int)")
        own.execute(f"SELECT pghistory.track('app.orders'{options})")
        own.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON app.orders TO {}").format(
                sql.Identifier(writer)
            )
        )
    with psycopg.connect(db_dsn, user=writer, autocommit=True) as w:
        w.execute(sql.SQL(TRAPS).format(evil=sql.Identifier(evil)))
        # a temporary table named like the event table, and the traps before pg_catalog
        w.execute("CREATE TEMP TABLE orders_event (LIKE app.orders)")
        w.execute(
            sql.SQL("SET search_path = {}, pg_temp, pg_catalog, app").format(sql.Identifier(evil))
        )
        w.execute("INSERT INTO app.orders VALUES (1, 'new', 1), (2, 'new', 1)")
        w.execute("INSERT INTO app.orders VALUES (3, 'new', 1)")
        w.execute("UPDATE app.orders SET status = 'paid' WHERE id OPERATOR(pg_catalog.=) 1")
        w.execute("UPDATE app.orders SET qty = qty WHERE id OPERATOR(pg_catalog.=) 2")
        w.execute("UPDATE app.orders SET status = 'sent' WHERE id OPERATOR(pg_catalog.<) 3")
        # the settings a client sends (the lazy protocol), first in this session: the context row
        # is written by the trigger's call, and the context functions are compiled, here; a
        # context id as clients set it, in another spelling the uuid type accepts, and the first
        # again in a later transaction (as django-pghistory does: its row is updated)
        context_ids = [uuid.uuid4(), uuid.uuid4()]
        raw_ids = (str(context_ids[0]), "{" + context_ids[1].hex.upper() + "}", str(context_ids[0]))
        for n, raw_id in enumerate(raw_ids):
            with w.transaction():
                w.execute(
                    "SELECT pg_catalog.set_config('pghistory.context_id', %s, true),"
                    " pg_catalog.set_config('pghistory.context_metadata', %s, true)",
                    (raw_id, f'{{"user": {8 + n % 2}}}'),
                )
                w.execute(
                    "UPDATE app.orders SET status = %s WHERE id OPERATOR(pg_catalog.=) 3",
                    (f"ctx{n}",),
                )
        with w.transaction():
            w.execute("SELECT pghistory.set_context('{\"user\": 7}')")
            w.execute("UPDATE app.orders SET status = 'late' WHERE id OPERATOR(pg_catalog.=) 3")
        w.execute("DELETE FROM app.orders WHERE id OPERATOR(pg_catalog.=) 2")
        calls = w.execute(
            sql.SQL("SELECT who, what FROM {}.calls").format(sql.Identifier(evil))
        ).fetchall()
        assert calls == [], f"the trigger code ran the writer's objects: {calls}"
        assert w.execute("SELECT count(*) FROM pg_temp.orders_event").fetchone() == (0,)
    # the metadata each event's context holds: kept in the event, or in its row of pghistory.context
    metadata = (
        "e.pgh_context"
        if "json" in options
        else "(SELECT c.metadata FROM pghistory.context c WHERE c.id = e.pgh_context_id)"
    )
    labels = conn.execute(
        f"SELECT pgh_label, pgh_obj_id, status, {metadata} FROM app.orders_event e ORDER BY pgh_id"
    ).fetchall()
    inserts = [r for r in labels if r[0] == "insert"]
    updates = [r for r in labels if r[0] == "update"]
    assert sorted(r[1] for r in inserts) == [1, 2, 3]
    # id 1 -> paid -> sent, id 2 -> sent (its no-op update recorded nothing), id 3 -> ctx0 -> ctx1
    # -> ctx2 -> late
    assert sorted((r[1], r[2], r[3]) for r in updates) == [
        (1, "paid", None),
        (1, "sent", None),
        (2, "sent", None),
        (3, "ctx0", {"user": 8}),
        (3, "ctx1", {"user": 9}),
        (3, "ctx2", {"user": 8}),
        (3, "late", {"user": 7}),
    ]
    if "json" not in options:  # both spellings of a uuid name their context row
        contexts = conn.execute(
            "SELECT id, metadata FROM pghistory.context WHERE id = ANY(%s)"
            " ORDER BY metadata->>'user'",
            (context_ids,),
        ).fetchall()
        assert contexts == [(context_ids[0], {"user": 8}), (context_ids[1], {"user": 9})]
