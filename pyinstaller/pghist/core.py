"""The wrappers: each call is one SQL statement of the extension (no logic here)."""

from __future__ import annotations

import datetime
import enum
import functools
import inspect
import uuid
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar, cast

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from . import _context
from ._context import current_context, dumps, json_default, metadata_json
from ._run import Execute, Notices, Steps, dual
from ._sql import Fragment, call, join, param
from .errors import translate
from .trackers import Tracker

__all__ = [
    "apply_context",
    "as_of",
    "backfill",
    "context",
    "create_event",
    "events",
    "json_default",
    "prune",
    "revert",
    "status",
    "sync",
    "track",
    "untrack",
    "verify",
    "version",
]

Connection = psycopg.Connection[Any]
AsyncConnection = psycopg.AsyncConnection[Any]
T = TypeVar("T")
_F = TypeVar("_F", bound=Callable[..., Any])


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET


def _names(value: Sequence[str] | None, what: str) -> Fragment | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"{what}= takes a list of column names, not a string")
    return param(list(value), "text[]")


def _text(value: str | None) -> Fragment | None:
    return None if value is None else param(value, "text")


def _select(function: Fragment) -> Execute:
    return Execute(sql.SQL("SELECT {}").format(function.query), function.params)


def track_sql(
    target: str,
    *trackers: Tracker,
    fields: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    model_name: str | None = None,
    obj_field: str | _Unset | None = UNSET,
    context_field: str | None = None,
    context_mode: str | None = None,
    append_only: bool | None = None,
    level: str | None = None,
    partition_by: str | None = None,
) -> Fragment:
    """The ``SELECT pghistory.track(...)`` statement :func:`track` runs."""
    for tracker in trackers:
        if not isinstance(tracker, Tracker):
            raise TypeError(f"track() takes trackers (InsertEvent(), ...), got {tracker!r}")
    tracker_array = None
    if trackers:
        items = join((tracker.as_sql() for tracker in trackers), ", ")
        tracker_array = Fragment(
            sql.SQL("ARRAY[{}]::pghistory.tracker[]").format(items.query), items.params
        )
    if obj_field is UNSET:
        obj = None
    elif obj_field is None:
        obj = Fragment(sql.SQL("NULL::text"))
    else:
        obj = param(obj_field, "text")
    function = call(
        "track",
        [param(target, "regclass")],
        trackers=tracker_array,
        fields=_names(fields, "fields"),
        exclude=_names(exclude, "exclude"),
        model_name=_text(model_name),
        obj_field=obj,
        context_field=_text(context_field),
        context_mode=_text(context_mode),
        append_only=None if append_only is None else param(bool(append_only), "boolean"),
        level=_text(level),
        partition_by=_text(partition_by),
    )
    return Fragment(sql.SQL("SELECT {}::text").format(function.query), function.params)


@dual
def track(
    conn: Any,
    target: str,
    *trackers: Tracker,
    fields: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    model_name: str | None = None,
    obj_field: str | _Unset | None = UNSET,
    context_field: str | None = None,
    context_mode: str | None = None,
    append_only: bool | None = None,
    level: str | None = None,
    partition_by: str | None = None,
) -> Steps[str]:
    """Track ``target`` (a table name, e.g. ``"public.orders"``); returns the event table.

    With no trackers: insert and update events. ``obj_field=None`` stores no object
    reference (required for tables without a single-column primary key).
    ``partition_by="day" | "week" | "month"`` keeps the history partitioned by time. Options
    you leave out take the server's defaults; see ``pghistory.track`` in SQL.
    """
    fragment = track_sql(
        target,
        *trackers,
        fields=fields,
        exclude=exclude,
        model_name=model_name,
        obj_field=obj_field,
        context_field=context_field,
        context_mode=context_mode,
        append_only=append_only,
        level=level,
        partition_by=partition_by,
    )
    rows = yield Execute(fragment.query, fragment.params)
    return str(rows.first())


@dual
def untrack(
    conn: Any,
    target: str,
    model_name: str | None = None,
    *,
    drop_events: bool = False,
) -> Steps[None]:
    """Stop tracking ``target`` (one event table with ``model_name``, else all).

    The history stays unless ``drop_events``, which drops the event table(s).
    """
    function = call(
        "untrack",
        [param(target, "regclass")],
        model_name=_text(model_name),
        drop_events=param(bool(drop_events), "boolean"),
    )
    yield _select(function)


