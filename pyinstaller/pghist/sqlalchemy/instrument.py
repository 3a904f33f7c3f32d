"""``instrument(engine)``: every transaction begun inside a ``pghist.context`` scope carries it.

Hooks SQLAlchemy's own dialect events (no monkey-patching): ``do_execute`` and its
``executemany`` / no-parameters siblings, through which every statement reaches the driver.
Before a transaction's first statement that may write inside a scope (and again, merged,
when a nested scope adds keys later in the same transaction, or when a savepoint they were
sent in has ended) the current scope goes along. So ORM sessions, Core connections, bulk
``session.execute(update(...))`` and ``text()`` alike are covered, and a transaction that
runs no statement in a scope sends nothing, nor does one that only reads (plain SELECTs that
call no function: they cannot write an event). Dialect events leave SQLAlchemy's per-statement
connection event dispatch off, which a connection listener, even one doing nothing, costs a
request that reads (bench/app_context.py).

Applying the context is one statement setting two transaction-local settings (see
``pghist._context``): nothing is written unless the transaction writes an event, so
read-only transactions work on a read-only server or a hot standby, and nothing outlives
the transaction (safe behind PgBouncer in transaction mode). With psycopg 3 (sync) that
statement travels in the round trip of the statement that needs it (a pipeline of the two),
and with psycopg2 in the same query string (a statement with parameters, not an executemany),
so a context costs no extra round trip; otherwise it is sent just before.
"""

from __future__ import annotations

import functools
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
# psycopg2: the settings statement in front of a statement with named parameters
_ID_PARAM, _METADATA_PARAM = "pghist_context_id", "pghist_context_metadata"
_PSYCOPG2_PREFIX = _context.APPLY_SQL.format(f"%({_ID_PARAM})s", f"%({_METADATA_PARAM})s") + "; "


class _Transaction:
    """What this transaction has been given: its context id, merged metadata, last scope."""

    __slots__ = ("applied_in", "context_id", "encoded", "metadata", "scope", "transaction")

    def __init__(self, transaction: object) -> None:
        self.transaction = transaction  # SQLAlchemy's, whose state this is
        self.context_id: str | None = None
        self.metadata: dict[str, Any] = {}
        self.encoded: dict[str, str] = {}
        self.scope: _context.Scope | None = None
        # the savepoint the settings were last sent in (None: the transaction itself); once it
        # has ended they may have gone with it (rolled back), so they are sent again
        self.applied_in: Any = None

    def stale(self) -> bool:
        return self.applied_in is not None and not self.applied_in.is_active


def _state(conn: Connection) -> _Transaction | None:
    """The state of the transaction ``conn`` is in (kept in its DB-API connection's info, and
    replaced when SQLAlchemy begins another); None outside a transaction SQLAlchemy began
    (dialect set-up)."""
    transaction = conn.get_transaction()
    if transaction is None:
        return None
    state: _Transaction | None = conn.info.get(_KEY)
    if state is None or state.transaction is not transaction:
        state = conn.info[_KEY] = _Transaction(transaction)
    return state


_CALL = re.compile(r"(?<!%)\(")  # a parenthesis, other than a %(name)s placeholder's


@functools.lru_cache(maxsize=4096)  # SQLAlchemy sends the same few statement strings again
def _reads_only(statement: str) -> bool:
    """A SELECT that calls no function (no parenthesis: ORM loads, plain Core selects) cannot
    write an event, so the context waits for the transaction's next other statement. Not when
    a ``;`` may start another statement (psycopg2 sends ``text("SELECT 1; UPDATE ...")`` whole)."""
    return (
        statement.lstrip()[:6].upper() == "SELECT"
        and ";" not in statement
        and _CALL.search(statement) is None
    )


class _Settings:
    """The settings a statement must carry: sent with it (or before it), then recorded."""

    __slots__ = ("conn", "context_id", "encoded", "metadata", "scope", "state")

    def __init__(
        self, conn: Connection, state: _Transaction, scope: _context.Scope, encoded: dict[str, str]
    ) -> None:
        self.conn, self.state, self.scope, self.encoded = conn, state, scope, encoded
        self.metadata = {**state.metadata, **scope.metadata}
        self.context_id = state.context_id or str(uuid.uuid4())

    @property
    def json(self) -> str:
        # one context per transaction: a nested scope's keys merge into it (as set_context()'s do)
        scope = self.scope
        return (
            scope.json
            if self.encoded == scope.encoded
            else _context.Scope(self.metadata, self.encoded).json
        )

    def statement(self) -> tuple[str, tuple[str, str]]:
        return _context.apply_statement(self.conn.dialect.paramstyle), (self.context_id, self.json)

    def send_apart(self) -> None:
        """Send them as a statement of their own, just before the statement that needs them."""
        apply_cursor = self.conn.connection.cursor()
        try:
            apply_cursor.execute(*self.statement())
        finally:
            apply_cursor.close()
        self.sent()

    def sent(self) -> None:
        state = self.state
        state.context_id, state.metadata, state.encoded = (
            self.context_id,
            self.metadata,
            self.encoded,
        )
        state.scope, state.applied_in = self.scope, self.conn.get_nested_transaction()


def _due(statement: str, context: Any) -> _Settings | None:
    """The settings ``statement`` must carry first, or None (no scope, a read, already sent)."""
    scope = _context.current_scope()
    if scope is None or _reads_only(statement):
        return None
    conn: Connection = context.root_connection
    state = _state(conn)
    if state is None:
        return None
    stale = state.stale()
    if state.scope is scope and not stale:
        return None
    encoded = {**state.encoded, **scope.encoded}
    if state.context_id is not None and not stale and encoded == state.encoded:
        state.scope = scope  # a scope adding nothing new
        return None
    _context.check_not_autocommit(conn.connection.dbapi_connection)
    return _Settings(conn, state, scope, encoded)


def _do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    settings = _due(statement, context)
    if settings is None:
        return False  # SQLAlchemy executes the statement as usual
    dialect = context.dialect
    named = getattr(cursor, "name", None)  # a server-side cursor: its DECLARE stands alone
    if not named and dialect.driver == "psycopg" and not dialect.is_async:
        # one round trip: the settings and the statement pipelined (psycopg's async adapter in
        # SQLAlchemy reads a statement's rows as soon as it is sent, before a pipeline has them)
        connection: Any = settings.conn.connection.dbapi_connection
        apply_cursor = connection.cursor()
        try:
            with connection.pipeline():
                apply_cursor.execute(*settings.statement())
                cursor.execute(statement, parameters)
        finally:
            apply_cursor.close()
        settings.sent()
        return True
    if not named and dialect.driver == "psycopg2" and isinstance(parameters, dict) and parameters:
        # psycopg2 binds on the client and sends one query string: the settings go in front
        cursor.execute(
            _PSYCOPG2_PREFIX + statement,
            {**parameters, _ID_PARAM: settings.context_id, _METADATA_PARAM: settings.json},
        )
        settings.sent()
        return True
    settings.send_apart()
    return False


def _do_execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
    settings = _due(statement, context)
    if settings is not None:
        settings.send_apart()
    return False


def _do_executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    return _do_execute_no_params(cursor, statement, context)


_LISTENERS = (
    ("do_execute", _do_execute),
    ("do_execute_no_params", _do_execute_no_params),
    ("do_executemany", _do_executemany),
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
    return event.contains(_sync_engine(engine), "do_execute", _do_execute)


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
            event.listen(sync_engine, name, listener)
    return engine
