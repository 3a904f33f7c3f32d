"""Upgrades: from every released version, ALTER EXTENSION pghistory UPDATE gives the same catalog
as a fresh install of the default version, while tracked tables keep being written.

Released scripts are never edited; a change ships as pghistory--A--B.sql plus a full
pghistory--B.sql. Every released version is installed, given a tracked table that another session
keeps writing, and updated along the chain to the default version.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

EXTENSION_DIR = Path(__file__).resolve().parents[2] / "extension"

# Every object that belongs to the extension, described so that two catalogs can be compared.
CATALOG = """
SELECT d.classid::regclass::text AS kind,
       CASE d.classid
           WHEN 'pg_proc'::regclass THEN pg_get_functiondef(d.objid)
               || coalesce(array_to_string(p.proacl, ','), '')
           WHEN 'pg_class'::regclass THEN
               (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                  || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                  || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), ''),
                                  ', ' ORDER BY a.attnum)
                FROM pg_attribute a
                LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                WHERE a.attrelid = d.objid AND a.attnum > 0 AND NOT a.attisdropped)
               || coalesce(' ' || pg_get_viewdef(d.objid), '')
               || coalesce(' ' || array_to_string(c.relacl, ','), '')
               || coalesce(' ' || (SELECT string_agg(pg_get_indexdef(i.indexrelid), '; ' ORDER BY 1)
                                   FROM pg_index i WHERE i.indrelid = d.objid), '')
               || coalesce(' ' || (SELECT string_agg(con.conname || ' '
                                                     || pg_get_constraintdef(con.oid),
                                                     '; ' ORDER BY con.conname)
                                   FROM pg_constraint con WHERE con.conrelid = d.objid), '')
               || coalesce(' ' || (SELECT string_agg(pol.polname
                                                     || pg_get_expr(pol.polqual, pol.polrelid),
                                                     '; ' ORDER BY pol.polname)
                                   FROM pg_policy pol WHERE pol.polrelid = d.objid), '')
           ELSE pg_describe_object(d.classid, d.objid, d.objsubid) END AS description,
       obj_description(d.objid, d.classid::regclass::name) AS comment
FROM pg_depend d
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pghistory'
LEFT JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
LEFT JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
WHERE d.deptype = 'e'
ORDER BY 1, 2
"""


INDEXES = "SELECT indexdef FROM pg_indexes WHERE tablename = 'orders_event' ORDER BY 1"


def versions() -> tuple[list[str], str]:
    control = (EXTENSION_DIR / "pghistory.control").read_text()
    default = re.search(r"default_version\s*=\s*'([^']+)'", control)
    assert default is not None
    full = sorted(
        m.group(1)
        for f in EXTENSION_DIR.glob("pghistory--*.sql")
        if (m := re.fullmatch(r"pghistory--([^-]+)\.sql", f.name))
    )
    return full, default.group(1)


def catalog(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(CATALOG).fetchall()


def test_every_released_version_has_a_path_to_the_default() -> None:
    full, default = versions()
    assert default in full
    steps = {
        (m.group(1), m.group(2))
        for f in EXTENSION_DIR.glob("pghistory--*--*.sql")
        if (m := re.fullmatch(r"pghistory--([^-]+)--([^-]+)\.sql", f.name))
    }
    for version in full:
        reached, frontier = {version}, [version]
        while frontier:
            current = frontier.pop()
            for a, b in steps:
                if a == current and b not in reached:
                    reached.add(b)
                    frontier.append(b)
        assert default in reached, f"no upgrade path from {version} to {default}"


@pytest.mark.parametrize("start", versions()[0])
def test_upgrade_gives_a_fresh_install(make_database: Callable[..., str], start: str) -> None:
    _, default = versions()
    fresh = make_database("fresh")
    with psycopg.connect(fresh, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pghistory")
    upgraded = make_database("upgraded")
    with psycopg.connect(upgraded, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE EXTENSION pghistory VERSION {}").format(sql.Literal(start)))
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, status text)")
        conn.execute("SELECT pghistory.track('orders')")
        conn.execute("INSERT INTO orders VALUES (0, 'before')")

        # Another session writes all along, one transaction per row, while the chain is walked.
        stop = threading.Event()
        written: list[int] = []
        errors: list[Exception] = []

        def write() -> None:
            try:
                with psycopg.connect(upgraded, autocommit=True) as writer:
                    n = 1
                    while not stop.is_set() or n < 20:
                        writer.execute("INSERT INTO orders VALUES (%s, 'during')", (n,))
                        writer.execute("UPDATE orders SET status = 'changed' WHERE id = %s", (n,))
                        written.append(n)
                        n += 1
            except Exception as exc:  # reported by the main thread
                errors.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.2)
        conn.execute("ALTER EXTENSION pghistory UPDATE")
        time.sleep(0.2)
        stop.set()
        writer.join(timeout=60)
        assert not errors and len(written) >= 20
        assert conn.execute("SELECT pghistory.version()").fetchone() == (default,)
        # Not one write was lost or recorded twice, before, during or after the update.
        assert conn.execute(
            "SELECT pgh_label, count(*) FROM orders_event GROUP BY 1 ORDER BY 1"
        ).fetchall() == [("insert", len(written) + 1), ("update", len(written))]

        # The tables tracked before keep their old code until sync() generates it again.
        problems = conn.execute("SELECT problem, kind FROM pghistory.verify()").fetchall()
        generated = conn.execute(
            "SELECT generated_by, generated_for FROM pghistory._event_table"
        ).fetchall()
        if start != default:
            assert problems == [
                (
                    "its trigger function was generated by an older pghistory: "
                    "run pghistory.sync('public.orders')",
                    "stale_code",
                )
            ]
            # what older code was generated for is read from its source, once, by the upgrade
            assert generated == [(None, ["public.orders", "public.orders_event"])]
        else:
            assert problems == []
            assert generated == [(default, ["public.orders", "public.orders_event"])]
        conn.execute("SELECT pghistory.sync()")
        assert conn.execute("SELECT problem FROM pghistory.verify()").fetchall() == []
        conn.execute("UPDATE orders SET status = 'after' WHERE id = 0")
        assert conn.execute(
            "SELECT status FROM orders_event ORDER BY pgh_id DESC LIMIT 1"
        ).fetchone() == ("after",)
        upgraded_indexes = conn.execute(INDEXES).fetchall()
        conn.execute("DROP TABLE orders, orders_event")
        conn.execute("SELECT pghistory.sync()")  # what the events view is with no history
    expected = catalog(fresh)
    # and sync() gave the event table of the older version the indexes a fresh track() makes
    with psycopg.connect(fresh, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, status text)")
        conn.execute("SELECT pghistory.track('orders')")
        fresh_indexes = conn.execute(INDEXES).fetchall()
        conn.execute("DROP TABLE orders, orders_event")
    assert upgraded_indexes == fresh_indexes
    assert len(expected) > 50  # functions, tables, views, types, policies, event triggers
    assert catalog(upgraded) == expected
