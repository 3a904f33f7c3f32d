"""History in Alembic migrations (``pip install 'pghistory[alembic]'``).

``import pghist.alembic`` in ``env.py`` adds these operations (arguments as ``pghist.track``)::

    op.track("orders", pghist.InsertEvent(), pghist.UpdateEvent(condition=pghist.AnyChange("a")))
    op.untrack("orders", model_name="orders_event", drop_events=False)
    op.sync("orders")            # pghistory.sync: follow schema changes where no event trigger does
    op.install_pghistory()       # pghist.install: CREATE EXTENSION, or the script method

and an autogenerate comparator: tables declared with ``pghist.sqlalchemy.track(...)`` are
compared with ``pghistory``'s registry, and ``alembic revision --autogenerate`` writes
``op.track`` / ``op.untrack`` (with the reverse in the downgrade) and ``op.sync`` after column
changes of a tracked table. To compare, the declared tracking is applied inside a savepoint and
read back, then rolled back: the server itself decides what a declaration means, and rejects a
bad one (an unknown column) at autogenerate time.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

try:
    from alembic.autogenerate import comparators, renderers
    from alembic.autogenerate.api import AutogenContext
    from alembic.autogenerate.render import render_op
    from alembic.operations import MigrateOperation, Operations, ops
    from alembic.util import CommandError
    from sqlalchemy import MetaData, Table, exc, text
    from sqlalchemy.engine import Connection
except ImportError as error:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError("pghist.alembic needs Alembic: pip install 'pghistory[alembic]'") from error

from . import _migrations as m
from .installer import install
from .sqlalchemy.declare import INFO_KEY, Declaration, declarations
from .trackers import Tracker

__all__ = ["InstallPghistoryOp", "SyncOp", "TrackOp", "UntrackOp", "setup"]


def _sql(statement: str) -> Any:
    # text() reads ":name" as a bind parameter; a condition may hold colons (casts, literals).
    return text(statement.replace(":", "\\:"))


# --- operations ----------------------------------------------------------------------------


@Operations.register_operation("track")
class TrackOp(MigrateOperation):
    """``op.track(target, *trackers, **options)``: ``pghistory.track`` in a migration."""

    def __init__(self, target: str, *trackers: Tracker, **options: Any) -> None:
        for tracker in trackers:
            if not isinstance(tracker, Tracker):
                raise TypeError(
                    f"op.track() takes trackers (pghist.InsertEvent(), ...), got {tracker!r}"
                )
        m.check_options(options)
        self.target = target
        self.trackers = tuple(trackers)
        self.options = options
        #: What undoes this operation (autogenerate knows the tracking it replaces).
        self.reverse_op: MigrateOperation | None = None

    @classmethod
    def track(cls, operations: Operations, target: str, *trackers: Tracker, **options: Any) -> Any:
        """Track ``target`` (regclass text, e.g. ``"public.orders"``), as ``pghist.track``."""
        return operations.invoke(cls(target, *trackers, **options))

    def reverse(self) -> MigrateOperation:
        if self.reverse_op is not None:
            return self.reverse_op
        return UntrackOp(self.target, model_name=self.options.get("model_name"))

    def statement(self) -> str:
        return m.track_statement(self.target, self.trackers, self.options)


@Operations.register_operation("untrack")
class UntrackOp(MigrateOperation):
    """``op.untrack(target, model_name=None, drop_events=False)``: ``pghistory.untrack``."""

    def __init__(
        self, target: str, model_name: str | None = None, *, drop_events: bool = False
    ) -> None:
        self.target = target
        self.model_name = model_name
        self.drop_events = drop_events
        self.reverse_op: MigrateOperation | None = None

    @classmethod
    def untrack(
        cls,
        operations: Operations,
        target: str,
        model_name: str | None = None,
        *,
        drop_events: bool = False,
    ) -> Any:
        """Stop tracking ``target``; the history stays unless ``drop_events``."""
        return operations.invoke(cls(target, model_name, drop_events=drop_events))

    def reverse(self) -> MigrateOperation:
        if self.reverse_op is not None:
            return self.reverse_op
        options = {} if self.model_name is None else {"model_name": self.model_name}
        return TrackOp(self.target, **options)

    def statement(self) -> str:
        return m.untrack_statement(self.target, self.model_name, self.drop_events)


@Operations.register_operation("sync")
class SyncOp(MigrateOperation):
    """``op.sync(target)``: ``pghistory.sync``, after schema changes of a tracked table."""

    def __init__(self, target: str) -> None:
        self.target = target

    @classmethod
    def sync(cls, operations: Operations, target: str) -> Any:
        """Bring ``target``'s history in step with its columns (where no event trigger did)."""
        return operations.invoke(cls(target))

    def reverse(self) -> MigrateOperation:
        return SyncOp(self.target)


