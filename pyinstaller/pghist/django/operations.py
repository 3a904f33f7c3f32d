"""History in Django migrations (``pip install 'pghistory[django]'``).

Migration operations, written by hand into a migration's ``operations`` list::

    from pghist.django.operations import InstallPghistory, Track, Untrack

    operations = [
        InstallPghistory(),              # pghist.install(): CREATE EXTENSION, or the script
        migrations.CreateModel("Item", ...),
        Track("shop.Item", pghist.InsertEvent(), pghist.UpdateEvent(condition=pghist.Q(...))),
    ]

``Track`` / ``Untrack`` take a model label (``"app.Model"``, resolved in the migration's state) or
a table name, and the arguments of ``pghist.track`` / ``pghist.untrack``; both are reversible and
``sqlmigrate`` shows their SQL. ``Sync(...)`` runs ``pghistory.sync`` for one table.

Schema changes of tracked tables: where the extension has no event trigger (it was created by a
role that is not a superuser), a write to a table whose columns changed fails until
``pghistory.sync`` runs. So, when ``migrate`` runs, every migration whose operations change a
model's table (add, remove, alter or rename a field, rename the model or its table) gets one more
step at its end, in its transaction, that syncs those tables if pghistory tracks them; and, for
the way back, the same at the end of its reversal. This is done on Django's ``pre_migrate``
signal, which hands over the very migration objects ``migrate`` then applies. A ``RunSQL`` that
alters a tracked table is not seen: follow it with ``Sync("app.Model")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from django.db.migrations.operations import AlterModelTable, RenameModel
    from django.db.migrations.operations.base import Operation
    from django.db.migrations.operations.fields import FieldOperation
    from django.db.migrations.operations.special import SeparateDatabaseAndState
    from django.db.models.signals import pre_migrate
except ImportError as error:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError("pghist.django needs Django: pip install 'pghistory[django]'") from error

from .. import _migrations as m
from ..installer import install
from ..trackers import Tracker

__all__ = ["InstallPghistory", "Sync", "Track", "Untrack"]


def _table(label_or_table: str, app_label: str, state: Any) -> str:
    """The table a model label names in ``state``, else ``label_or_table`` (regclass text)."""
    app, _, name = label_or_table.rpartition(".")
    try:
        model = state.apps.get_model(app or app_label, name)
    except (LookupError, ValueError):
        return label_or_table
    return m.qualified_name(None, str(model._meta.db_table))


def _execute(schema_editor: Any, statement: str) -> None:
    # params=None: the statement is complete (no placeholders), and stays as written in sqlmigrate.
    schema_editor.execute(statement, params=None)


class Track(Operation):  # type: ignore[misc]
    """Track a model's table: ``pghistory.track`` (reverse: ``pghistory.untrack``).

    ``Track("shop.Item", pghist.InsertEvent(), fields=["name"])``. Migrating back stops the
    tracking and keeps the history, unless ``drop_events_on_reverse=True`` (use it where the
    same migration creates the table, so that migrating back removes all it made).
    """

    reversible = True
    reduces_to_sql = True
    atomic = True

    def __init__(
        self,
        model_label_or_table: str,
        *trackers: Tracker,
        drop_events_on_reverse: bool = False,
        **options: Any,
    ) -> None:
        for tracker in trackers:
            if not isinstance(tracker, Tracker):
                raise TypeError(
                    f"Track() takes trackers (pghist.InsertEvent(), ...), got {tracker!r}"
                )
        m.check_options(options)
        self.target = model_label_or_table
        self.trackers = tuple(trackers)
        self.drop_events_on_reverse = drop_events_on_reverse
        self.options = options

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        table = _table(self.target, app_label, to_state)
        _execute(schema_editor, m.track_statement(table, self.trackers, self.options))

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        table = _table(self.target, app_label, from_state)
        model_name = self.options.get("model_name")
        statement = m.untrack_statement(table, model_name, self.drop_events_on_reverse)
        _execute(schema_editor, statement)

    def describe(self) -> str:
        return f"Track the history of {self.target}"

    @property
    def migration_name_fragment(self) -> str:
        return f"track_{self.target.replace('.', '_').lower()}"


class Untrack(Operation):  # type: ignore[misc]
    """Stop tracking: ``pghistory.untrack`` (reverse: track again with the given arguments).

    ``Untrack("shop.Item", pghist.InsertEvent(), ...)``: the trackers and options after the
    target are what migrating back tracks again (the tracking this migration ends); without
    them, the default trackers. ``model_name`` picks one event table; ``drop_events=True``
    drops the history (then migrating back starts a new one).
    """

    reversible = True
    reduces_to_sql = True
    atomic = True

    def __init__(
        self,
        model_label_or_table: str,
        *trackers: Tracker,
        drop_events: bool = False,
        **options: Any,
    ) -> None:
        m.check_options(options)
        self.target = model_label_or_table
        self.trackers = tuple(trackers)
        self.drop_events = drop_events
        self.options = options

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        table = _table(self.target, app_label, to_state)
        statement = m.untrack_statement(table, self.options.get("model_name"), self.drop_events)
        _execute(schema_editor, statement)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        table = _table(self.target, app_label, to_state)
        _execute(schema_editor, m.track_statement(table, self.trackers, self.options))

    def describe(self) -> str:
        return f"Stop tracking the history of {self.target}"

    @property
    def migration_name_fragment(self) -> str:
        return f"untrack_{self.target.replace('.', '_').lower()}"


class Sync(Operation):  # type: ignore[misc]
    """``pghistory.sync`` for one tracked table, in both directions (after a ``RunSQL``)."""

    reversible = True
    reduces_to_sql = True

    def __init__(self, model_label_or_table: str) -> None:
        self.target = model_label_or_table

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        _execute(schema_editor, m.sync_statement(_table(self.target, app_label, to_state)))

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        _execute(schema_editor, m.sync_statement(_table(self.target, app_label, to_state)))

    def describe(self) -> str:
        return f"Follow schema changes in the history of {self.target}"


class InstallPghistory(Operation):  # type: ignore[misc]
    """Install (or update) pghistory: ``pghist.install`` on the migration's connection.

    ``method`` as ``pghist.install``: "auto" (default), "files" or "script". Migrating back
    leaves it installed (uninstalling would drop every history): ``pghistory uninstall`` does that.
    """

    reversible = True
    reduces_to_sql = False

    def __init__(self, method: str = "auto") -> None:
        self.method = method

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.collect_sql:  # sqlmigrate: what the files method runs
            _execute(schema_editor, "CREATE EXTENSION IF NOT EXISTS pghistory")
            return
        import psycopg

        connection = schema_editor.connection
        connection.ensure_connection()
        raw = connection.connection
        if not isinstance(raw, psycopg.Connection):
            raise TypeError(
                "InstallPghistory runs pghist.install(), which needs the psycopg (3) driver: "
                "pip install 'psycopg[binary]' (Django uses it when installed), "
                "or install with `pghistory install` beforehand"
            )
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")  # open the migration's transaction: install() nests in it
        install(raw, self.method)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        pass

    def describe(self) -> str:
        return "Install the pghistory extension"


# --- pghistory.sync after schema changes of tracked tables -------------------------------

_OURS = (Track, Untrack, Sync, InstallPghistory)


def _schema_models(operations: Sequence[Any]) -> list[str]:
    """Lower-case names of the models whose tables these operations change."""
    names: list[str] = []
    for operation in operations:
        if isinstance(operation, SeparateDatabaseAndState):
            names += _schema_models(operation.database_operations)
        elif isinstance(operation, FieldOperation):
            names.append(operation.model_name_lower)
        elif isinstance(operation, RenameModel):  # either name: the state is before or after
            names += [operation.old_name_lower, operation.new_name_lower]
        elif isinstance(operation, AlterModelTable):
            names.append(operation.name_lower)
    return names


_TRACKED = """
SELECT DISTINCT e.target::text FROM pghistory._event_table e
WHERE e.trigger_function IS NOT NULL
  AND e.target IN (SELECT pg_catalog.to_regclass(t) FROM pg_catalog.unnest(%s::text[]) AS t)
