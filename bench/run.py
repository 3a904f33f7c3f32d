#!/usr/bin/env python3
# ruff: noqa: S608  (every SQL string is built from this file's constants)
"""pghistory benchmark: tracked writes against untracked ones, measured in the same run.

    .venv/bin/python bench/run.py                 # PostgreSQL 15, full run (~20 minutes)
    .venv/bin/python bench/run.py --pg 18         # another major version (15, 16, 18)
    .venv/bin/python bench/run.py --quick         # smoke run for CI (< 2 minutes, small sizes)
    .venv/bin/python bench/run.py --json out.json # also write every measurement as JSON
    .venv/bin/python bench/run.py --set jit=off   # override a server setting (repeatable)

One command: it starts its own throwaway server (tests/pgserver.py, with this checkout's
extension files), builds the same table once per variant, and measures

  bulk     one statement touching 100k rows of a 200k-row table: UPDATE, INSERT, an UPDATE that
           changes nothing (SET qty = qty), and the UPDATE inside a transaction that sets a context
  pgbench  single-row UPDATE by primary key and single-row INSERT, 1 and 2 clients, with the
           pgbench of the server's bindir; then the same writes inside BEGIN ... COMMIT with and
           without a context (pghistory.set_context, or the raw SET LOCAL settings protocol)
  size     bytes per event on disk (pg_total_relation_size of the event table / events)

against these variants of one 6-column table (id bigint primary key + 5 int/text/numeric/
timestamptz columns):

  untracked   no triggers
  pghistory   SELECT pghistory.track(t)                  (insert + update trackers, level auto)
  pgh_row     SELECT pghistory.track(t, level => 'row')
  pgh_stmt    SELECT pghistory.track(t, level => 'statement')
  django      hand-written triggers of django-pghistory's shape (AFTER ... FOR EACH ROW, WHEN
              (OLD.* IS DISTINCT FROM NEW.*), INSERT ... VALUES (..., _pgh_attach_context(), ...))

Every measurement starts from the same state: the variant's table is truncated and reloaded
from a source table (triggers off), its event table and the context tables are truncated, then
VACUUM ANALYZE and CHECKPOINT. Repetitions interleave the variants (the order rotates each
round) so drift hits all of them alike. Ratios are medians of per-round ratios against the
untracked run of the same round; raw figures are medians too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

import pgserver  # noqa: E402
import psycopg  # noqa: E402

# Settings applied with ALTER SYSTEM before the server is restarted for the run. pgserver itself
# starts postgres with fsync=off, synchronous_commit=off, full_page_writes=off on the command
# line (which ALTER SYSTEM cannot override); those are listed in the output too.
SERVER_SETTINGS: dict[str, str] = {
    "shared_buffers": "256MB",  # every table of the run stays in shared buffers
    "autovacuum": "off",  # the benchmark vacuums between runs; no autovacuum in a measurement
    "max_wal_size": "4GB",  # no WAL-volume checkpoint in a measurement (CHECKPOINT before each)
    "synchronous_commit": "off",  # the CPU-bound worst case (pgserver sets it too)
}
SHOWN_SETTINGS = (
    "server_version",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "jit",
    "jit_above_cost",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "max_wal_size",
    "checkpoint_timeout",
    "autovacuum",
    "max_connections",
    "huge_pages",
    "plan_cache_mode",
)

COLUMNS = (
    "qty integer NOT NULL, name text NOT NULL, price numeric(12,2) NOT NULL, "
    "stamp timestamptz NOT NULL, status integer NOT NULL"
)
DATA_COLUMNS = ("qty", "name", "price", "stamp", "status")
# New rows (bulk and single-row INSERT) take ids from the identity, far above the loaded ones.
IDENTITY_START = 1_000_000_000


def say(msg: str = "") -> None:
    print(msg, flush=True)


def progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    key: str
    title: str
    table: str
    event_table: str | None
    setup: Callable[[str], list[str]]
    context_protocols: tuple[str, ...] = ()  # how a transaction can set a context here


def _track(level: str | None) -> Callable[[str], list[str]]:
    def setup(table: str) -> list[str]:
        if level is None:
            return [f"SELECT pghistory.track('{table}')"]
        return [f"SELECT pghistory.track('{table}', level => '{level}')"]

    return setup


DJANGO_CONTEXT_SQL = [
    # django-pghistory's context table and _pgh_attach_context(): read the transaction-local
    # settings its Python side sets, upsert the context row, return its id (NULL when unset).
    """CREATE TABLE IF NOT EXISTS pghistory_context (
        id uuid PRIMARY KEY, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
        metadata jsonb NOT NULL)""",
    """CREATE OR REPLACE FUNCTION _pgh_attach_context() RETURNS uuid LANGUAGE plpgsql AS $$
    DECLARE
        _pgh_context_id uuid := nullif(current_setting('pghistory.context_id', true), '');
        _pgh_context_metadata jsonb :=
            nullif(current_setting('pghistory.context_metadata', true), '');
    BEGIN
        IF _pgh_context_id IS NOT NULL AND _pgh_context_metadata IS NOT NULL THEN
            INSERT INTO pghistory_context (id, metadata, created_at, updated_at)
                VALUES (_pgh_context_id, _pgh_context_metadata, now(), now())
                ON CONFLICT (id) DO UPDATE
                    SET metadata = EXCLUDED.metadata, updated_at = EXCLUDED.updated_at;
            RETURN _pgh_context_id;
        END IF;
        RETURN NULL;
    END
    $$""",
]


def _django(table: str) -> list[str]:
    """Row triggers as django-pghistory generates them for pghistory.track(insert, update)."""
    ev = f"{table}_event"
    # django sorts the inserted columns by name; the event model keeps the tracked fields
    # (id as a plain column) between pgh_label and the two foreign keys (no FK constraint).
    cols = sorted(
        ["id", *DATA_COLUMNS, "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id"]
    )

    def values(label: str) -> str:
        special = {
            "pgh_context_id": "_pgh_attach_context()",
            "pgh_created_at": "NOW()",
            "pgh_label": f"'{label}'",
            "pgh_obj_id": 'NEW."id"',
        }
        return ", ".join(special.get(c, f'NEW."{c}"') for c in cols)

    collist = ", ".join(f'"{c}"' for c in cols)
    stmts = [
        *DJANGO_CONTEXT_SQL,
        f"""CREATE TABLE {ev} (
            pgh_id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            pgh_created_at timestamptz NOT NULL, pgh_label text NOT NULL,
            id bigint NOT NULL, {COLUMNS},
            pgh_context_id uuid NULL, pgh_obj_id bigint NOT NULL)""",
        f"CREATE INDEX {ev}_pgh_context_id ON {ev} (pgh_context_id)",
        f"CREATE INDEX {ev}_pgh_obj_id ON {ev} (pgh_obj_id)",
    ]
    for label in ("insert", "update"):
        stmts.append(
            f"""CREATE FUNCTION pgtrigger_{label}_{label}_{table}() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN INSERT INTO "{ev}" ({collist}) VALUES ({values(label)});
            RETURN NULL; END; $$"""
        )
    stmts.append(
        f"CREATE TRIGGER pgtrigger_insert_insert AFTER INSERT ON {table} FOR EACH ROW "
        f"EXECUTE FUNCTION pgtrigger_insert_insert_{table}()"
    )
    stmts.append(
        f"CREATE TRIGGER pgtrigger_update_update AFTER UPDATE ON {table} FOR EACH ROW "
        f"WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION pgtrigger_update_update_{table}()"
    )
    return stmts


FLOOR_TABLE = "bench_floor"


def _floor(table: str) -> list[str]:
    """No trigger: the workloads write the events themselves, in the same statement."""
    return [f"CREATE TABLE {table}_event (LIKE bench_pghistory_event INCLUDING ALL)"]


def floor_sql(sql: str, table: str, workload: str) -> str:
    """The write and its events in one statement (a data-modifying CTE): no trigger, no
    function call, no transition table; what remains is the work of storing the events."""
    cols = ", ".join(["id", *DATA_COLUMNS])
    return (
        f"WITH w AS ({sql} RETURNING {cols}) "
        f"INSERT INTO {table}_event (pgh_label, pgh_obj_id, {cols}) "
        f"SELECT '{workload}', id, {cols} FROM w"
    )


def make_variants(levels: bool) -> list[Variant]:
    variants = [
        Variant("untracked", "untracked", "bench_untracked", None, lambda t: []),
        Variant(
            "pghistory",
            "pghistory (auto)",
            "bench_pghistory",
            "bench_pghistory_event",
            _track(None),
            ("set_context", "raw"),
        ),
    ]
    if levels:
        variants += [
            Variant(
                "pgh_row",
                "pghistory row",
                "bench_pgh_row",
                "bench_pgh_row_event",
                _track("row"),
                ("set_context",),
            ),
            Variant(
                "pgh_stmt",
                "pghistory statement",
                "bench_pgh_stmt",
                "bench_pgh_stmt_event",
                _track("statement"),
                ("set_context",),
            ),
        ]
    variants.append(
        Variant(
            "django", "django reference", "bench_django", "bench_django_event", _django, ("raw",)
        )
    )
    variants.append(
        Variant("floor", "floor (no trigger)", FLOOR_TABLE, f"{FLOOR_TABLE}_event", _floor)
    )
    return variants


CONTEXT_SQL = {
    "set_context": """SELECT pghistory.set_context('{"user": 1}')""",
    # django-pghistory's protocol: one statement setting both transaction-local settings
    "raw": (
        "SELECT set_config('pghistory.context_id', gen_random_uuid()::text, true), "
        """set_config('pghistory.context_metadata', '{"user": 1}', true)"""
    ),
    # the same round trip without a context: separates the statement from the context's cost
    "select": "SELECT NULL::uuid",
}


# --------------------------------------------------------------------------------------------
# Server and state
# --------------------------------------------------------------------------------------------


@dataclass
class Config:
    pg: int
    rows: int
    touched: int
    reps: int
    pgbench_reps: int
    seconds: int
    transactions: int  # > 0: pgbench -t instead of -T (quick mode)
    clients: tuple[int, ...]
    only: tuple[str, ...]
    levels: bool
    settings: dict[str, str]
    quick: bool
    pin: bool = True  # pgbench clients and their backends on one CPU each
    foreign: float = 0.1  # share of the CPUs other processes may use during a measurement
    retries: int = 3
    max_wait: float = 120.0


# --------------------------------------------------------------------------------------------
# Foreign load: CPU used by processes that are not this benchmark's (a shared machine)
# --------------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_times(pid_dir: str) -> tuple[int, int, int] | None:
    """(ppid, own cpu ticks, waited-for children's cpu ticks) of one /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid_dir}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2 :].split()  # after "pid (comm) "
    # fields[1] = ppid; [11], [12] = utime, stime; [13], [14] = cutime, cstime
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


class CpuMeter:
    """Machine-wide busy CPU time versus the CPU time of our own processes.

    Ours: this Python process and the programs it waited for (pgbench), and the postmaster with
    every backend it started (live ones from /proc, exited ones through the postmaster's
    children times). Foreign = machine busy - ours: other sessions' tests on a shared machine.
    """

    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster
        self.available = os.path.exists("/proc/stat")

    def snapshot(self) -> tuple[float, float, float]:
        """(wall seconds, machine busy cpu-seconds, our cpu-seconds)."""
        wall = time.monotonic()
        if not self.available:
            return wall, 0.0, 0.0
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:9]]
        busy = sum(vals) - vals[3] - vals[4]  # minus idle and iowait
        ours = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            t = _proc_times(entry)
            if t is None:
                continue
            if int(entry) == self.postmaster:
                ours += t[1] + t[2]
            elif t[0] == self.postmaster:
                ours += t[1]
        self_ru = resource.getrusage(resource.RUSAGE_SELF)
        child_ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        mine = self_ru.ru_utime + self_ru.ru_stime + child_ru.ru_utime + child_ru.ru_stime
        return wall, busy / CLK_TCK, ours / CLK_TCK + mine

    @staticmethod
    def foreign_share(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
        """Share of the machine's CPUs (0..1) used by other processes between two snapshots."""
        wall = b[0] - a[0]
        if wall <= 0:
            return 0.0
        foreign = (b[1] - a[1]) - (b[2] - a[2])
        return max(0.0, foreign / (wall * (os.cpu_count() or 1)))


class Bench:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.variants = make_variants(cfg.levels)
        self.by_key = {v.key: v for v in self.variants}
        self.server: pgserver.PgServer | None = None
        self.admin: psycopg.Connection[Any] | None = None
        self.tmpdir = Path(tempfile.mkdtemp(prefix="pghistory-bench-"))
        self.results: dict[str, Any] = {"bulk": [], "pgbench": [], "size": []}
        self.problems: list[str] = []
        self.meter: CpuMeter | None = None
        self.retried = 0  # measurements repeated because other processes used the CPUs
        self._scripts = 0

    # -- server --------------------------------------------------------------------------
    def start(self) -> None:
        progress(f"starting PostgreSQL {self.cfg.pg}")
        self.server = pgserver.start(self.cfg.pg)
        with psycopg.connect(self.server.dsn(), autocommit=True) as conn:
            for name, value in self.cfg.settings.items():
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        # shared_buffers needs a restart; testing.postgresql keeps the data directory and port
        pg = self.server._pg
        pg.terminate()
        pg.start()
        # pgserver's command line (fsync, synchronous_commit, full_page_writes) outranks ALTER
        # SYSTEM; a per-database setting outranks the command line where the setting allows it.
        with psycopg.connect(self.server.dsn(), autocommit=True) as conn:
            for name, value in self.cfg.settings.items():
                row = conn.execute(
                    "SELECT context, source, setting FROM pg_settings WHERE name = %s", (name,)
                ).fetchone()
                if row and row[0] in ("user", "superuser"):
                    conn.execute(f"ALTER DATABASE postgres SET {name} = '{value}'")
                elif row and row[1] == "command line" and name not in SERVER_SETTINGS:
                    raise SystemExit(
                        f"bench: {name} is fixed by pgserver's command line ({row[2]}); "
                        "--set cannot change it"
                    )
        self.admin = psycopg.connect(self.server.dsn(), autocommit=True)
        self.meter = CpuMeter(int(pg.server_pid))
        progress(f"server {self.server.full_version} at port {self.server.port}")

    def quiet(
        self, prepare: Callable[[], None], measure: Callable[[], dict[str, Any]], what: str
    ) -> dict[str, Any]:
        """Run one measurement while the machine is otherwise idle, as far as we can tell.

        Before: wait (up to --max-wait s) until other processes use less than --foreign of the
        CPUs over half a second. After: if they used more during the measurement, discard it
        and measure again (up to --retries times; the last one is kept and its share recorded).
        """
        assert self.meter is not None
        limit = self.cfg.foreign
        result: dict[str, Any] = {}
        for attempt in range(self.cfg.retries + 1):
            prepare()
            waited = 0.0
            while waited < self.cfg.max_wait:
                a = self.meter.snapshot()
                time.sleep(0.5)
                if CpuMeter.foreign_share(a, self.meter.snapshot()) <= limit:
                    break
                waited += 0.5
            a = self.meter.snapshot()
            result = measure()
            share = CpuMeter.foreign_share(a, self.meter.snapshot())
            result["foreign_cpu"] = round(share, 3)
            result["attempts"] = attempt + 1
            if share <= limit or attempt == self.cfg.retries:
                break
            self.retried += 1
            progress(f"{what}: other processes used {share:.0%} of the CPUs; measuring again")
        return result

    def stop(self) -> None:
        if self.admin is not None:
            self.admin.close()
        if self.server is not None:
            self.server.stop()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def dsn(self) -> str:
        assert self.server is not None
        return self.server.dsn()

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        assert self.admin is not None
        cur = self.admin.execute(query, params or None)
        return cur.fetchall() if cur.description else []

    def settings(self) -> dict[str, str]:
        rows = self.sql(
            "SELECT name, setting || coalesce(' ' || unit, '') , source FROM pg_settings "
            "WHERE name = ANY(%s)",
            list(SHOWN_SETTINGS),
        )
        out = {name: value for name, value, _ in rows}
        out["server_version"] = self.sql("SHOW server_version")[0][0]
        # jit = on means nothing where the build has no LLVM (pixeltable's PostgreSQL 16)
        out["jit_available"] = str(self.sql("SELECT pg_jit_available()")[0][0]).lower()
        for name in (
            "shared_buffers",
            "work_mem",
            "maintenance_work_mem",
            "effective_cache_size",
            "max_wal_size",
        ):
            out[name] = self.sql(f"SHOW {name}")[0][0]
        return {k: out[k] for k in (*SHOWN_SETTINGS, "jit_available") if k in out}

    # -- schema --------------------------------------------------------------------------
    def setup(self) -> None:
        progress(f"creating {len(self.variants)} tables of {self.cfg.rows} rows")
        self.sql("CREATE EXTENSION pghistory")
        self.sql(f"CREATE TABLE bench_source (id bigint NOT NULL, {COLUMNS})")
        self.sql(
            "INSERT INTO bench_source SELECT g, g % 1000, 'name-' || md5(g::text), "
            "(g % 10000) * 0.25, timestamptz '2024-01-01' + g * interval '1 minute', g % 7 "
            f"FROM generate_series(1, {self.cfg.rows}) g"
        )
        for v in self.variants:
            self.sql(
                f"CREATE TABLE {v.table} (id bigint GENERATED BY DEFAULT AS IDENTITY "
                f"(START WITH {IDENTITY_START}) PRIMARY KEY, {COLUMNS})"
            )
            for stmt in v.setup(v.table):
                self.sql(stmt)
        levels = (
            self.sql(
                "SELECT target::text, (SELECT string_agg(t->>'label' || '=' || (t->>'level'), ', ' "
                "ORDER BY t->>'label') FROM jsonb_array_elements(to_jsonb(trackers)) t) "
                "FROM pghistory.tracking ORDER BY 1"
            )
            if self._has_tracking_view()
            else []
        )
        self.results["levels"] = dict(levels)
        self.sql("VACUUM ANALYZE bench_source")

    def _has_tracking_view(self) -> bool:
        return bool(self.sql("SELECT to_regclass('pghistory.tracking') IS NOT NULL")[0][0])

    def reset(self, v: Variant) -> None:
        """Put variant v back to the starting state: same rows, empty history, vacuumed."""
        assert self.admin is not None
        with self.admin.transaction():
            self.sql("SET LOCAL session_replication_role = replica")  # no triggers for the reload
            self.sql(f"TRUNCATE {v.table} RESTART IDENTITY")
            self.sql(f"INSERT INTO {v.table} SELECT * FROM bench_source")
            if v.event_table:
                self.sql(f"TRUNCATE {v.event_table} RESTART IDENTITY")
            self.sql("TRUNCATE pghistory.context")
            if "django" in self.by_key:
                self.sql("TRUNCATE pghistory_context")
        tables = [v.table] + ([v.event_table] if v.event_table else [])
        self.sql(f"VACUUM ANALYZE {', '.join(tables)}")
        self.sql("CHECKPOINT")

    def events(self, v: Variant) -> tuple[int, int, int, int]:
        """(events, events with a context, total bytes, heap bytes) of v's event table."""
        if not v.event_table:
            return 0, 0, 0, 0
        row = self.sql(
            f"SELECT count(*), count(pgh_context_id), pg_total_relation_size('{v.event_table}'), "
            f"pg_table_size('{v.event_table}') FROM {v.event_table}"
        )[0]
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    # -- bulk ----------------------------------------------------------------------------
    def bulk_sql(self, workload: str, table: str) -> str:
        sql = self._bulk_sql(workload, table)
        if table == FLOOR_TABLE and workload != "noop":
            return floor_sql(sql, table, "update" if workload.startswith("update") else workload)
        return sql

    def _bulk_sql(self, workload: str, table: str) -> str:
        n = self.cfg.touched
        if workload in ("update", "update_ctx"):
            return f"UPDATE {table} SET qty = qty + 1, price = price + 1 WHERE id <= {n}"
        if workload == "noop":
            return f"UPDATE {table} SET qty = qty WHERE id <= {n}"
        if workload == "insert":
            return (
                f"INSERT INTO {table} ({', '.join(DATA_COLUMNS)}) "
                f"SELECT g, 'name-' || md5(g::text), g * 0.25, "
                f"timestamptz '2024-01-01' + g * interval '1 minute', g % 7 "
                f"FROM generate_series(1, {n}) g"
            )
        raise ValueError(workload)

    def run_bulk_once(self, workload: str, v: Variant, protocol: str | None) -> dict[str, Any]:
        stmt = self.bulk_sql(workload, v.table)

        def measure() -> dict[str, Any]:
            with psycopg.connect(self.dsn(), autocommit=True) as conn:
                conn.execute("SELECT 1")
                t0 = time.perf_counter()
                conn.execute("BEGIN")
                if protocol:
                    conn.execute(CONTEXT_SQL[protocol])
                conn.execute(stmt)
                conn.execute("COMMIT")
                return {"ms": (time.perf_counter() - t0) * 1000}

        m = self.quiet(lambda: self.reset(v), measure, f"bulk {workload} {v.key}")
        ms = m["ms"]
        events, with_ctx, total, heap = self.events(v)
        expected = 0 if workload == "noop" or not v.event_table else self.cfg.touched
        if events != expected:
            self.problems.append(f"{workload} {v.key}: {events} events, expected {expected}")
        if protocol and with_ctx != events:
            self.problems.append(f"{workload} {v.key}: {events - with_ctx} events without context")
        return {
            "workload": workload,
            "variant": v.key,
            "context": protocol,
            "ms": ms,
            "events": events,
            "bytes": total,
            "heap_bytes": heap,
            "foreign_cpu": m["foreign_cpu"],
            "attempts": m["attempts"],
        }

    def bulk(self) -> None:
        cases: list[tuple[str, Variant, str | None]] = []
        for workload in ("update", "insert", "noop"):
            cases += [(workload, v, None) for v in self.variants]
        for v in self.variants:
            if v.context_protocols:
                cases.append(("update_ctx", v, v.context_protocols[0]))
        workloads = ["update", "insert", "noop", "update_ctx"]
        for rep in range(self.cfg.reps):
            for workload in workloads:
                todo = [c for c in cases if c[0] == workload]
                if rep > 0 and not self.cfg.quick:
                    # django's context upsert per row makes this one statement take ~80 s on
                    # 100k rows (quadratic: every upsert walks the versions of one context row);
                    # one round shows it, more would only make the run long.
                    todo = [c for c in todo if not (c[0] == "update_ctx" and c[1].key == "django")]
                k = rep % len(todo)
                for wl, v, proto in todo[k:] + todo[:k]:  # rotate the order each round
                    r = self.run_bulk_once(wl, v, proto)
                    r["rep"] = rep
                    self.results["bulk"].append(r)
                    progress(f"bulk {wl:<10} {v.key:<10} round {rep + 1}: {r['ms']:9.1f} ms")

    # -- pgbench -------------------------------------------------------------------------
    def pgbench_script(self, workload: str, table: str, shape: str) -> str:
        if workload == "update":
            lines = [
                f"\\set id random(1, {self.cfg.rows})",
                f"UPDATE {table} SET qty = qty + 1 WHERE id = :id;",
            ]
        else:
            lines = [
                "\\set v random(1, 1000000)",
                f"INSERT INTO {table} ({', '.join(DATA_COLUMNS)}) VALUES "
                f"(:v, 'name-' || :v, :v * 0.25, now(), :v % 7);",
            ]
        if table == FLOOR_TABLE:
            lines[1] = floor_sql(lines[1].rstrip(";"), table, workload) + ";"
        if shape == "auto":  # autocommit: the write is the transaction
            return "\n".join(lines) + "\n"
        body = [lines[0], "BEGIN;"]
        if shape != "tx":
            body.append(CONTEXT_SQL[shape] + ";")
        body += [lines[1], "COMMIT;"]
        return "\n".join(body) + "\n"

    def run_pgbench_once(
        self, workload: str, v: Variant, shape: str, clients: int
    ) -> dict[str, Any]:
        q = self.pgbench_run(
            self.pgbench_script(workload, v.table, shape),
            clients,
            lambda: self.reset(v),
            f"pgbench {workload} {v.key} {shape} c={clients}",
        )
        tps, done, lats, pin = q["tps"], q["transactions"], q["latencies"], q["pinned"]
        events, with_ctx, total, heap = self.events(v)
        if v.event_table and events != done:
            self.problems.append(
                f"pgbench {workload} {v.key} {shape}: {events} events for {done} tx"
            )
        if shape in ("set_context", "raw") and with_ctx != events:
            self.problems.append(
                f"pgbench {workload} {v.key} {shape}: {events - with_ctx} events without context"
            )
        return {
            "workload": workload,
            "variant": v.key,
            "shape": shape,
            "clients": clients,
            "tps": tps,
            "pinned": bool(pin),
            "latency_ms": statistics.mean(lats) if lats else None,
            "transactions": done,
            "events": events,
            "bytes": total,
            "heap_bytes": heap,
            "foreign_cpu": q["foreign_cpu"],
            "attempts": q["attempts"],
        }

    def pgbench_run(
        self, script_text: str, clients: int, prepare: Callable[[], None], what: str
    ) -> dict[str, Any]:
        """Run a pgbench script with this many clients (pinned, see below); sum their rates."""
        assert self.server is not None
        self._scripts += 1
        script = self.tmpdir / f"script{self._scripts}.sql"
        script.write_text(script_text)
        duration = (
            ["-t", str(self.cfg.transactions)]
            if self.cfg.transactions
            else ["-T", str(self.cfg.seconds)]
        )
        base = [
            str(self.server.bindir / "pgbench"),
            *("-n", "-M", "prepared", "-f", str(script), *duration),
            *("-h", self.server.host, "-p", str(self.server.port), "-U", self.server.user),
        ]
        pin = self.cfg.pin and clients <= (os.cpu_count() or 1) and shutil.which("taskset")
        if pin:
            # One pgbench per client, each with its backend on a CPU of its own: the rate is the
            # CPU cost of a transaction, not the scheduler's cross-CPU wakeup latency (on a VM
            # an idle vCPU takes tens of microseconds to wake, which dominates 1-client runs).
            cmds = [
                ["taskset", "-c", str(i), *base, "-c", "1", "-j", "1", "postgres"]
                for i in range(clients)
            ]
        else:
            cmds = [[*base, "-c", str(clients), "-j", str(clients), "postgres"]]

        def measure() -> dict[str, Any]:
            procs = []
            for i, cmd in enumerate(cmds):
                env = dict(os.environ, PGAPPNAME=f"pghbench{i}")
                procs.append(
                    subprocess.Popen(
                        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
                    )
                )
            if pin:
                self.pin_backends(clients)
            outs = [(p, *p.communicate()) for p in procs]
            return {"outs": [(p.returncode, out, err) for p, out, err in outs]}

        q = self.quiet(prepare, measure, what)
        tps, lats, done = 0.0, [], 0
        for (rc, out, err), cmd in zip(q["outs"], cmds, strict=True):
            m = re.search(r"tps = ([0-9.]+) \((?:without|excluding)", out)
            lat = re.search(r"latency average = ([0-9.]+) ms", out)
            tx = re.search(r"number of transactions actually processed: (\d+)", out)
            if rc != 0 or not m:
                raise RuntimeError(f"pgbench failed ({' '.join(cmd)}):\n{out}\n{err}")
            tps += float(m.group(1))
            lats += [float(lat.group(1))] if lat else []
            done += int(tx.group(1)) if tx else 0
        return {
            "tps": tps,
            "transactions": done,
            "latencies": lats,
            "pinned": bool(pin),
            "foreign_cpu": q["foreign_cpu"],
            "attempts": q["attempts"],
        }

    def pin_backends(self, clients: int) -> None:
        """Move the backend of pgbench number i (application_name pghbench<i>) to CPU i.

        pgbench opens a first connection (to print the server version) and closes it before
        its client connects, so every new backend is pinned until each pgbench has one that
        ran a statement.
        """
        pinned: set[int] = set()
        ready: set[str] = set()
        deadline = time.monotonic() + 10
        while len(ready) < clients and time.monotonic() < deadline:
            for pid, app, query in self.sql(
                "SELECT pid, application_name, query FROM pg_stat_activity "
                "WHERE application_name LIKE 'pghbench%%'"
            ):
                if pid not in pinned:
                    cpu = app.removeprefix("pghbench")
                    subprocess.run(
                        ["taskset", "-p", "-c", cpu, str(pid)], capture_output=True, check=False
                    )
                    pinned.add(pid)
                elif query:
                    ready.add(app)
            time.sleep(0.005)
        if len(ready) < clients:
            self.problems.append(f"could not pin the backends of {clients} pgbench clients")

    def pgbench(self, context: bool) -> None:
        # (variant, shape) pairs; shape auto = the bare write, tx/select/set_context/raw = in
        # BEGIN ... COMMIT with nothing / a plain SELECT / a context before the write
        if context:
            pairs = []
            for v in self.variants:
                if v.key in ("pghistory", "django"):
                    pairs += [(v, "tx"), (v, "select")] + [(v, p) for p in v.context_protocols]
        else:
            pairs = [(v, "auto") for v in self.variants]
        for rep in range(self.cfg.pgbench_reps):
            for workload in ("update", "insert"):
                for clients in self.cfg.clients:
                    k = rep % len(pairs)
                    for v, shape in pairs[k:] + pairs[:k]:
                        r = self.run_pgbench_once(workload, v, shape, clients)
                        r["rep"] = rep
                        self.results["pgbench"].append(r)
                        progress(
                            f"pgbench {workload} {v.key:<10} {shape:<11} c={clients} "
                            f"round {rep + 1}: {r['tps']:9.1f} tps"
                        )


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def median(xs: Iterable[float]) -> float | None:
    xs = list(xs)
    return statistics.median(xs) if xs else None


def paired_ratio(
    rows: list[dict[str, Any]],
    metric: str,
    num: Callable[[dict[str, Any]], bool],
    den: Callable[[dict[str, Any]], bool],
) -> float | None:
    """Median over rounds of (numerator / denominator) measured in the same round."""
    ratios = []
    for rep in sorted({r["rep"] for r in rows}):
        a = [r[metric] for r in rows if r["rep"] == rep and num(r)]
        b = [r[metric] for r in rows if r["rep"] == rep and den(r)]
        if a and b and b[0]:
            ratios.append(a[0] / b[0])
    return median(ratios)


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, sep, *body])