@dual
def create_event(conn: Any, target: str, pk: object, *, label: str) -> Steps[int]:
    """Record the current row of ``target`` with primary key ``pk`` as a ``label`` event.

    Returns the new event's ``pgh_id``.
    """
    rows = yield Execute(
        sql.SQL("SELECT pghistory.create_event(%s::regclass, %s::text, %s::text)"),
        (target, str(pk), label),
    )
    return int(rows.first())


@dual
def version(conn: Any) -> Steps[str]:
    """The version of the pghistory SQL installed in the database."""
    rows = yield Execute("SELECT pghistory.version()")
    return str(rows.first())


@dual
def events(
    conn: Any,
    target: str,
    obj: object | None = None,
    *,
    label: str | None = None,
    model: str | None = None,
    limit: int | None = None,
) -> Steps[list[dict[str, Any]]]:
    """Events of ``target`` (optionally of one object, label or event table), oldest first.

    Rows of the view ``pghistory.events`` as dicts; ``limit`` keeps the most recent.
    """
    conditions = [sql.SQL("pgh_obj_model = %s::regclass")]
    params: list[object] = [target]
    if obj is not None:
        conditions.append(sql.SQL("pgh_obj_id = %s::text"))
        params.append(str(obj))
    if label is not None:
        conditions.append(sql.SQL("pgh_label = %s::text"))
        params.append(label)
    if model is not None:
        conditions.append(sql.SQL("pgh_model = %s::regclass"))
        params.append(model)
    if limit is not None and limit < 0:
        raise ValueError("limit must be zero or more")
    params.append(limit)
    query = sql.SQL(
        "SELECT * FROM pghistory.events WHERE {}"
        " ORDER BY pgh_created_at DESC, pgh_id DESC, pgh_model::text DESC LIMIT %s::bigint"
    ).format(sql.SQL(" AND ").join(conditions))
    answer = yield Execute(query, params, dicts=True)
    rows: list[dict[str, Any]] = answer.rows
    rows.reverse()
    return rows


@dual
def status(conn: Any) -> Steps[list[dict[str, Any]]]:
    """One dict per event table: the rows of ``pghistory.tracking``."""
    answer = yield Execute(
        "SELECT * FROM pghistory.tracking ORDER BY target::text, event_table::text", dicts=True
    )
    rows: list[dict[str, Any]] = answer.rows
    return rows


# --- keeping history whole (API.md section 10) ------------------------------------------


@dual
def sync(conn: Any, table: str | None = None) -> Steps[None]:
    """Bring event tables and triggers in step with schema changes of tracked tables.

    ``table`` only, else every tracked table you own: renamed, added, dropped and
    retyped columns. Needed where no event trigger does it at once (the extension
    was not created by a superuser); until then writes to a changed table fail.
    """
    yield _select(call("sync", [] if table is None else [param(table, "regclass")]))


@dual
def verify(conn: Any, kinds: Sequence[str] | None = None) -> Steps[list[dict[str, Any]]]:
    """Problems that would let history be lost, forged or bypassed; ``[]`` when all is well.

    One dict per problem (a disabled or missing trigger, a column out of step, a role
    that may rewrite history, an append-only guard switched off): ``target``,
    ``event_table`` (names as text), ``problem`` (what to do, in words) and ``kind``, a
    stable code to filter on (``trigger_missing``, ``trigger_disabled``, ``stale_code``,
    ``column_mismatch``, ``column_added``, ``privilege``, ``events_view``,
    ``append_only_guard``). ``kinds`` keeps only those kinds.
    """
    answer = yield Execute(
        "SELECT target::text AS target, event_table::text AS event_table, problem, kind"
        " FROM pghistory.verify() WHERE %s::text[] IS NULL OR kind = ANY (%s::text[])"
        " ORDER BY 1, 2, 3",
        [None if kinds is None else list(kinds)] * 2,
        dicts=True,
    )
    rows: list[dict[str, Any]] = answer.rows
    return rows


# --- travelling in history (API.md section 11) -----------------------------------------


def _relation(table: str) -> Steps[sql.Identifier]:
    """``table`` as a schema-qualified identifier, resolved by the server."""
    rows = yield Execute(
        sql.SQL(
            "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = %s::regclass"
        ),
        (table,),
    )
    schema, name = rows.rows[0]
    return sql.Identifier(str(schema), str(name))


@dual
def as_of_table(
    conn: Any, table: str, at: datetime.datetime | str
) -> Steps[tuple[list[str], list[dict[str, Any]]]]:
    """:func:`as_of` with the column names (which an empty result still has)."""
    relation = yield from _relation(table)
    query = sql.SQL("SELECT * FROM pghistory.as_of(NULL::{}, %s::timestamptz)").format(relation)
    answer = yield Execute(query, (at,), dicts=True)
    return answer.columns, answer.rows


