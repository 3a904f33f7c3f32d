"""Reading history for people: filters, pages, object timelines and exports.

One filter model serves the web browser (``pghist.web``) and ``pghistory export``:
:func:`parse_filters` turns request or command-line text into :class:`Filters`, whose
conditions become SQL through ``psycopg.sql`` and bound parameters only (request text
never becomes SQL; tables are looked up in ``pghistory.tracking`` and used as regclass).

Everything reads as the connecting role: ``pghistory.events`` shows only the event tables
that role may read, and the keys of a page come from those same event tables.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import heapq
import io
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TextIO

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

__all__ = [
    "EXPORT_COLUMNS",
    "EventTable",
    "FilterError",
    "Filters",
    "Page",
    "compare_versions",
    "event_tables",
    "export",
    "export_lines",
    "object_timeline",
    "overview",
    "page",
    "parse_filters",
]

Connection = psycopg.Connection[Any]

# The columns of pghistory.events, in its order: what an export holds.
EXPORT_COLUMNS = (
    "pgh_slug",
    "pgh_model",
    "pgh_id",
    "pgh_created_at",
    "pgh_label",
    "pgh_obj_model",
    "pgh_obj_id",
    "pgh_data",
    "pgh_diff",
    "pgh_context_id",
    "pgh_context",
)
FORMATS = ("csv", "jsonl")


class FilterError(ValueError):
    """A filter that cannot be used: the message names the bad value, the hint what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclasses.dataclass(frozen=True)
class EventTable:
    """One event table the connecting role may read (a row of ``pghistory.tracking``)."""

    oid: int
    name: str  # the event table as regclass text
    schema: str
    relname: str
    target_oid: int
    target: str  # the tracked table as regclass text
    obj_field: str | None
    context_mode: str
    context_field: str | None

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.relname)


@dataclasses.dataclass(frozen=True)
class Filters:
    """What to show: every field optional; ``tables`` are the event tables in scope."""

    tables: tuple[EventTable, ...]
    table: str | None = None  # the tracked table asked for (regclass text), None for all
    obj: str | None = None
    label: str | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    context: tuple[tuple[str, str], ...] = ()

    def query_items(self) -> list[tuple[str, str]]:
        """The filters as query-string items (what produced them, normalised)."""
        items: list[tuple[str, str]] = []
        if self.table is not None:
            items.append(("table", self.table))
        if self.obj is not None:
            items.append(("obj", self.obj))
        if self.label is not None:
            items.append(("label", self.label))
        if self.since is not None:
            items.append(("since", self.since.isoformat()))
        if self.until is not None:
            items.append(("until", self.until.isoformat()))
        items.extend(("context", f"{key}:{value}") for key, value in self.context)
        return items

    # -- conditions on pghistory.events (exports) ----------------------------------------
    def events_where(self) -> tuple[sql.Composable, list[object]]:
        """WHERE conditions on ``pghistory.events`` and their parameters."""
        conditions: list[sql.Composable] = []
        params: list[object] = []
        if self.table is not None:
            conditions.append(sql.SQL("pgh_obj_model = %s::regclass"))
            params.append(self.table)
        if self.obj is not None:
            conditions.append(sql.SQL("pgh_obj_id = %s::text"))
            params.append(self.obj)
        common, common_params = self._common(
            sql.Identifier("pgh_context"), by_id=None, context_json=True
        )
        conditions.extend(common)
        params.extend(common_params)
        return _and(conditions), params

    # -- conditions on one event table (the keys of a page) ------------------------------
    def table_where(self, table: EventTable) -> tuple[sql.Composable, list[object]]:
        conditions: list[sql.Composable] = []
        params: list[object] = []
        if self.obj is not None:
            if table.obj_field is None:
                conditions.append(sql.SQL("false"))
            else:
                # the text form is indexed (pghistory.events filters on it too)
                conditions.append(
                    sql.SQL("{}::text = %s::text").format(sql.Identifier(table.obj_field))
                )
                params.append(self.obj)
        context_column = sql.Identifier(table.context_field) if table.context_field else None
        common, common_params = self._common(
            context_column,
            by_id=table.context_mode == "id",
            context_json=table.context_mode == "json",
        )
        conditions.extend(common)
        params.extend(common_params)
        return _and(conditions), params

    def _common(
        self, context_column: sql.Identifier | None, *, by_id: bool | None, context_json: bool
    ) -> tuple[list[sql.Composable], list[object]]:
        conditions: list[sql.Composable] = []
        params: list[object] = []
        if self.label is not None:
            conditions.append(sql.SQL("pgh_label = %s::text"))
            params.append(self.label)
        if self.since is not None:
            conditions.append(sql.SQL("pgh_created_at >= %s::timestamptz"))
            params.append(self.since)
        if self.until is not None:
            conditions.append(sql.SQL("pgh_created_at < %s::timestamptz"))
            params.append(self.until)
        for key, value in self.context:
            if context_column is None:
                conditions.append(sql.SQL("false"))  # this history records no context
            elif by_id:
                conditions.append(
                    sql.SQL(
                        "{} IN (SELECT c.id FROM pghistory.context c"
                        " WHERE c.metadata ->> %s::text = %s::text)"
                    ).format(context_column)
                )
                params.extend([key, value])
            elif context_json:
                conditions.append(sql.SQL("{} ->> %s::text = %s::text").format(context_column))
                params.extend([key, value])
            else:
                conditions.append(sql.SQL("false"))
        return conditions, params


