"""The soak: many clients writing tracked tables while another session changes their tracking.

Writers (threads, one connection each) run a mix of transactions on the tracked tables:
single-row INSERT / UPDATE / no-op UPDATE / DELETE, bulk UPDATE and INSERT of a range, some with
a context, some with a savepoint rolled back or released, some rolled back whole. Every
transaction locks rows in ascending id order, so the writers cannot deadlock among themselves:
a deadlock or serialization failure can only come from pghistory's objects. Meanwhile one admin
session, in rotation: creates a table, writes it untracked, tracks it and backfills it; adds a
column to a tracked table (then sync); prunes the history, keeping each object's newest event.

At the end the history is replayed: for every table, the newest event of each object (a
delete: none) must equal the table's row, column for column.
"""

# ruff: noqa: S608  (SQL built from this module's identifiers)
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors

ROWS = 2_000  # rows per table at its creation
BULK = 50  # rows per bulk statement
TRACKERS = "pghistory.insert_event(), pghistory.update_event(), pghistory.delete_event()"


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    admin: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, counter: str = "done") -> None:
        with self.lock:
            getattr(self, counter)[kind] += 1


@dataclass
class Soak:
    dsn: str
    clients: int = 8
    seconds: float = 600.0
    admin_every: float = 2.0
    seed: int = 1
    tables: list[str] = field(default_factory=list)  # tables the writers may write
    tally: Tally = field(default_factory=Tally)
    stop: threading.Event = field(default_factory=threading.Event)
    _tables_lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 10_000_000

    # -- schema --------------------------------------------------------------------------------
    def create_table(self, conn: psycopg.Connection[Any], name: str, track: bool) -> None:
        conn.execute(
            f"CREATE TABLE {name} (id bigint PRIMARY KEY, qty integer NOT NULL, "
            f"name text NOT NULL, price numeric(12,2) NOT NULL)"
        )
        conn.execute(
            f"INSERT INTO {name} SELECT g, g % 100, 'row ' || g, g * 0.25 "
            f"FROM generate_series(1, {ROWS}) g"
        )
        if track:
            conn.execute(f"SELECT pghistory.track('{name}', {TRACKERS})")
            conn.execute(f"SELECT pghistory.backfill('{name}')")

    def setup(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pghistory")
            for i in range(3):
                self.create_table(conn, f"soak_{i}", track=True)
                self.tables.append(f"soak_{i}")

    # -- writers -------------------------------------------------------------------------------
    def new_ids(self, n: int) -> list[int]:
        with self._tables_lock:
            first = self._next_id
            self._next_id += n
        return list(range(first, first + n))

    def transaction(self, conn: psycopg.Connection[Any], rng: random.Random) -> str:
        with self._tables_lock:
            table = rng.choice(self.tables)
        kind = rng.choices(
            [
                "update",
                "insert",
                "noop",
                "delete",
                "bulk_update",
                "bulk_insert",
                "savepoint",
                "rollback",
            ],
            weights=[35, 20, 8, 4, 8, 5, 10, 10],
        )[0]
        a = rng.randint(1, ROWS - BULK - 1)
        with conn.transaction() as tx:
            if rng.random() < 0.3:
                conn.execute("SELECT pghistory.set_context(%s::jsonb)", (f'{{"client": {a}}}',))
            if kind == "update":
                conn.execute(
                    f"UPDATE {table} SET qty = qty + 1, price = price + 1 WHERE id = %s", (a,)
                )
            elif kind == "noop":
                conn.execute(f"UPDATE {table} SET qty = qty WHERE id = %s", (a,))
            elif kind == "insert":
                (i,) = self.new_ids(1)
                conn.execute(f"INSERT INTO {table} VALUES (%s, 1, 'new', 1.5)", (i,))
            elif kind == "delete":
                conn.execute(f"DELETE FROM {table} WHERE id = %s", (a,))
            elif kind == "bulk_update":
                conn.execute(
                    f"UPDATE {table} SET qty = qty + 1 WHERE id IN (SELECT id FROM {table} "
                    f"WHERE id BETWEEN %s AND %s ORDER BY id FOR UPDATE)",
                    (a, a + BULK),
                )
            elif kind == "bulk_insert":
                first = self.new_ids(BULK)[0]
                conn.execute(
                    f"INSERT INTO {table} SELECT g, 2, 'bulk', 2.5 FROM generate_series(%s, %s) g",
                    (first, first + BULK - 1),
                )
            elif kind == "savepoint":
                conn.execute(f"UPDATE {table} SET qty = qty + 1 WHERE id = %s", (a,))
                with conn.transaction() as sp:
                    conn.execute(f"UPDATE {table} SET name = name || '+' WHERE id = %s", (a + 1,))
                    if rng.random() < 0.5:
                        raise psycopg.Rollback(sp)
            else:  # rollback
                conn.execute(f"UPDATE {table} SET qty = -1 WHERE id = %s", (a,))
                raise psycopg.Rollback(tx)
        return kind

    def writer(self, n: int) -> None:
        rng = random.Random(self.seed * 1000 + n)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                try:
                    kind = self.transaction(conn, rng)
                    self.tally.add(kind)
                except (errors.DeadlockDetected, errors.SerializationFailure) as exc:
                    where = exc.diag.context or ""
                    self.tally.failures.append(f"{type(exc).__name__}: {exc} (context: {where})")
                except errors.UndefinedTable:
                    self.tally.add("table gone", "retried")  # never expected: tables stay
                except psycopg.Error as exc:
                    self.tally.failures.append(f"writer {n}: {type(exc).__name__}: {exc}")

    # -- the admin session ---------------------------------------------------------------------
    def admin(self) -> None:
        rng = random.Random(self.seed)
        created = 3
        step = 0
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.wait(self.admin_every):
                action = ("track", "alter", "prune", "backfill")[step % 4]
                step += 1
                try:
                    if action == "track":
                        name = f"soak_{created}"
                        created += 1
                        self.create_table(conn, name, track=False)
                        with self._tables_lock:
                            self.tables.append(name)  # written untracked for a moment
                        time.sleep(self.admin_every / 4)
                        conn.execute(f"SELECT pghistory.track('{name}', {TRACKERS})")
                        conn.execute(f"SELECT pghistory.backfill('{name}')")
                    elif action == "alter":
                        with self._tables_lock:
                            table = rng.choice(self.tables)
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN extra_{step} integer")
                        conn.execute(f"SELECT pghistory.sync('{table}')")
                    elif action == "prune":
                        conn.execute(
                            "SELECT pghistory.prune(older_than => '1 second', keep_last => 1)"
                        )
                    else:
                        with self._tables_lock:
                            table = rng.choice(self.tables)
                        conn.execute(f"SELECT pghistory.backfill('{table}')")
                    self.tally.add(action, "admin")
                except (errors.DeadlockDetected, errors.SerializationFailure) as exc:
                    self.tally.failures.append(f"admin {action}: {type(exc).__name__}: {exc}")
                except psycopg.Error as exc:
                    self.tally.failures.append(f"admin {action}: {type(exc).__name__}: {exc}")

    # -- run and check -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.setup()
        threads = [threading.Thread(target=self.writer, args=(i,)) for i in range(self.clients)]
        threads.append(threading.Thread(target=self.admin))
        started = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(self.seconds)
        self.stop.set()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        return {"elapsed": elapsed, "mismatches": self.replay(), "events": self.event_count()}

    def tracked(self, conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
        return [
            (str(t), str(e))
            for t, e in conn.execute(
                "SELECT target::text, event_table::text FROM pghistory.tracking ORDER BY 1"
            ).fetchall()
        ]

    def replay(self) -> dict[str, int]:
        """Rows (either side) where the newest event of an object differs from the table."""
        out = {}
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for table, events in self.tracked(conn):
                cols = [
                    r[0]
                    for r in conn.execute(
                        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                        (table,),
                    ).fetchall()
                ]
                collist = ", ".join(f'"{c}"' for c in cols)
                latest = (
                    f"SELECT DISTINCT ON (pgh_obj_id) pgh_label, {collist} FROM {events} "
                    f"ORDER BY pgh_obj_id, pgh_id DESC"
                )
                rebuilt = f"SELECT {collist} FROM ({latest}) e WHERE pgh_label <> 'delete'"
                (n,) = conn.execute(
                    f"SELECT count(*) FROM (({rebuilt} EXCEPT ALL SELECT {collist} FROM {table}) "
                    f"UNION ALL (SELECT {collist} FROM {table} EXCEPT ALL {rebuilt})) d"
                ).fetchone()  # type: ignore[misc]
                out[table] = int(n)
        return out

    def event_count(self) -> int:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            total = 0
            for _, events in self.tracked(conn):
                total += int(conn.execute(f"SELECT count(*) FROM {events}").fetchone()[0])  # type: ignore[index]
            return total