@Operations.register_operation("install_pghistory")
class InstallPghistoryOp(MigrateOperation):
    """``op.install_pghistory(method="auto")``: ``pghist.install`` on the migration's connection."""

    def __init__(self, method: str = "auto") -> None:
        self.method = method

    @classmethod
    def install_pghistory(cls, operations: Operations, method: str = "auto") -> Any:
        """Install (or update) pghistory: ``CREATE EXTENSION``, or the script method."""
        return operations.invoke(cls(method))

    def reverse(self) -> MigrateOperation:
        raise NotImplementedError("op.install_pghistory() is not undone by a downgrade")


@Operations.implementation_for(TrackOp)
def _track(operations: Operations, operation: TrackOp) -> None:
    operations.execute(_sql(operation.statement()))


@Operations.implementation_for(UntrackOp)
def _untrack(operations: Operations, operation: UntrackOp) -> None:
    operations.execute(_sql(operation.statement()))


@Operations.implementation_for(SyncOp)
def _sync(operations: Operations, operation: SyncOp) -> None:
    operations.execute(_sql(m.sync_statement(operation.target)))


@Operations.implementation_for(InstallPghistoryOp)
def _install(operations: Operations, operation: InstallPghistoryOp) -> None:
    if operations.migration_context.as_sql:
        # Offline (--sql): the files method's statement; the script method needs a connection.
        operations.execute(text("CREATE EXTENSION IF NOT EXISTS pghistory"))
        return
    import psycopg

    bind = operations.get_bind()
    raw = bind.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise CommandError(
            "op.install_pghistory() runs pghist.install(), which needs the psycopg (3) driver: "
            "use a postgresql+psycopg:// URL, or install with `pghistory install` beforehand"
        )
    # Open the migration's transaction first, so that install() works in a savepoint of it.
    bind.execute(text("SELECT 1"))
    install(raw, operation.method)


# --- rendering into migration files ---------------------------------------------------------


def _imports(autogen_context: AutogenContext) -> None:
    autogen_context.imports.add("import pghist")


@renderers.dispatch_for(TrackOp)
def _render_track(autogen_context: AutogenContext, op: TrackOp) -> str:
    _imports(autogen_context)
    return m.call_source("op.track", [op.target, *op.trackers], op.options)


@renderers.dispatch_for(UntrackOp)
def _render_untrack(autogen_context: AutogenContext, op: UntrackOp) -> str:
    options: dict[str, Any] = {}
    if op.model_name is not None:
        options["model_name"] = op.model_name
    if op.drop_events:
        options["drop_events"] = True
    return m.call_source("op.untrack", [op.target], options)


@renderers.dispatch_for(SyncOp)
def _render_sync(autogen_context: AutogenContext, op: SyncOp) -> str:
    return f"op.sync({op.target!r})"


@renderers.dispatch_for(InstallPghistoryOp)
def _render_install(autogen_context: AutogenContext, op: InstallPghistoryOp) -> str:
    return (
        "op.install_pghistory()" if op.method == "auto" else f"op.install_pghistory({op.method!r})"
    )


class SyncedModifyTableOps(ops.ModifyTableOps):
    """Column changes of a tracked table, then ``op.sync`` for it, in both directions.

    Without an event trigger (an extension created by a role that is not a superuser), a write
    to a table whose columns changed fails until ``pghistory.sync`` runs: the sync must follow
    the changes in the upgrade *and* in the downgrade, so it lives inside the table's group.
    """

    def __init__(
        self,
        table_name: str,
        ops: Sequence[MigrateOperation],
        *,
        target: str,
        schema: str | None = None,
    ) -> None:
        super().__init__(table_name, ops, schema=schema)
        self.target = target

    def reverse(self) -> SyncedModifyTableOps:
        plain = ops.ModifyTableOps(self.table_name, self.ops, schema=self.schema).reverse()
        return SyncedModifyTableOps(
            plain.table_name, plain.ops, target=self.target, schema=plain.schema
        )


@renderers.dispatch_for(SyncedModifyTableOps)
def _render_synced(autogen_context: AutogenContext, op: SyncedModifyTableOps) -> list[str]:
    lines = render_op(autogen_context, ops.ModifyTableOps(op.table_name, op.ops, schema=op.schema))
    return [*lines, _render_sync(autogen_context, SyncOp(op.target))]


# --- autogenerate ---------------------------------------------------------------------------

_INSTALL_HINT = (
    "pghistory is not installed in this database, so declared tracking cannot be compared. "
    "Add a migration whose upgrade() runs op.install_pghistory() (with `import pghist.alembic` "
    "in env.py), run `alembic upgrade head`, then autogenerate again."
)