ORDER BY 1
"""


class _SyncTracked(Operation):  # type: ignore[misc]
    """Added by the integration: sync the tracked tables a migration's schema operations changed.

    One at the end of the migration (``forwards``) and one at its start, whose backwards step
    runs last when the migration is reversed.
    """

    reversible = True
    reduces_to_sql = False
    elidable = True

    def __init__(self, models: Sequence[str], forwards: bool) -> None:
        self.models = list(models)
        self.forwards = forwards

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def _sync(self, app_label: str, schema_editor: Any, state: Any) -> None:
        if schema_editor.collect_sql:
            return
        tables = []
        for name in self.models:
            try:
                model = state.apps.get_model(app_label, name)
            except LookupError:
                continue
            tables.append(m.qualified_name(None, str(model._meta.db_table)))
        if not tables:
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT pg_catalog.to_regclass('pghistory._event_table') IS NOT NULL")
            if not cursor.fetchone()[0]:
                return
            cursor.execute(_TRACKED, [tables])
            tracked = [str(row[0]) for row in cursor.fetchall()]
        for table in tracked:
            _execute(schema_editor, m.sync_statement(table))

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if self.forwards:
            self._sync(app_label, schema_editor, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if not self.forwards:
            self._sync(app_label, schema_editor, to_state)

    def describe(self) -> str:
        return "pghistory.sync() for the tracked tables changed above"


def add_sync_steps(plan: Sequence[tuple[Any, bool]] | None, **kwargs: Any) -> None:
    """``pre_migrate`` receiver: give each planned migration that changes tables its sync steps."""
    for migration, _backwards in plan or ():
        if getattr(migration, "_pghist_sync_steps", False):
            continue
        migration._pghist_sync_steps = True
        models = sorted(set(_schema_models(migration.operations)))
        if models:
            migration.operations = [
                _SyncTracked(models, forwards=False),
                *migration.operations,
                _SyncTracked(models, forwards=True),
            ]


pre_migrate.connect(add_sync_steps, dispatch_uid="pghist.django.operations.add_sync_steps")