@dual
def as_of(conn: Any, table: str, at: datetime.datetime | str) -> Steps[list[dict[str, Any]]]:
    """The rows of ``table`` as they were at ``at``, rebuilt from its history.

    ``at`` is a datetime (naive ones are read in the session's time zone) or any
    timestamp PostgreSQL reads (``"2026-01-01 12:00+02"``). The table needs a
    history of inserts, updates (new rows) and deletes of every column; rows older
    than the tracking are there once :func:`backfill` recorded them. Otherwise
    :class:`~pghist.errors.ObjectNotInPrerequisiteState` says what is missing.
    """
    _, rows = yield from as_of_table.steps(conn, table, at)
    return rows


@dual
def revert(conn: Any, event_table: str, pgh_id: int) -> Steps[str]:
    """Put the object of event ``pgh_id`` back as that event recorded it.

    Returns ``"updated"`` (the row was changed back) or ``"inserted"`` (it had been
    deleted). An ordinary write, tracked like any other; the event table must hold
    every column of the table.
    """
    rows = yield Execute(
        sql.SQL("SELECT pghistory.revert(%s::regclass, %s::bigint)"), (event_table, pgh_id)
    )
    return str(rows.first())


@dual
def prune(
    conn: Any,
    table: str | None = None,
    *,
    older_than: datetime.timedelta | str | None = None,
    keep_last: int | None = None,
) -> Steps[int]:
    """Delete old events of ``table`` (else of every table you own); returns how many.

    ``older_than``: events older than that (a ``timedelta`` or an interval such as
    ``"90 days"``); ``keep_last``: except the newest N of each object. At least one
    is needed. Append-only histories are pruned only when ``table`` names them.
    """
    if older_than is not None and not isinstance(older_than, datetime.timedelta | str):
        raise TypeError("older_than= takes a datetime.timedelta or an interval ('90 days')")
    if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int)):
        raise TypeError("keep_last= takes an integer")
    function = call(
        "prune",
        target=None if table is None else param(table, "regclass"),
        older_than=None if older_than is None else param(older_than, "interval"),
        keep_last=None if keep_last is None else param(keep_last, "integer"),
    )
    rows = yield _select(function)
    return int(rows.first())


@dual
def backfill(
    conn: Any,
    table: str,
    model_name: str | None = None,
    progress: Callable[[str], object] | None = None,
) -> Steps[int]:
    """Record the current state of every row of ``table`` as a ``backfill`` event.

    So that history (and :func:`as_of`) covers rows older than the tracking; into
    the event table ``model_name``, else every event table of ``table`` that records
    inserts. Returns how many events were written. The server works in batches of
    10000 rows and reports each as a notice; ``progress`` (if given) receives each
    notice's message while it runs (psycopg logs what it raises, and goes on).
    """
    function = call("backfill", [param(table, "regclass")], model_name=_text(model_name))
    if progress is None:
        rows = yield _select(function)
        return int(rows.first())

    def handler(diag: psycopg.errors.Diagnostic) -> None:
        if diag.message_primary is not None:
            progress(diag.message_primary)

    def steps() -> Steps[int]:
        rows = yield _select(function)
        return int(rows.first())

    count: int = yield Notices(handler, steps())
    return count