TARGETS = {  # workload -> (target text, predicate on pghistory's ratio)
    "update": ("<= 2.0x", lambda r: r <= 2.0),
    "insert": ("<= 2.0x", lambda r: r <= 2.0),
    "noop": ("<= 1.2x", lambda r: r <= 1.2),
    "pg_update": (">= 0.85x", lambda r: r >= 0.85),
    "pg_insert": (">= 0.85x", lambda r: r >= 0.85),
    "context": (">= 0.95x", lambda r: r >= 0.95),
}


def verdict(key: str, ratio: float | None) -> str:
    if ratio is None:
        return "-"
    text, ok = TARGETS[key]
    return f"{text} {'met' if ok(ratio) else 'MISSED'}"


def report(b: Bench, meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    cfg = b.cfg
    out: list[str] = []
    summary: dict[str, Any] = {}
    vs = b.variants
    n = cfg.touched
    out.append(
        f"pghistory benchmark: PostgreSQL {meta['settings'].get('server_version')} "
        f"({meta['origin']}), {meta['date']}"
    )
    out.append(f"machine: {meta['nproc']} CPUs, {meta['cpu']}, {meta['memory']}, {meta['os']}")
    out.append(f"extension: {meta['commit']}")
    out.append(
        "settings: "
        + ", ".join(f"{k}={v}" for k, v in meta["settings"].items() if k != "server_version")
    )
    out.append(
        f"table: {cfg.rows} rows (id bigint pk + qty int, name text, price numeric, stamp "
        f"timestamptz, status int); bulk statements touch {n} rows; {cfg.reps} rounds; pgbench "
        + (f"-t {cfg.transactions}" if cfg.transactions else f"-T {cfg.seconds}")
        + f" -M prepared, {cfg.pgbench_reps} rounds"
    )
    if b.results.get("levels"):
        out.append(
            "levels chosen: " + "; ".join(f"{t}: {lv}" for t, lv in b.results["levels"].items())
        )
    out.append("")

    bulk = b.results["bulk"]
    pgb = b.results["pgbench"]
    if bulk or pgb:
        out.append(
            "Ratios to the untracked write (median of per-round ratios; raw medians in "
            "ms for bulk, tps for pgbench). Target applies to pghistory (auto)."
        )
        out.append("")
        headers = ["workload", *(v.title for v in vs), "target (pghistory)"]
        rows = []
        for wl, title in (
            ("update", f"bulk UPDATE {n} rows"),
            ("insert", f"bulk INSERT {n} rows"),
            ("noop", f"no-op UPDATE {n} rows"),
        ):
            rs = [r for r in bulk if r["workload"] == wl]
            if not rs:
                continue
            cells = [title + " (ms)"]
            for v in vs:
                raw = median(r["ms"] for r in rs if r["variant"] == v.key)
                ratio = paired_ratio(
                    rs,
                    "ms",
                    lambda r, k=v.key: r["variant"] == k,
                    lambda r: r["variant"] == "untracked",
                )
                summary[f"bulk.{wl}.{v.key}"] = {"ms": raw, "ratio": ratio}
                cells.append(
                    fmt(raw) + ("" if v.key == "untracked" else f" ({fmt(ratio, '.2f')}x)")
                )
            cells.append(verdict(wl, summary.get(f"bulk.{wl}.pghistory", {}).get("ratio")))
            rows.append(cells)
        for wl, title in (("update", "single-row UPDATE"), ("insert", "single-row INSERT")):
            for c in cfg.clients:
                rs = [
                    r
                    for r in pgb
                    if r["workload"] == wl and r["clients"] == c and r["shape"] == "auto"
                ]
                if not rs:
                    continue
                cells = [f"{title}, {c} client{'s' if c > 1 else ''} (tps)"]
                for v in vs:
                    raw = median(r["tps"] for r in rs if r["variant"] == v.key)
                    ratio = paired_ratio(
                        rs,
                        "tps",
                        lambda r, k=v.key: r["variant"] == k,
                        lambda r: r["variant"] == "untracked",
                    )
                    summary[f"pgbench.{wl}.c{c}.{v.key}"] = {"tps": raw, "ratio": ratio}
                    cells.append(
                        fmt(raw, ".0f")
                        + ("" if v.key == "untracked" else f" ({fmt(ratio, '.2f')}x)")
                    )
                cells.append(
                    verdict(
                        f"pg_{wl}", summary.get(f"pgbench.{wl}.c{c}.pghistory", {}).get("ratio")
                    )
                )
                rows.append(cells)
        out.append(table(headers, rows))
        out.append("")

    # context
    ctx_rows = []
    for v in vs:
        for proto in v.context_protocols:
            rs = [
                r
                for r in bulk
                if r["workload"] in ("update", "update_ctx") and r["variant"] == v.key
            ]
            with_ctx = [r for r in rs if r["context"] == proto]
            if not with_ctx:
                continue
            base = median(r["ms"] for r in rs if r["context"] is None)
            withc = median(r["ms"] for r in with_ctx)
            ratio = paired_ratio(
                rs, "ms", lambda r: r["context"] is None, lambda r, p=proto: r["context"] == p
            )  # time ratio inverted
            summary[f"context.bulk.{v.key}.{proto}"] = {
                "ms": withc,
                "ms_without": base,
                "ratio": ratio,
            }
            ctx_rows.append(
                [
                    f"bulk UPDATE {n} rows",
                    v.title,
                    proto,
                    fmt(n / base * 1000 if base else None, ".0f"),
                    "-",
                    fmt(n / withc * 1000 if withc else None, ".0f"),
                    fmt(ratio, ".3f"),
                    "-",
                    verdict("context", ratio) if v.key == "pghistory" else "",
                ]
            )
    for wl, title in (("update", "single-row UPDATE"), ("insert", "single-row INSERT")):
        for c in cfg.clients:
            for v in vs:
                rs = [
                    r
                    for r in pgb
                    if r["workload"] == wl
                    and r["clients"] == c
                    and r["variant"] == v.key
                    and r["shape"] != "auto"
                ]
                tx = median(r["tps"] for r in rs if r["shape"] == "tx")
                sel = median(r["tps"] for r in rs if r["shape"] == "select")
                for proto in v.context_protocols:
                    withc = median(r["tps"] for r in rs if r["shape"] == proto)
                    if withc is None:
                        continue
                    r_tx = paired_ratio(
                        rs, "tps", lambda r, p=proto: r["shape"] == p, lambda r: r["shape"] == "tx"
                    )
                    r_sel = paired_ratio(
                        rs,
                        "tps",
                        lambda r, p=proto: r["shape"] == p,
                        lambda r: r["shape"] == "select",
                    )
                    summary[f"context.pgbench.{wl}.c{c}.{v.key}.{proto}"] = {
                        "tps": withc,
                        "tps_tx": tx,
                        "tps_select": sel,
                        "ratio_tx": r_tx,
                        "ratio_select": r_sel,
                    }
                    ctx_rows.append(
                        [
                            f"{title}, {c} client{'s' if c > 1 else ''}",
                            v.title,
                            proto,
                            fmt(tx, ".0f"),
                            fmt(sel, ".0f"),
                            fmt(withc, ".0f"),
                            fmt(r_tx, ".3f"),
                            fmt(r_sel, ".3f"),
                            verdict("context", r_tx) if v.key == "pghistory" else "",
                        ]
                    )
    if ctx_rows:
        out.append(
            "Context cost: events per second without and with a context, same run. "
            "'BEGIN;W;COMMIT' is the write in a transaction, '+SELECT' adds a plain "
            "SELECT (the round trip the context statement costs), 'with context' "
            "sets one in the same place. Ratio = with / without (higher is better)."
        )
        out.append("")
        out.append(
            table(
                [
                    "workload",
                    "variant",
                    "protocol",
                    "events/s BEGIN;W;COMMIT",
                    "events/s +SELECT",
                    "events/s with context",
                    "ratio vs tx",
                    "ratio vs +SELECT",
                    "target (5%)",
                ],
                ctx_rows,
            )
        )
        out.append("")

    # bytes per event
    size_rows = []
    for label, pick in (
        (
            f"bulk UPDATE {n} rows, no context",
            lambda r: r.get("workload") == "update" and r.get("context") is None and "ms" in r,
        ),
        (f"bulk UPDATE {n} rows, one context", lambda r: r.get("workload") == "update_ctx"),
        (
            "single-row INSERT, context per transaction",
            lambda r: r.get("workload") == "insert" and r.get("shape") in ("set_context", "raw"),
        ),
    ):
        cells = [label]
        per: dict[str, float | None] = {}
        for v in vs:
            if not v.event_table:
                continue
            rs = [r for r in bulk + pgb if r["variant"] == v.key and pick(r) and r["events"]]
            if "shape" in (rs[0] if rs else {}):
                rs = [r for r in rs if r["shape"] == v.context_protocols[0]]
            total = median(r["bytes"] / r["events"] for r in rs)
            heap = median(r["heap_bytes"] / r["events"] for r in rs)
            per[v.key] = total
            cells.append("-" if total is None else f"{total:.0f} ({heap:.0f} heap)")
        if any(x is not None for x in per.values()):
            summary[f"bytes.{label}"] = per
            dj, ph = per.get("django"), per.get("pghistory")
            cells.append(
                "-"
                if not dj or not ph
                else f"{ph / dj:.2f}x django: {'met' if ph <= dj else 'MISSED'}"
            )
            size_rows.append(cells)
    if size_rows:
        out.append(
            "Bytes per event on disk: pg_total_relation_size(event table) / events "
            "(heap part in parentheses), right after the measured run."
        )
        out.append("")
        out.append(
            table(
                [
                    "history written by",
                    *(v.title for v in vs if v.event_table),
                    "pghistory vs django (<= 1.0x)",
                ],
                size_rows,
            )
        )
        out.append("")

    shares = [r.get("foreign_cpu", 0.0) for r in bulk + pgb]
    if shares:
        out.append(
            f"Other processes on the machine used at most {max(shares):.0%} of the CPUs during a "
            f"kept measurement (median {statistics.median(shares):.1%}); {b.retried} "
            f"measurement(s) were discarded and repeated because they used more than "
            f"{cfg.foreign:.0%}."
        )
    if b.problems:
        out.append("PROBLEMS (events not as expected):")
        out += [f"  - {p}" for p in b.problems]
    else:
        out.append("Every measured run wrote the expected events (counts and contexts checked).")
    return "\n".join(out), summary


def machine() -> dict[str, Any]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "log", "-1", "--format=%h %cs %s", "--", "extension"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "extension"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        commit = head[:72] + (" + uncommitted changes in extension/" if dirty else "")
    except OSError:
        commit = "?"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "commit": commit,
        "os": f"{platform.system()} {platform.release()}",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def parse_args(argv: list[str]) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--pg", type=int, default=15, choices=pgserver.SUPPORTED_VERSIONS)
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 20k rows, 10k touched, 1 round, pgbench -t 1000",
    )
    p.add_argument("--json", metavar="PATH", help="also write all measurements to PATH")
    p.add_argument("--rows", type=int, help="rows in the table (default 200000)")
    p.add_argument("--touched", type=int, help="rows per bulk statement (default 100000)")
    p.add_argument("--reps", type=int, help="rounds of bulk measurements (default 5)")
    p.add_argument("--pgbench-reps", type=int, help="rounds of pgbench runs (default 3)")
    p.add_argument("--seconds", type=int, default=5, help="pgbench -T per run (default 5)")
    p.add_argument("--clients", default="1,2", help="pgbench client counts (default 1,2)")
    p.add_argument(
        "--only",
        default="bulk,pgbench,context",
        help="comma-separated parts among bulk, pgbench, context",
    )
    p.add_argument(
        "--no-levels", action="store_true", help="skip the level => row / statement variants"
    )
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="do not give each pgbench client and its backend a CPU of its own",
    )
    p.add_argument(
        "--foreign",
        type=float,
        default=0.10,
        help="remeasure when other processes used more than this share of the CPUs "
        "during a measurement (default 0.10; 1 disables)",
    )
    p.add_argument("--retries", type=int, default=3, help="remeasurements at most (default 3)")
    p.add_argument(
        "--max-wait",
        type=float,
        default=120.0,
        help="seconds to wait for a quiet machine before a measurement (default 120)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="server setting applied with ALTER SYSTEM (repeatable), e.g. jit=off",
    )
    a = p.parse_args(argv)
    settings = dict(SERVER_SETTINGS)
    for item in a.set:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[a-z_.]+", name):
            p.error(f"--set takes NAME=VALUE, not {item!r}")
        settings[name] = value
    only = tuple(x.strip() for x in a.only.split(",") if x.strip())
    bad = [x for x in only if x not in ("bulk", "pgbench", "context")]
    if bad:
        p.error(f"--only: unknown part(s) {bad}")
    q = a.quick
    cfg = Config(
        pg=a.pg,
        rows=a.rows or (20_000 if q else 200_000),
        touched=a.touched or (10_000 if q else 100_000),
        reps=a.reps or (1 if q else 5),
        pgbench_reps=a.pgbench_reps or (1 if q else 3),
        seconds=a.seconds,
        transactions=1000 if q else 0,
        clients=tuple(int(c) for c in a.clients.split(",")),
        only=only,
        levels=not a.no_levels,
        settings=settings,
        quick=q,
        pin=not a.no_pin,
        foreign=a.foreign,
        retries=0 if q else a.retries,  # the smoke run only proves the script works
        max_wait=0.0 if q else a.max_wait,
    )
    return cfg, a


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: stop the server, remove its files


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    b = Bench(cfg)
    try:
        try:
            b.start()
        except pgserver.PgServerError as exc:
            say(f"bench: could not start PostgreSQL {cfg.pg}: {exc}")
            return 2
        b.setup()
        meta = machine()
        assert b.server is not None
        meta["settings"] = b.settings()
        meta["origin"] = f"{b.server.installation.origin}, {b.server.bindir}"
        if "bulk" in cfg.only:
            b.bulk()
        if "pgbench" in cfg.only:
            b.pgbench(context=False)
        if "context" in cfg.only:
            b.pgbench(context=True)
        text, summary = report(b, meta)
        say("")
        say(text)
        say(f"\n(total {time.monotonic() - started:.0f}s)")
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "meta": meta,
                        "config": cfg.__dict__,
                        "summary": summary,
                        "problems": b.problems,
                        "levels": b.results.get("levels"),
                        "retried": b.retried,
                        "bulk": b.results["bulk"],
                        "pgbench": [
                            {k: v for k, v in r.items() if k != "proc"}
                            for r in b.results["pgbench"]
                        ],
                    },
                    indent=1,
                    default=str,
                )
                + "\n"
            )
            say(f"wrote {args.json}")
        return 1 if b.problems else 0
    finally:
        b.stop()


if __name__ == "__main__":
    sys.exit(main())