# The UpgradeOps already compared: the comparator is reachable both from Alembic's global
# registry and as a plugin, and must run once.
_done: weakref.WeakSet[ops.UpgradeOps] = weakref.WeakSet()


def _tables(metadata: MetaData | Sequence[MetaData] | None) -> Iterable[Table]:
    if metadata is None:
        return []
    collections = [metadata] if isinstance(metadata, MetaData) else list(metadata)
    return [table for md in collections for table in md.tables.values()]


def _registry(conn: Connection, schema: str, name: str) -> list[dict[str, Any]]:
    query = m.REGISTRY_QUERY.format(schema=":schema", name=":name")
    result = conn.execute(text(query), {"schema": schema, "name": name})
    return [dict(row._mapping) for row in result]


def _state(rows: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Each event table's configuration, comparable across two reads."""
    return {
        (row["event_schema"], row["event_name"]): json.dumps(
            {key: value for key, value in row.items() if key not in ("event_schema", "event_name")},
            sort_keys=True,
            default=str,
        )
        for row in rows
    }


def _server_message(error: exc.DBAPIError) -> str:
    diag = getattr(error.orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    hint = getattr(diag, "message_hint", None)
    message = str(primary) if primary else str(error.orig).strip()
    return f"{message} (HINT: {hint})" if hint else message


def _event_name(target_schema: str, event_schema: str, event_name: str) -> str:
    return m.qualified_name(None if event_schema == target_schema else event_schema, event_name)


def _reverse_track(target: str, row: dict[str, Any], target_schema: str, default: bool) -> TrackOp:
    trackers = m.trackers_from_registry(row["trackers"])
    event = _event_name(target_schema, row["event_schema"], row["event_name"])
    return TrackOp(target, *trackers, **m.options_from_registry(row, default, event))


def compare_tracking(
    autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps, schemas: Any
) -> None:
    """The autogenerate comparator: declared tracking against ``pghistory``'s registry."""
    if upgrade_ops in _done:
        return
    _done.add(upgrade_ops)
    conn = autogen_context.connection
    assert conn is not None
    for op in upgrade_ops.ops:
        if isinstance(op, ops.CreateTableOp) and op.info:
            # The declarations live in Table.info; Alembic would write them into create_table().
            op.info.pop(INFO_KEY, None)
    tables = [table for table in _tables(autogen_context.metadata) if table.schema in set(schemas)]
    declared = {table.key: declarations(table) for table in tables}
    installed = conn.execute(
        text("SELECT pg_catalog.to_regclass('pghistory._event_table')")
    ).scalar()
    if installed is None:
        if any(declared.values()):
            raise CommandError(_INSTALL_HINT)
        return
    default_schema = str(conn.dialect.default_schema_name or "public")
    _leave_history_alone(conn, upgrade_ops, default_schema)
    created = {
        (op.schema, op.table_name) for op in upgrade_ops.ops if isinstance(op, ops.CreateTableOp)
    }
    changed = {
        (op.schema, op.table_name)
        for op in upgrade_ops.ops
        if isinstance(op, ops.ModifyTableOps)
        and any(
            isinstance(o, ops.AddColumnOp | ops.DropColumnOp | ops.AlterColumnOp) for o in op.ops
        )
    }
    new_ops: list[MigrateOperation] = []
    for table in tables:
        schema = table.schema or default_schema
        target = m.qualified_name(table.schema, table.name)
        key = (table.schema, table.name)
        before = _registry(conn, schema, table.name)
        active = {k: row for k, row in zip(_state(before), before, strict=True) if row["active"]}
        by_key = dict(zip(_state(before), before, strict=True))
        before_state = _state(before)
        exists = conn.execute(
            text(
                "SELECT pg_catalog.to_regclass("
                "pg_catalog.format('%I.%I', CAST(:s AS text), CAST(:n AS text)))"
            ),
            {"s": schema, "n": table.name},
        ).scalar()
        kept: set[tuple[str, str]] = set()
        for declaration in declared[table.key]:
            op = TrackOp(target, *declaration.trackers, **declaration.options)
            if exists is None:
                if key not in created:
                    raise CommandError(
                        f"pghistory: table {target!r} is declared tracked "
                        f"(pghist.sqlalchemy.track) but does not exist in the database, "
                        f"and this migration does not create it"
                    )
                op.reverse_op = _fresh_reverse(target, declaration, table.name)
                new_ops.append(op)
                continue
            outcome = _dry_run(conn, op, schema, table.name, key in changed)
            if outcome is None:  # validated at upgrade time, after this migration's changes
                event_key = _expected_event_table(schema, table.name, declaration)
                after_state = None
            else:
                event_key, after_state = outcome
            kept.add(event_key)
            if after_state is not None and before_state.get(event_key) == after_state:
                continue
            previous = by_key.get(event_key)
            if previous is None:
                op.reverse_op = UntrackOp(target, _event_name(schema, *event_key), drop_events=True)
            elif not previous["active"]:
                op.reverse_op = UntrackOp(target, _event_name(schema, *event_key))
            else:
                op.reverse_op = _reverse_track(
                    target, previous, schema, declaration.model_name is None
                )
            new_ops.append(op)
        for event_key, row in active.items():
            if event_key in kept or (declared[table.key] and exists is None):
                continue
            untrack = UntrackOp(target, _event_name(schema, *event_key))
            untrack.reverse_op = _reverse_track(
                target, row, schema, event_key[1] == f"{table.name}_event"
            )
            new_ops.append(untrack)
        if active and key in changed:
            _wrap_with_sync(upgrade_ops, key, target)
    upgrade_ops.ops.extend(new_ops)


_HISTORY_TABLES = """
SELECT n.nspname, c.relname FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid IN (SELECT e.event_table FROM pghistory._event_table e)
   OR c.oid IN (SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                WHERE i.inhparent IN (SELECT e.event_table FROM pghistory._event_table e))
   OR n.nspname = 'pghistory'
"""


def _leave_history_alone(
    conn: Connection, upgrade_ops: ops.UpgradeOps, default_schema: str
) -> None:
    """Drop what Alembic proposes for event tables: pghistory made them, and owns them."""
    history = {(str(s), str(n)) for s, n in conn.execute(text(_HISTORY_TABLES))}

    def ours(op: MigrateOperation) -> bool:
        name = getattr(op, "table_name", None)
        schema = getattr(op, "schema", None) or default_schema
        return name is not None and (schema, name) in history

    upgrade_ops.ops[:] = [op for op in upgrade_ops.ops if not ours(op)]


def _expected_event_table(
    schema: str, table_name: str, declaration: Declaration
) -> tuple[str, str]:
    """Where a declaration's history goes, without asking the server (names under 63 bytes)."""
    model_name = declaration.model_name or f"{table_name}_event"
    event_schema, _, event_name = model_name.rpartition(".")
    return (event_schema or schema, event_name)


def _fresh_reverse(target: str, declaration: Declaration, table_name: str) -> UntrackOp:
    model_name = declaration.model_name or f"{table_name}_event"
    return UntrackOp(target, model_name, drop_events=True)


def _dry_run(
    conn: Connection, op: TrackOp, schema: str, name: str, pending: bool
) -> tuple[tuple[str, str], str] | None:
    """Apply ``op`` in a savepoint and read the registry back (then roll back).

    None when it fails but this migration changes the table's columns first (the upgrade
    decides); otherwise a failure is the declaration's error.
    """
    savepoint = conn.begin_nested()
    try:
        event_table = conn.execute(_sql(op.statement())).scalar()
        after = _registry(conn, schema, name)
        located = conn.execute(
            text(
                "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c"
                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.oid = CAST(:t AS regclass)"
            ),
            {"t": event_table},
        ).one()
    except exc.DBAPIError as error:
        savepoint.rollback()
        if pending:
            return None
        raise CommandError(
            f"pghistory: the tracking declared for table {op.target!r} is not valid: "
            f"{_server_message(error)}"
        ) from error
    savepoint.rollback()
    event_key = (str(located[0]), str(located[1]))
    return event_key, _state(after)[event_key]


def _wrap_with_sync(upgrade_ops: ops.UpgradeOps, key: tuple[str | None, str], target: str) -> None:
    for index, op in enumerate(upgrade_ops.ops):
        if (
            isinstance(op, ops.ModifyTableOps)
            and not isinstance(op, SyncedModifyTableOps)
            and (op.schema, op.table_name) == key
        ):
            upgrade_ops.ops[index] = SyncedModifyTableOps(
                op.table_name, op.ops, target=target, schema=op.schema
            )


def _register() -> None:
    try:  # Alembic 1.18+: run after the table comparisons, whose operations come first
        from alembic.util import DispatchPriority

        comparators.dispatch_for("schema", priority=DispatchPriority.LAST)(compare_tracking)
    except ImportError:
        comparators.dispatch_for("schema")(compare_tracking)


def setup(plugin: Any) -> None:
    """Alembic 1.18+ plugin entry (``autogenerate_plugins=[..., "pghist"]``).

    ``import pghist.alembic`` already registers the comparator; this is for projects that
    list their plugins explicitly. It runs once either way.
    """
    from alembic.util import DispatchPriority

    plugin.add_autogenerate_comparator(compare_tracking, "schema", priority=DispatchPriority.LAST)


_register()