class context:  # named like django-pghistory's
    """Attach metadata to the events written in the block (or decorated function).

    ``with pghist.context(user=42, url="/orders"):`` (no connection) opens an ambient
    scope, held in contextvars so each thread and asyncio task sees its own; nested
    scopes merge. It sends nothing: every transaction that an instrumented connection
    (:func:`pghist.sqlalchemy.instrument`, the middlewares, :func:`apply_context`) runs
    inside it carries the merged metadata. ``async with`` works the same.

    ``with pghist.context(conn, user=42) as context_id:`` runs the block in a
    transaction of ``conn`` (a savepoint when one is already open), where
    ``pghistory.set_context`` sets the metadata at once. Nested blocks merge their
    metadata into the same context; it ends with the outermost transaction. With a
    psycopg ``AsyncConnection``: ``async with pghist.context(aconn, user=42) as context_id``.

    Values must be JSON serializable (dates, UUIDs and decimals become strings):
    otherwise a TypeError naming the key, raised here, before anything is sent.
    """

    def __init__(
        self, conn: Connection | AsyncConnection | None = None, /, **metadata: Any
    ) -> None:
        if conn is not None and not isinstance(conn, psycopg.Connection | psycopg.AsyncConnection):
            raise TypeError(
                "pghist.context() takes a psycopg connection or nothing as its first"
                f" argument, then the metadata as keywords; got {conn!r}"
            )
        self.conn = conn
        self.metadata = metadata
        self._json = metadata_json(metadata)
        self._tokens: list[Any] = []
        self._transactions: list[Any] = []

    def _copy(self) -> context:
        return context(self.conn, **self.metadata)

    def __call__(self, func: _F) -> _F:
        """As a decorator: each call runs in a scope (or transaction) of its own."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with self._copy():
                    return await func(*args, **kwargs)

            return cast(_F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self._copy():
                return func(*args, **kwargs)

        return cast(_F, run)

    def __enter__(self) -> Any:
        if self.conn is None:
            self._tokens.append(_context.enter(self.metadata, self._json))
            return current_context()
        if not isinstance(self.conn, psycopg.Connection):
            raise TypeError("pghist.context() with an AsyncConnection takes `async with`")
        transaction = self.conn.transaction()
        with translate():
            transaction.__enter__()
        self._transactions.append(transaction)
        try:
            with translate(), self.conn.cursor() as cur:
                cur.execute(_SET_CONTEXT, (Jsonb(self.metadata, dumps=dumps),))
                row = cur.fetchone()
        except BaseException as exc:
            self._transactions.pop()
            transaction.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return _uuid(row)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if self.conn is None:
            _context.leave(self._tokens.pop())
            return False
        transaction = self._transactions.pop()
        with translate():
            return bool(transaction.__exit__(exc_type, exc, traceback))

    async def __aenter__(self) -> Any:
        if self.conn is None:
            return self.__enter__()
        if not isinstance(self.conn, psycopg.AsyncConnection):
            raise TypeError("pghist.context() with a sync connection takes `with`")
        transaction = self.conn.transaction()
        with translate():
            await transaction.__aenter__()
        self._transactions.append(transaction)
        try:
            with translate():
                async with self.conn.cursor() as cur:
                    await cur.execute(_SET_CONTEXT, (Jsonb(self.metadata, dumps=dumps),))
                    row = await cur.fetchone()
        except BaseException as exc:
            self._transactions.pop()
            await transaction.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return _uuid(row)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if self.conn is None or not isinstance(self.conn, psycopg.AsyncConnection):
            return self.__exit__(exc_type, exc, traceback)
        transaction = self._transactions.pop()
        with translate():
            return bool(await transaction.__aexit__(exc_type, exc, traceback))


_SET_CONTEXT = "SELECT pghistory.set_context(%s::jsonb)"


def _uuid(row: tuple[Any, ...] | None) -> uuid.UUID:
    assert row is not None
    value = row[0]
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def apply_context(target: Any) -> Any:
    """Put the current ``pghist.context(...)`` scope on the transaction of ``target``.

    ``target`` is a DB-API connection or cursor (psycopg 3, psycopg2, ...) whose
    transaction is open or about to open (not in autocommit mode). Sends one statement
    that sets the transaction-local settings the extension reads, with a new context id,
    and returns that id; with no active scope sends nothing and returns None. Writes
    nothing by itself: the context row is recorded with the first event, so it works in
    read-only transactions and on a standby. Call it once per transaction, at its start.
    With a psycopg ``AsyncConnection`` or ``AsyncCursor``, returns a coroutine to await.
    """
    scope = _context.current_scope()
    is_async = isinstance(target, psycopg.AsyncConnection | psycopg.AsyncCursor)
    if scope is None:
        return _done(None) if is_async else None
    connection = target if hasattr(target, "cursor") else target.connection
    _context.check_not_autocommit(connection)
    context_id = uuid.uuid4()
    params = (str(context_id), scope.json)
    if is_async:
        return _apply_async(target, params, context_id)
    cursor = target.cursor() if hasattr(target, "cursor") else target
    try:
        with translate():
            cursor.execute(_context.apply_statement("format"), params)
    finally:
        if cursor is not target:
            cursor.close()
    return context_id


async def _done(value: T) -> T:
    return value


async def _apply_async(
    target: psycopg.AsyncConnection[Any] | psycopg.AsyncCursor[Any],
    params: tuple[str, str],
    context_id: uuid.UUID,
) -> uuid.UUID:
    with translate():
        if isinstance(target, psycopg.AsyncCursor):
            await target.execute(_context.apply_statement("format"), params)
        else:
            async with target.cursor() as cur:
                await cur.execute(_context.apply_statement("format"), params)
    return context_id
