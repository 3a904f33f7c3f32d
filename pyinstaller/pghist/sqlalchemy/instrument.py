"""``instrument(engine)``: every transaction begun inside a ``pghist.context`` scope carries it.

Hooks SQLAlchemy's own connection events (no monkey-patching). ``before_cursor_execute``
puts the current scope on the transaction with its first statement that may write inside a
scope (and again,
merged, when a nested scope adds keys later in the same transaction). So ORM sessions, Core
connections, bulk ``session.execute(update(...))`` and ``text()`` alike are covered, and a
transaction that runs no statement in a scope sends nothing, nor does one that only reads
(plain SELECTs that call no function: they cannot write an event).

Applying the context is one statement setting two transaction-local settings (see
``pghist._context``): nothing is written unless the transaction writes an event, so
read-only transactions work on a read-only server or a hot standby, and nothing outlives
the transaction (safe behind PgBouncer in transaction mode). With psycopg 3 (sync) that
statement travels in the round trip of the statement that needs it (a pipeline of the two),
and with psycopg2 in the same query string (a statement with parameters, not an executemany),
so a context costs no extra round trip; otherwise it is sent just before.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import _context

__all__ = ["SUPPORTED_DRIVERS", "instrument", "is_instrumented"]

# SQLAlchemy dialect driver names (``postgresql+<driver>://``) whose DB-API adapters we drive.
SUPPORTED_DRIVERS = ("psycopg", "psycopg_async", "psycopg2", "asyncpg")

_KEY = "pghist_context"  # in Connection.info: the _Transaction state of the current transaction
_PIPELINE_KEY = "pghist_pipeline"  # in Connection.info: the pipeline open around one statement
# psycopg2: the settings statement in front of a statement with named parameters
_ID_PARAM, _METADATA_PARAM = "pghist_context_id", "pghist_context_metadata"
_PSYCOPG2_PREFIX = _context.APPLY_SQL.format(f"%({_ID_PARAM})s", f"%({_METADATA_PARAM})s") + "; "


class _Transaction:
    """What this transaction has been given: its context id, merged metadata, last scope."""

    __slots__ = ("context_id", "encoded", "metadata", "scope", "stale", "transaction")

    def __init__(self, transaction: object) -> None:
        self.transaction = transaction  # SQLAlchemy's, whose state this is
        self.context_id: str | None = None
        self.metadata: dict[str, Any] = {}
        self.encoded: dict[str, str] = {}
        self.scope: _context.Scope | None = None
        self.stale = False  # a rolled back savepoint took the settings with it


def _state(conn: Connection) -> _Transaction | None:
    """The state of the transaction ``conn`` is in (kept in its DB-API connection's info, and
    replaced when SQLAlchemy begins another: no listener on begin and commit, one call less
    per transaction); None outside a transaction SQLAlchemy began (dialect set-up)."""
    transaction = conn.get_transaction()
    if transaction is None:
        return None
    state: _Transaction | None = conn.info.get(_KEY)
    if state is None or state.transaction is not transaction:
        state = conn.info[_KEY] = _Transaction(transaction)
    return state


def _rollback_savepoint(conn: Connection, name: str, context: Any) -> None:
    state = _state(conn)
    if state is not None and state.context_id is not None:
        state.stale = True


_CALL = re.compile(r"(?<!%)\(")  # a parenthesis, other than a %(name)s placeholder's


def _reads_only(statement: str) -> bool:
    """A SELECT that calls no function (no parenthesis: ORM loads, plain Core selects) cannot
    write an event, so the context waits for the transaction's next other statement. Not when
    a ``;`` may start another statement (psycopg2 sends ``text("SELECT 1; UPDATE ...")`` whole)."""
    return (
        statement.lstrip()[:6].upper() == "SELECT"
        and ";" not in statement
        and _CALL.search(statement) is None
    )


def _before_cursor_execute(  # noqa: PLR0917 (the event's signature)
    conn: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> tuple[str, Any]:
    unchanged = statement, parameters
    scope = _context.current_scope()
    if scope is None:
        return unchanged
    if _reads_only(statement):
        return unchanged  # nothing to record yet: a read-only transaction sends nothing at all
    state = _state(conn)
    if state is None or (state.scope is scope and not state.stale):
        return unchanged  # not in a transaction SQLAlchemy began (dialect set-up), or applied
    # One context per transaction: a nested scope's keys merge into it (as set_context()'s do).
    encoded = {**state.encoded, **scope.encoded}
    if state.context_id is not None and encoded == state.encoded and not state.stale:
        state.scope = scope
        return unchanged
    metadata = {**state.metadata, **scope.metadata}
    _context.check_not_autocommit(conn.connection.dbapi_connection)
    context_id = state.context_id or str(uuid.uuid4())
    applied = scope if encoded == scope.encoded else _context.Scope(metadata, encoded)
    statement_args = (_context.apply_statement(conn.dialect.paramstyle), (context_id, applied.json))
    dbapi_connection: Any = conn.connection.dbapi_connection
    if _pipelines(conn.dialect) and not executemany and not getattr(cursor, "name", None):
        # the settings ride in the statement's own round trip: a pipeline of the two, which
        # after_cursor_execute (or handle_error) closes, reading both results
        pipeline = dbapi_connection.pipeline()
        pipeline.__enter__()
        apply_cursor = dbapi_connection.cursor()
        conn.info[_PIPELINE_KEY] = (pipeline, apply_cursor)
        apply_cursor.execute(*statement_args)
    elif (
        conn.dialect.driver == "psycopg2"
        and not executemany
        and isinstance(parameters, dict)
        and parameters
        and not getattr(cursor, "name", None)
    ):
        # psycopg2 binds on the client and sends one query string: the settings go in front
        statement = _PSYCOPG2_PREFIX + statement
        parameters = {**parameters, _ID_PARAM: context_id, _METADATA_PARAM: applied.json}
    else:
        apply_cursor = conn.connection.cursor()
        try:
            apply_cursor.execute(*statement_args)
        finally:
            apply_cursor.close()
    state.context_id, state.metadata, state.encoded = context_id, metadata, encoded
    state.scope, state.stale = scope, False
    return statement, parameters


def _close_pipeline(conn: Connection, *exc_info: Any) -> None:
    opened = conn.info.pop(_PIPELINE_KEY, None)
    if opened is not None:
        pipeline, apply_cursor = opened
        try:
            pipeline.__exit__(*exc_info)  # syncs: sends both, waits for both results
        finally:
            apply_cursor.close()


def _after_cursor_execute(  # noqa: PLR0917 (the event's signature)
    conn: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    if _PIPELINE_KEY in conn.info:
        _close_pipeline(conn, None, None, None)


def _handle_error(exception_context: Any) -> None:
    conn = exception_context.connection
    if conn is not None and _PIPELINE_KEY in conn.info:
        error = exception_context.original_exception
        _close_pipeline(conn, type(error), error, error.__traceback__)


def _pipelines(dialect: Any) -> bool:
    """psycopg 3, sync. (Its async adapter in SQLAlchemy reads a statement's rows as soon as it
    is sent, before a pipeline has them; psycopg2 and asyncpg have no pipeline.)"""
    return dialect.driver == "psycopg" and not dialect.is_async


_LISTENERS = (
    ("rollback_savepoint", _rollback_savepoint),
    ("before_cursor_execute", _before_cursor_execute),
    ("after_cursor_execute", _after_cursor_execute),
    ("handle_error", _handle_error),
)


def _sync_engine(engine: Engine | AsyncEngine) -> Engine:
    if isinstance(engine, AsyncEngine):
        return engine.sync_engine
    if isinstance(engine, Engine):
        return engine
    raise TypeError(
        f"pghist.sqlalchemy.instrument() takes an Engine or an AsyncEngine, not {engine!r}"
    )


def is_instrumented(engine: Engine | AsyncEngine) -> bool:
    """Whether :func:`instrument` has been called on ``engine``."""
    return event.contains(_sync_engine(engine), "before_cursor_execute", _before_cursor_execute)


# instrument() hands back what it was given, typed as given
_AnyEngine = TypeVar("_AnyEngine", Engine, AsyncEngine)


def instrument(engine: _AnyEngine) -> _AnyEngine:
    """Make every transaction of ``engine`` begun inside a ``pghist.context`` scope carry it.

    ``engine`` is an ``Engine`` or ``AsyncEngine`` on PostgreSQL with the psycopg (3, sync
    or async), psycopg2 or asyncpg driver; any other raises ``ValueError`` here. Calling it
    again is harmless. Returns ``engine``. A context that cannot be applied (the engine
    runs in ``AUTOCOMMIT`` isolation, or the statement fails) fails the statement that
    would have been written without it.
    """
    sync_engine = _sync_engine(engine)
    dialect = sync_engine.dialect
    if dialect.name != "postgresql" or dialect.driver not in SUPPORTED_DRIVERS:
        raise ValueError(
            f"pghist.sqlalchemy.instrument(): unsupported database driver"
            f" {dialect.name}+{dialect.driver} (engine {sync_engine.url.render_as_string()})."
            " Hint: use PostgreSQL with psycopg (postgresql+psycopg://), psycopg2"
            " (postgresql+psycopg2://) or asyncpg (postgresql+asyncpg://)"
        )
    if not is_instrumented(sync_engine):
        for name, listener in _LISTENERS:
            # before_cursor_execute may put the settings in front of the statement
            event.listen(sync_engine, name, listener, retval=name == "before_cursor_execute")
    return engine