def _and(conditions: Sequence[sql.Composable]) -> sql.Composable:
    if not conditions:
        return sql.SQL("true")
    return sql.SQL(" AND ").join(conditions)


# --- what the role may read ------------------------------------------------------------------


def event_tables(conn: Connection) -> list[EventTable]:
    """The event tables the connecting role may read, ordered by tracked table and name."""
    rows = conn.execute(
        """
        SELECT t.event_table::oid, t.event_table::text, n.nspname, c.relname,
               t.target::oid, t.target::text, t.obj_field::text, t.context_mode::text,
               t.context_field::text
        FROM pghistory.tracking t
        JOIN pg_catalog.pg_class c ON c.oid = t.event_table
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE pg_catalog.has_table_privilege(t.event_table, 'SELECT')
        ORDER BY t.target::text, t.event_table::text
        """
    ).fetchall()
    return [EventTable(*row) for row in rows]


# --- parsing -----------------------------------------------------------------------------------

_CURSOR_RE = re.compile(r"^\d+\.\d+(-\d+\.\d+)*$")


def _timestamp(name: str, text: str) -> datetime.datetime:
    value = text.strip()
    if re.search(r"\d \d\d:\d\d$", value):
        value = value[:-6] + "+" + value[-5:]  # a '+' of an offset that a URL turned into a space
    try:
        parsed = datetime.datetime.fromisoformat(
            value.replace(" ", "T", 1) if " " in value else value
        )
    except ValueError:
        raise FilterError(
            f"{name}={text!r} is not a timestamp",
            "Use ISO 8601, e.g. 2026-12-01 or 2026-12-01T13:45:00+00:00.",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def _context(text: str) -> tuple[str, str]:
    key, sep, value = text.partition(":")
    if not sep or not key.strip():
        raise FilterError(
            f"context={text!r} is not key:value",
            "Filter on a context key, e.g. context=user:42 or context=url:/orders.",
        )
    return key.strip(), value


def parse_filters(
    conn: Connection,
    *,
    table: str | None = None,
    obj: str | None = None,
    label: str | None = None,
    since: str | None = None,
    until: str | None = None,
    context: Iterable[str] = (),
) -> Filters:
    """Check the filters (text from a request or a command line) against the database.

    Empty strings count as absent (an HTML form sends them). Raises :class:`FilterError`
    naming the bad value: an unknown or untracked table, ``obj`` without ``table``, a
    timestamp that does not parse, a context filter that is not ``key:value``.
    """
    table = table or None
    obj = obj if obj not in (None, "") else None
    label = label or None
    tables = event_tables(conn)
    chosen = tables
    target: str | None = None
    if table is not None:
        if len(table) > 200 or "\x00" in table:
            raise FilterError(f"table={table[:60]!r}... is not a table name")
        # to_regclass reads the name as a bound value: never SQL
        try:
            row = conn.execute(
                "SELECT c.oid::regclass::text, c.oid FROM pg_catalog.pg_class c"
                " WHERE c.oid = pg_catalog.to_regclass(%s::text)",
                (table,),
            ).fetchone()
        except (psycopg.errors.InvalidName, psycopg.errors.SyntaxError):
            row = None  # not even a name: reported below like an unknown table
        chosen = [t for t in tables if row is not None and t.target_oid == row[1]]
        if not chosen:
            names = ", ".join(sorted({t.target for t in tables})) or "none"
            raise FilterError(
                f"unknown table {table!r}: not a tracked table whose history you may read",
                f"Tracked tables you may read: {names}.",
            )
        target = str(row[0]) if row is not None else None
    if obj is not None and table is None:
        raise FilterError(f"obj={obj!r} needs table=", "Say whose object it is: table=...&obj=...")
    filters = Filters(
        tables=tuple(chosen),
        table=target,
        obj=obj,
        label=label,
        since=_timestamp("since", since) if since else None,
        until=_timestamp("until", until) if until else None,
        context=tuple(_context(item) for item in context if item),
    )
    if filters.since and filters.until and filters.since >= filters.until:
        raise FilterError(
            f"since={since!r} is not before until={until!r}", "The time range is empty."
        )
    return filters


# --- a page of the filtered history --------------------------------------------------------


@dataclasses.dataclass
class Page:
    events: list[dict[str, Any]]
    next_cursor: str | None  # the keyset position after this page, None on the last page


def _parse_cursor(text: str | None) -> dict[int, int]:
    if not text:
        return {}
    if len(text) > 4000 or not _CURSOR_RE.match(text):
        raise FilterError(
            f"before={text[:60]!r} is not a page position",
            "Follow the page links; positions look like 16384.1200-16390.55.",
        )
    return {int(a): int(b) for a, b in (part.split(".") for part in text.split("-"))}


def page(conn: Connection, filters: Filters, before: str | None = None, limit: int = 50) -> Page:
    """One page of the filtered history, newest first, with diffs and contexts.

    Keyset pagination: ``before`` holds, per event table, the last ``pgh_id`` already
    shown; each event table is read backwards along its primary key (an index scan that
    stops after ``limit`` rows), and the tables' events are merged by time. Then the page's
    rows (data, diff, context) come from ``pghistory.events``, looked up by object so that
    the diff of each is computed for those objects only.
    """
    positions = _parse_cursor(before)
    streams: list[list[tuple[datetime.datetime, int, int, str | None]]] = []
    for table in filters.tables:
        where, params = filters.table_where(table)
        if table.oid in positions:
            where = sql.SQL("{} AND pgh_id < %s::bigint").format(where)
            params.append(positions[table.oid])
        obj = (
            sql.SQL("{}::text").format(sql.Identifier(table.obj_field))
            if table.obj_field
            else sql.SQL("NULL::text")
        )
        rows = conn.execute(
            sql.SQL(
                "SELECT pgh_created_at, pgh_id, {obj} FROM {table} WHERE {where}"
                " ORDER BY pgh_id DESC LIMIT %s"
            ).format(obj=obj, table=table.identifier, where=where),
            [*params, limit + 1],
        ).fetchall()
        streams.append([(row[0], table.oid, row[1], row[2]) for row in rows])
    # Merge the streams newest first; each stream is consumed as a prefix, so the positions
    # below resume exactly where this page stops.
    merged = heapq.merge(*streams, key=lambda item: (item[0], item[1], item[2]), reverse=True)
    keys: list[tuple[datetime.datetime, int, int, str | None]] = []
    for item in merged:
        if len(keys) == limit:
            break
        keys.append(item)
    new_positions = dict(positions)
    for _, oid, pgh_id, _ in keys:
        new_positions[oid] = pgh_id
    consumed: dict[int, int] = {}
    for _, oid, _, _ in keys:
        consumed[oid] = consumed.get(oid, 0) + 1
    more = any(len(stream) > consumed.get(stream[0][1], 0) for stream in streams if stream)
    events = _rows(conn, [(oid, pgh_id, obj) for _, oid, pgh_id, obj in keys], filters.tables)
    cursor = "-".join(f"{oid}.{pgh_id}" for oid, pgh_id in sorted(new_positions.items()))
    return Page(events=events, next_cursor=cursor if more else None)


def _rows(
    conn: Connection, keys: Sequence[tuple[int, int, str | None]], tables: Sequence[EventTable]
) -> list[dict[str, Any]]:
    """The rows of ``pghistory.events`` for these (event table, pgh_id, object) keys, in order."""
    by_oid = {t.oid: t for t in tables}
    wanted: dict[int, tuple[set[int], set[str]]] = {}
    for oid, pgh_id, obj in keys:
        ids, objs = wanted.setdefault(oid, (set(), set()))
        ids.add(pgh_id)
        if obj is not None:
            objs.add(obj)
    found: dict[tuple[int, int], dict[str, Any]] = {}
    for oid, (ids, objs) in wanted.items():
        table = by_oid[oid]
        conditions = [sql.SQL("pgh_model = %s::oid::regclass")]
        params: list[object] = [oid]
        if table.obj_field:
            # the object filter reaches the event table (it is the diff window's partition)
            conditions.append(
                sql.SQL("pgh_obj_model = %s::oid::regclass AND pgh_obj_id = ANY (%s::text[])")
            )
            params += [table.target_oid, sorted(objs)]
        conditions.append(sql.SQL("pgh_id = ANY (%s::bigint[])"))
        params.append(sorted(ids))
        query = sql.SQL("SELECT * FROM pghistory.events WHERE {}").format(_and(conditions))
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            for row in cur:
                found[(oid, row["pgh_id"])] = row
    return [found[(oid, pgh_id)] for oid, pgh_id, _ in keys if (oid, pgh_id) in found]


# --- overview ------------------------------------------------------------------------------------

# Above this many rows (the planner's estimate) counts come from statistics, not count(*).
EXACT_BELOW = 100_000
CHART_BARS = 48
CHART_SAMPLES = 600


def overview(conn: Connection) -> list[dict[str, Any]]:
    """Per readable event table: events, objects, last change and activity over time.

    Constant time whatever the history's size: small tables are counted, big ones
    estimated from the planner's statistics (``exact`` says which); the activity chart
    samples ``pgh_id`` evenly (one index lookup each) rather than reading every event.
    """
    result = []
    for table in event_tables(conn):
        estimate, distinct = conn.execute(
            """
            SELECT greatest(c.reltuples, 0)::bigint,
                   (SELECT s.n_distinct FROM pg_catalog.pg_stats s
                    WHERE s.schemaname = %s AND s.tablename = %s AND s.attname = %s)
            FROM pg_catalog.pg_class c WHERE c.oid = %s::oid
            """,
            (table.schema, table.relname, table.obj_field, table.oid),
        ).fetchone() or (0, None)
        obj = sql.Identifier(table.obj_field) if table.obj_field else sql.SQL("NULL")
        exact = estimate < EXACT_BELOW
        if exact:
            events, objects = conn.execute(
                sql.SQL("SELECT count(*), count(DISTINCT {}) FROM {}").format(obj, table.identifier)
            ).fetchone() or (0, 0)
        else:
            events = estimate
            objects = (
                None
                if distinct is None or table.obj_field is None
                else int(distinct if distinct > 0 else -distinct * estimate)
            )
        first = conn.execute(
            sql.SQL("SELECT pgh_id, pgh_created_at FROM {} ORDER BY pgh_id LIMIT 1").format(
                table.identifier
            )
        ).fetchone()
        last = conn.execute(
            sql.SQL("SELECT pgh_id, pgh_created_at FROM {} ORDER BY pgh_id DESC LIMIT 1").format(
                table.identifier
            )
        ).fetchone()
        times: list[datetime.datetime] = []
        step = 1
        if first is not None and last is not None:
            span = last[0] - first[0] + 1
            step = max(1, span // CHART_SAMPLES)
            times = [
                row[0]
                for row in conn.execute(
                    sql.SQL(
                        "SELECT pgh_created_at FROM {} WHERE pgh_id = ANY (ARRAY("
                        "SELECT pg_catalog.generate_series(%s::bigint, %s::bigint, %s::bigint)))"
                    ).format(table.identifier),
                    (first[0], last[0], step),
                )
            ]
        result.append(
            {
                "table": table,
                "events": int(events),
                "objects": objects,
                "exact": exact,
                "last_change": last[1] if last else None,
                "chart": _chart(times, step),
            }
        )
    return result


def _chart(times: Sequence[datetime.datetime], weight: int) -> dict[str, Any]:
    """Bars of events over time: ``times`` sampled one per ``weight`` events."""
    if not times:
        return {"bars": [], "start": None, "end": None, "max": 0}
    start, end = min(times), max(times)
    width = (end - start).total_seconds() or 1.0
    counts = [0] * CHART_BARS
    for moment in times:
        index = min(CHART_BARS - 1, int((moment - start).total_seconds() / width * CHART_BARS))
        counts[index] += weight
    top = max(counts) or 1
    bar_width = (end - start) / CHART_BARS
    bars = [
        {
            "x": i * 6,
            "height": round(36 * count / top, 1) if count else 0,
            "count": count,
            "from": start + bar_width * i,
        }
        for i, count in enumerate(counts)
    ]
    return {"bars": bars, "start": start, "end": end, "max": top}


# --- an object's timeline ------------------------------------------------------------------------


def has_related_events(conn: Connection) -> bool:
    row = conn.execute(
        "SELECT pg_catalog.to_regprocedure('pghistory.related_events(regclass,text)') IS NOT NULL"
    ).fetchone()
    return bool(row and row[0])


def object_timeline(conn: Connection, filters: Filters) -> tuple[list[dict[str, Any]], bool]:
    """The object's events merged with those of rows referencing it, oldest first.

    ``pghistory.related_events`` does the work; on an extension older than 1.2 (without
    it) the object's own events only, and False.
    """
    if filters.table is None or filters.obj is None:
        raise FilterError("an object timeline needs table= and obj=")
    with conn.cursor(row_factory=dict_row) as cur:
        if has_related_events(conn):
            cur.execute(
                "SELECT * FROM pghistory.related_events(%s::regclass, %s::text)",
                (filters.table, filters.obj),
            )
            return cur.fetchall(), True
        cur.execute(
            "SELECT * FROM pghistory.events WHERE pgh_obj_model = %s::regclass"
            " AND pgh_obj_id = %s::text ORDER BY pgh_created_at, pgh_id",
            (filters.table, filters.obj),
        )
        return cur.fetchall(), False


def compare_versions(
    a: Mapping[str, Any] | None, b: Mapping[str, Any] | None
) -> list[tuple[str, Any, Any, bool]]:
    """Side by side: (column, value in a, value in b, differs) over both versions' columns."""
    data_a = dict((a or {}).get("pgh_data") or {})
    data_b = dict((b or {}).get("pgh_data") or {})
    columns = list(data_a) + [c for c in data_b if c not in data_a]
    return [(c, data_a.get(c), data_b.get(c), data_a.get(c) != data_b.get(c)) for c in columns]


# --- exports -------------------------------------------------------------------------------------


# How each column of pghistory.events is written: by the server, as text (JSON columns as JSON,
# timestamps as JSON writes them, ISO 8601), so that the client only moves strings.
_TEXT = {
    "pgh_model": sql.SQL("e.pgh_model::text"),
    "pgh_created_at": sql.SQL("pg_catalog.to_json(e.pgh_created_at) #>> '{}'"),
    "pgh_obj_model": sql.SQL("e.pgh_obj_model::text"),
}


def _export_query(filters: Filters, fmt: str) -> tuple[sql.Composed, list[object]]:
    if fmt not in FORMATS:
        raise FilterError(f"format={fmt!r} is not one of {', '.join(FORMATS)}")
    where, params = filters.events_where()
    if fmt == "csv":
        columns: sql.Composable = sql.SQL(", ").join(
            _TEXT.get(c, sql.SQL("e.{}::text").format(sql.Identifier(c))) for c in EXPORT_COLUMNS
        )
    else:
        # one JSON object per row, keys in the view's order, built by the server
        columns = sql.SQL("pg_catalog.json_build_object({})::text").format(
            sql.SQL(", ").join(
                sql.SQL("{}, {}").format(
                    sql.Literal(c),
                    sql.SQL("e.{}::text" if c in ("pgh_model", "pgh_obj_model") else "e.{}").format(
                        sql.Identifier(c)
                    ),
                )
                for c in EXPORT_COLUMNS
            )
        )
    # e.pgh_model: the regclass (as ORDER BY pghistory.events would), not a text column
    query = sql.SQL(
        "SELECT {columns} FROM pghistory.events e WHERE {where}"
        " ORDER BY e.pgh_created_at, e.pgh_model, e.pgh_id"
    ).format(columns=columns, where=where)
    return query, params


def export_lines(conn: Connection, filters: Filters, fmt: str, batch: int = 5000) -> Iterator[str]:
    """The filtered events as ``csv`` (a header line, then a line per event) or ``jsonl``,
    oldest first, read from a server-side cursor ``batch`` rows at a time: constant memory
    whatever the history's size. The cursor lives in a transaction opened here.
    """
    query, params = _export_query(filters, fmt)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    with conn.transaction():
        conn.execute("SET LOCAL jit = off")  # one long scan: compiling it does not pay
        with conn.cursor(name="pghistory_export") as cur:
            cur.itersize = batch
            cur.execute(query, params)
            if fmt == "jsonl":
                for (line,) in cur:
                    yield line + "\n"
                return
            writer.writerow(EXPORT_COLUMNS)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            for row in cur:
                writer.writerow(row)
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()


def export(
    conn: Connection,
    filters: Filters,
    fmt: str,
    out: TextIO,
    progress: Callable[[int, float], None] | None = None,
    *,
    every: int = 10_000,
) -> int:
    """Write the filtered events to ``out`` as ``csv`` or ``jsonl``; returns how many."""
    count = -1 if fmt == "csv" else 0  # the CSV header is a line too
    started = time.monotonic()
    for line in export_lines(conn, filters, fmt):
        out.write(line)
        count += 1
        if progress is not None and count > 0 and count % every == 0:
            progress(count, time.monotonic() - started)
    count = max(count, 0)
    if progress is not None:
        progress(count, time.monotonic() - started)
    return count
