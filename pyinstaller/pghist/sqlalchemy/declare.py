"""Tracking declared beside the table, for Alembic's autogenerate (``pghist.alembic``).

``pghist.sqlalchemy.track(Order, pghist.InsertEvent(), pghist.UpdateEvent())`` stores the
declaration in the table's ``Table.info``; nothing touches a database here. Autogenerate then
compares the declarations with what ``pghistory`` holds and writes ``op.track`` / ``op.untrack``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy import inspect as sa_inspect

from .._migrations import check_options
from ..trackers import Tracker

__all__ = ["Declaration", "declarations", "track"]

#: The key of ``Table.info`` that holds the declarations.
INFO_KEY = "pghistory"

T = TypeVar("T")


@dataclass(frozen=True)
class Declaration:
    """One event table's tracking: the arguments of ``pghist.track`` after the target."""

    trackers: tuple[Tracker, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str | None:
        value = self.options.get("model_name")
        return None if value is None else str(value)


def _table(table_or_model: object) -> Table:
    if isinstance(table_or_model, Table):
        return table_or_model
    table = getattr(table_or_model, "__table__", None)
    if isinstance(table, Table):
        return table
    mapper = sa_inspect(table_or_model, raiseerr=False)
    local = getattr(mapper, "local_table", None)
    if isinstance(local, Table):
        return local
    raise TypeError(
        f"pghist.sqlalchemy.track() takes a Table or a mapped class, got {table_or_model!r}"
    )


def track(table_or_model: T, *trackers: Tracker, **options: Any) -> T:
    """Declare that ``table_or_model`` is tracked, as ``pghist.track(conn, table, ...)`` would.

    With no trackers: insert and update events. Declaring again with the same ``model_name``
    replaces that declaration; another ``model_name`` adds a second history. Returns its argument,
    so it can follow a class definition or wrap a ``Table(...)``.
    """
    for tracker in trackers:
        if not isinstance(tracker, Tracker):
            raise TypeError(f"track() takes trackers (pghist.InsertEvent(), ...), got {tracker!r}")
    check_options(options)
    table = _table(table_or_model)
    declared: dict[str | None, Declaration] = table.info.setdefault(INFO_KEY, {})
    declaration = Declaration(tuple(trackers), dict(options))
    declared[declaration.model_name] = declaration
    return table_or_model


def declarations(table_or_model: object) -> list[Declaration]:
    """The tracking declared for a table (or mapped class), in declaration order."""
    declared: dict[str | None, Declaration] = _table(table_or_model).info.get(INFO_KEY, {})
    return list(declared.values())
