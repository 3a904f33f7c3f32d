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

Applying the context sets two transaction-local settings (see ``pghist._context``): nothing
is written unless the transaction writes an event, so read-only transactions work on a
read-only server or a hot standby, and nothing outlives the transaction (safe behind
PgBouncer in transaction mode). Where the driver allows it, they cost no round trip of their
own:

- psycopg 3, sync or async: two ``SET LOCAL`` in the transaction's BEGIN, which psycopg
  sends in a round trip of its own before the first statement; when the transaction has
  already begun (a read came first), a ``set_config`` pipelined with the statement that needs
  it (sync engines);
- psycopg2: a ``set_config`` in front of the statement, in the same query string (a
  statement with parameters);

otherwise (asyncpg, psycopg's async engine after a read, psycopg2's executemany) a
``set_config`` is sent just before the statement.
"""

from __future__ import annotations

import functools
import re
import uuid
from typing import Any, TypeVar

import psycopg
from psycopg import generators, pq
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

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

    __slots__ = ("applied_in", "context_id", "json", "metadata", "scope", "transaction")

    def __init__(self, transaction: object) -> None:
        self.transaction = transaction  # SQLAlchemy's, whose state this is
        self.context_id: str | None = None
        self.metadata: dict[str, Any] = {}
        self.json = ""  # the metadata as sent
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

    __slots__ = ("conn", "context_id", "json", "metadata", "scope", "state")

    def __init__(
        self,
        conn: Connection,
        state: _Transaction,
        scope: _context.Scope,
        metadata: dict[str, Any],
        json: str,
    ) -> None:
        self.conn, self.state, self.scope, self.metadata, self.json = (
            conn,
            state,
            scope,
            metadata,
            json,
        )
        self.context_id = state.context_id or str(uuid.uuid4())

    def statement(self) -> tuple[str, tuple[str, str]]:
        return _context.apply_statement(self.conn.dialect.paramstyle), (self.context_id, self.json)

    def send_with_begin(self) -> bool:
        """psycopg 3 begins a transaction with a BEGIN in a round trip of its own, just before
        the first statement. When that BEGIN is still to come, send it with the settings in one
        simple query, as psycopg sends its own (the context then costs no round trip, sync or
        async); psycopg then sees the transaction begun. False once it has begun, and for the
        other drivers."""
        if self.conn.dialect.driver not in {"psycopg", "psycopg_async"}:
            return False
        connection: Any = self.conn.connection.driver_connection  # psycopg's (Async)Connection
        pgconn = connection.pgconn
        if (
            pgconn.transaction_status != pq.TransactionStatus.IDLE
            or pgconn.pipeline_status != pq.PipelineStatus.OFF
        ):
            return False
        literal = pq.Escaping(pgconn).escape_literal
        apply = _context.SET_LOCAL_SQL.format(
            literal(self.context_id.encode()).decode(), literal(self.json.encode()).decode()
        )
        query = _begin_command(connection) + b"; " + apply.encode()
        if isinstance(connection, psycopg.AsyncConnection):
            results = await_only(_send_async(connection, query))
        else:
            with connection.lock:
                pgconn.send_query(query)
                results = connection.wait(generators.execute(pgconn))
        for result in results:
            if result.status != pq.ExecStatus.COMMAND_OK:
                raise psycopg.errors.error_from_result(result, encoding=connection.info.encoding)
        self.sent()
        return True

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
        state.context_id, state.metadata, state.json = self.context_id, self.metadata, self.json
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
    # one context per transaction: a later scope's keys merge into it (as set_context()'s do)
    if state.metadata:
        metadata = {**state.metadata, **scope.metadata}
        json = _context.dumps(metadata)
    else:
        metadata, json = scope.metadata, scope.json
    if state.context_id is not None and not stale and json == state.json:
        state.scope = scope  # a scope adding nothing new
        return None
    _context.check_not_autocommit(conn.connection.dbapi_connection)
    return _Settings(conn, state, scope, metadata, json)


async def _send_async(connection: Any, query: bytes) -> list[Any]:
    async with connection.lock:
        connection.pgconn.send_query(query)
        return await connection.wait(generators.execute(connection.pgconn))  # type: ignore[no-any-return]


def _begin_command(connection: Any) -> bytes:
    """The BEGIN psycopg would send for this connection's transaction characteristics."""
    parts = [b"BEGIN"]
    if connection.isolation_level is not None:
        level = psycopg.IsolationLevel(connection.isolation_level)
        parts += [b"ISOLATION LEVEL", level.name.replace("_", " ").encode()]
    if connection.read_only is not None:
        parts.append(b"READ ONLY" if connection.read_only else b"READ WRITE")
    if connection.deferrable is not None:
        parts.append(b"DEFERRABLE" if connection.deferrable else b"NOT DEFERRABLE")
    return b" ".join(parts)


def _sync_psycopg(dialect: Any) -> bool:
    return dialect.driver == "psycopg" and not dialect.is_async


def _do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    settings = _due(statement, context)
    if settings is None:
        return False  # SQLAlchemy executes the statement as usual
    dialect = context.dialect
    if settings.send_with_begin():
        return False
    named = getattr(cursor, "name", None)  # a server-side cursor: its DECLARE stands alone
    if not named and _sync_psycopg(dialect):
        # the transaction has begun: the settings and the statement pipelined, one round trip
        # (psycopg's async adapter in SQLAlchemy reads a statement's rows as soon as it is
        # sent, before a pipeline has them)
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
    if settings is not None and not settings.send_with_begin():
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
    # the listeners the dialect will call, not event.contains(), which asks SQLAlchemy's
    # registry (keyed by id() of the target): in one CI run it said True of an engine whose
    # dialect had none, and instrument() then skipped it
    return _do_execute in list(_sync_engine(engine).dialect.dispatch.do_execute)


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
