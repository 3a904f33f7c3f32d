"""What the migration integrations share (``pghist.alembic``, ``pghist.django.operations``).

No framework here: migration tools need each call as one literal SQL statement (offline
``alembic upgrade --sql``, Django's ``sqlmigrate``), the trackers and conditions as the Python
source that rebuilds them (a migration file), and the tracking a database holds as trackers again
(the reverse of an untrack).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from psycopg import sql

from . import conditions as c
from . import trackers as t
from ._sql import Fragment, call, param
from .core import UNSET, track_sql

__all__ = [
    "TRACK_OPTIONS",
    "literal",
    "python_source",
    "qualified_name",
    "sync_statement",
    "track_statement",
    "trackers_from_registry",
    "untrack_statement",
]

#: The keyword options of ``pghist.track`` (and of the migration operations).
TRACK_OPTIONS = (
    "fields",
    "exclude",
    "model_name",
    "obj_field",
    "context_field",
    "context_mode",
    "append_only",
    "level",
    "partition_by",
)


def literal(fragment: Fragment) -> str:
    """``fragment`` as one SQL statement with its parameters written in as literals."""
    values = iter(fragment.params)

    def walk(part: sql.Composable) -> sql.Composable:
        if isinstance(part, sql.Composed):
            return sql.Composed([walk(child) for child in part])
        if isinstance(part, sql.Placeholder):
            return sql.Literal(next(values))
        return part

    return walk(fragment.query).as_string(None)


def check_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(TRACK_OPTIONS))
    if unknown:
        raise TypeError(
            f"pghistory track: unknown option {unknown[0]!r} (known: {', '.join(TRACK_OPTIONS)})"
        )


def track_statement(target: str, trackers: Sequence[t.Tracker], options: Mapping[str, Any]) -> str:
    """``SELECT pghistory.track(...)`` for ``target`` (regclass text), as literal SQL."""
    check_options(options)
    return literal(track_sql(target, *trackers, **options))


def untrack_statement(target: str, model_name: str | None = None, drop_events: bool = False) -> str:
    function = call(
        "untrack",
        [param(target, "regclass")],
        model_name=None if model_name is None else param(model_name, "text"),
        drop_events=param(bool(drop_events), "boolean") if drop_events else None,
    )
    return literal(Fragment(sql.SQL("SELECT {}").format(function.query), function.params))


def sync_statement(target: str) -> str:
    function = call("sync", [param(target, "regclass")])
    return literal(Fragment(sql.SQL("SELECT {}").format(function.query), function.params))


_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*\Z")


def qualified_name(schema: str | None, name: str) -> str:
    """``schema.name`` as regclass text: each part double-quoted only when it must be."""

    def quote(part: str) -> str:
        return part if _PLAIN.match(part) else '"' + part.replace('"', '""') + '"'

    return quote(name) if schema is None else f"{quote(schema)}.{quote(name)}"


# --- Python source of trackers and conditions (what a migration file holds) ------------


def _value(value: object, prefix: str) -> str:
    if isinstance(value, c.F):
        return f"{prefix}F({value.name!r})"
    if isinstance(value, Decimal):
        return f"{value!r}".replace("Decimal(", "decimal.Decimal(")
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(_value(item, prefix) for item in value) + "]"
    return repr(value)


def _q_source(q: c.Q, prefix: str) -> str:
    if q.negated:
        only = q.children[0] if len(q.children) == 1 else None
        inner = only if isinstance(only, c.Q) else c.Q._node(q.operator, list(_q_children(q)))
        return f"~{_q_source(inner, prefix)}"
    if q.operator == "OR":
        return "(" + " | ".join(_q_source(child, prefix) for child in _q_children(q)) + ")"
    args = [
        _q_source(child, prefix)
        if isinstance(child, c.Q)
        else f"{child[0]}={_value(child[1], prefix)}"
        for child in q.children
    ]
    return f"{prefix}Q({', '.join(args)})"


def _q_children(q: c.Q) -> Iterator[c.Q]:
    for child in q.children:
        yield child if isinstance(child, c.Q) else c.Q(**{child[0]: child[1]})


def condition_source(condition: c.BaseCondition, prefix: str = "pghist.") -> str:
    if isinstance(condition, c.Q):
        return _q_source(condition, prefix)
    if isinstance(condition, c.Condition):
        return f"{prefix}Condition({condition.sql!r})"
    if isinstance(condition, c._Change):
        args = [repr(field) for field in condition.fields]
        if condition.exclude is not None:
            args.append(f"exclude={list(condition.exclude)!r}")
        if condition.exclude_auto:
            args.append("exclude_auto=True")
        return f"{prefix}{type(condition).__name__}({', '.join(args)})"
    if isinstance(condition, c._Combined):
        operator = "&" if condition.operator == "AND" else "|"
        left = condition_source(condition.left, prefix)
        right = condition_source(condition.right, prefix)
        return f"({left} {operator} {right})"
    if isinstance(condition, c._Not):
        return f"~{condition_source(condition.inner, prefix)}"
    raise TypeError(f"cannot write {condition!r} into a migration")


def tracker_source(tracker: t.Tracker, prefix: str = "pghist.") -> str:
    args: list[str] = []
    if isinstance(tracker, t.RowEvent):
        args += [repr(tracker.label), repr(tracker.operation)]
    elif tracker.label is not None:
        args.append(repr(tracker.label))
    snapshot = getattr(tracker, "snapshot", None)
    if snapshot is not None:
        args.append(f"row={prefix}{'Old' if snapshot == 'old' else 'New'}")
    if isinstance(tracker, t.RowEvent) and tracker.timing is not None:
        args.append(f"timing={tracker.timing!r}")
    if tracker.condition is not None:
        args.append(f"condition={condition_source(tracker.condition, prefix)}")
    return f"{prefix}{type(tracker).__name__}({', '.join(args)})"


def python_source(value: object, prefix: str = "pghist.") -> str:
    """The Python expression that rebuilds ``value`` (a tracker, condition or option value)."""
    if isinstance(value, t.Tracker):
        return tracker_source(value, prefix)
    if isinstance(value, c.BaseCondition):
        return condition_source(value, prefix)
    if isinstance(value, tuple):
        value = list(value)
    return repr(value)


def call_source(name: str, args: Sequence[object], options: Mapping[str, Any]) -> str:
    """``name(arg, ..., option=value, ...)`` with each value as Python source."""
    parts = [python_source(arg) for arg in args]
    parts += [
        f"{key}={python_source(value)}" for key, value in options.items() if value is not UNSET
    ]
    text = f"{name}({', '.join(parts)})"
    if len(text) <= 88 or len(parts) < 2:
        return text
    inner = "".join(f"\n    {part}," for part in parts)
    return f"{name}({inner}\n)"


# --- the tracking a database holds, as trackers again ------------------------------------


_TOKEN = re.compile(r"/\*pghistory:(\w+) (\{.*\})\*/\Z", re.S)
_CHANGES: dict[str, type[c._Change]] = {
    "any_change": c.AnyChange,
    "all_change": c.AllChange,
    "any_dont_change": c.AnyDontChange,
    "all_dont_change": c.AllDontChange,
}


def condition_from_text(text: str) -> c.BaseCondition:
    """A stored condition: ``AnyChange(...)`` and friends when it is exactly their placeholder
    (which they rebuild to the same text), else ``Condition(text)``."""
    match = _TOKEN.match(text)
    kind = _CHANGES.get(match.group(1)) if match else None
    if match is None or kind is None:
        return c.Condition(text)
    try:
        spec = json.loads(match.group(2))
        fields = [str(name) for name in spec["fields"]]
        exclude = [str(name) for name in spec["exclude"]]
        exclude_auto = bool(spec["exclude_auto"])
    except (ValueError, KeyError, TypeError):
        return c.Condition(text)
    return kind(*fields, exclude=exclude or None, exclude_auto=exclude_auto)


def tracker_from_row(
    label: str, operation: str, snapshot: str | None, timing: str | None, condition: str | None
) -> t.Tracker:
    """The tracker that ``pghistory._tracker`` row describes, in its most readable class."""
    cond = None if condition is None else condition_from_text(condition)
    if operation == "manual":
        return t.ManualEvent(label)
    if operation == "truncate":
        return t.TruncateEvent(None if label == "truncate" else label)
    name = None if label == operation else label
    if timing == "after" and operation == "insert" and snapshot == "new":
        return t.InsertEvent(name, condition=cond)
    if timing == "after" and operation == "delete" and snapshot == "old":
        return t.DeleteEvent(name, condition=cond)
    if timing == "after" and operation == "update":
        return t.UpdateEvent(name, row=None if snapshot == "new" else snapshot, condition=cond)
    return t.RowEvent(label, operation, row=snapshot, timing=timing, condition=cond)


def trackers_from_registry(rows: Sequence[Sequence[Any]]) -> list[t.Tracker]:
    """Trackers from (label, operation, snapshot, timing, condition) rows."""
    return [tracker_from_row(*row) for row in rows]


def options_from_registry(
    row: Mapping[str, Any], default_event_table: bool, event_table: str
) -> dict[str, Any]:
    """The ``track`` options that rebuild the registry row ``row`` (defaults left out)."""
    options: dict[str, Any] = {}
    if row["fields"] is not None:
        options["fields"] = list(row["fields"])
    if row["exclude"] is not None:
        options["exclude"] = list(row["exclude"])
    if not default_event_table:
        options["model_name"] = event_table
    if row["obj_field"] is None:
        options["obj_field"] = None
    elif row["obj_field"] != "pgh_obj_id":
        options["obj_field"] = row["obj_field"]
    if row["context_mode"] != "id":
        options["context_mode"] = row["context_mode"]
    if row["context_field"] is not None and row["context_field"] not in (
        "pgh_context_id",
        "pgh_context",
    ):
        options["context_field"] = row["context_field"]
    if row["append_only"]:
        options["append_only"] = True
    if row["level"] != "auto":
        options["level"] = row["level"]
    if row["partition_by"] is not None:
        options["partition_by"] = row["partition_by"]
    return options


#: The registry of one tracked table: one row per event table, its trackers as JSON.
REGISTRY_QUERY = """
SELECT n.nspname AS event_schema, c.relname AS event_name, e.fields, e.exclude, e.obj_field,
       e.context_mode, e.context_field, e.append_only, e.level, e.partition_by,
       e.trigger_function IS NOT NULL AS active,
       coalesce((SELECT jsonb_agg(jsonb_build_array(r.label, r.operation, r.snapshot, r.timing,
                                                    r.condition) ORDER BY r.label)
                 FROM pghistory._tracker r WHERE r.event_table = e.event_table), '[]') AS trackers
FROM pghistory._event_table e
JOIN pg_catalog.pg_class c ON c.oid = e.event_table
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE e.target = pg_catalog.to_regclass(
    pg_catalog.format('%I.%I', CAST({schema} AS text), CAST({name} AS text)))
ORDER BY 1, 2
"""
