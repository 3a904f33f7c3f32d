"""Trackers, in django-pghistory's words.

Each tracker becomes a call of the SQL function of the same meaning
(``InsertEvent`` -> ``pghistory.insert_event(...)``), which returns a
``pghistory.tracker`` value for ``pghistory.track``. Only the arguments you give are
passed, so the server's defaults (labels ``insert``/``update``/``delete``, snapshot
``new``, timing ``after``) apply otherwise.
"""

from __future__ import annotations

from typing import Final

from ._sql import Fragment, call, param
from .conditions import BaseCondition, Condition

__all__ = [
    "AfterDelete",
    "AfterInsert",
    "AfterInsertOrUpdate",
    "AfterUpdate",
    "BeforeDelete",
    "BeforeUpdate",
    "DeleteEvent",
    "InsertEvent",
    "ManualEvent",
    "New",
    "Old",
    "RowEvent",
    "Tracker",
    "TruncateEvent",
    "UpdateEvent",
]

#: Snapshot the row as it was before the change (``snapshot => 'old'``).
Old: Final = "old"
#: Snapshot the row as it is after the change (``snapshot => 'new'``).
New: Final = "new"


def _condition(value: BaseCondition | str | None) -> BaseCondition | None:
    if value is None or isinstance(value, BaseCondition):
        return value
    if isinstance(value, str):
        return Condition(value)
    raise TypeError(
        "condition= takes a pghistory condition (Q, AnyChange, Condition, ...) or SQL text"
    )


def _snapshot(row: str | None, snapshot: str | None) -> str | None:
    if row is not None and snapshot is not None and row.lower() != snapshot.lower():
        raise ValueError("give row= or snapshot=, not both")
    value = row if row is not None else snapshot
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("row= takes pghistory.Old or pghistory.New")
    return value.lower()


def _label(value: str | None, required: bool, what: str) -> str | None:
    if value is None:
        if required:
            raise TypeError(f"{what} needs a label")
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what}: the label must be a string, got {value!r}")
    return value


class Tracker:
    """Base class of trackers: something ``track`` can take."""

    function: str = ""

    def __init__(
        self,
        label: str | None = None,
        *,
        condition: BaseCondition | str | None = None,
    ) -> None:
        self.label = _label(label, False, type(self).__name__)
        self.condition = _condition(condition)

    def _arguments(self) -> dict[str, Fragment | None]:
        return {
            "label": None if self.label is None else param(self.label, "text"),
            "condition": None if self.condition is None else self.condition.as_sql(),
        }

    def as_sql(self) -> Fragment:
        """The SQL call that returns this ``pghistory.tracker``."""
        return call(self.function, (), **self._arguments())

    def __repr__(self) -> str:
        parts = [] if self.label is None else [repr(self.label)]
        parts += [f"{key}={value!r}" for key, value in self._repr_options().items()]
        return f"{type(self).__name__}({', '.join(parts)})"

    def _repr_options(self) -> dict[str, object]:
        return {} if self.condition is None else {"condition": self.condition}


class InsertEvent(Tracker):
    """An event after each insert (default label ``insert``), storing the new row."""

    function = "insert_event"


class DeleteEvent(Tracker):
    """An event after each delete (default label ``delete``), storing the old row."""

    function = "delete_event"


class UpdateEvent(Tracker):
    """An event after an update that changed a tracked column (default label ``update``).

    ``row=pghistory.Old`` stores the row as it was before the update (default: as after).
    """

    function = "update_event"

    def __init__(
        self,
        label: str | None = None,
        *,
        row: str | None = None,
        snapshot: str | None = None,
        condition: BaseCondition | str | None = None,
    ) -> None:
        super().__init__(label, condition=condition)
        self.snapshot = _snapshot(row, snapshot)

    def _arguments(self) -> dict[str, Fragment | None]:
        arguments = super()._arguments()
        return {
            "label": arguments["label"],
            "snapshot": None if self.snapshot is None else param(self.snapshot, "text"),
            "condition": arguments["condition"],
        }

    def _repr_options(self) -> dict[str, object]:
        options: dict[str, object] = {} if self.snapshot is None else {"row": self.snapshot}
        return options | super()._repr_options()


class TruncateEvent(Tracker):
    """Before a TRUNCATE, an event for every row of the table (default label ``truncate``).

    Stores each row as it was, so a truncation never erases what was there.
    """

    function = "truncate_event"

    def __init__(self, label: str | None = None) -> None:
        super().__init__(label)


class ManualEvent(Tracker):
    """No trigger: events only from ``create_event(..., label=...)``."""

    function = "manual_event"

    def __init__(self, label: str) -> None:
        super().__init__(_label(label, True, "ManualEvent"))


class RowEvent(Tracker):
    """A row-level event: ``operation`` insert, update or delete; ``timing`` after or before."""

    function = "row_event"

    def __init__(
        self,
        label: str,
        operation: str,
        *,
        row: str | None = None,
        snapshot: str | None = None,
        condition: BaseCondition | str | None = None,
        timing: str | None = None,
    ) -> None:
        super().__init__(_label(label, True, "RowEvent"), condition=condition)
        if not isinstance(operation, str):
            raise TypeError("RowEvent: operation is one of 'insert', 'update', 'delete'")
        self.operation = operation.lower()
        self.snapshot = _snapshot(row, snapshot)
        self.timing = None if timing is None else timing.lower()

    def _arguments(self) -> dict[str, Fragment | None]:
        arguments = super()._arguments()
        return {
            "label": arguments["label"],
            "operation": param(self.operation, "text"),
            "snapshot": None if self.snapshot is None else param(self.snapshot, "text"),
            "condition": arguments["condition"],
            "timing": None if self.timing is None else param(self.timing, "text"),
        }

    def _repr_options(self) -> dict[str, object]:
        options: dict[str, object] = {"operation": self.operation}
        if self.snapshot is not None:
            options["row"] = self.snapshot
        if self.timing is not None:
            options["timing"] = self.timing
        return options | super()._repr_options()


class _Labelled(Tracker):
    def __init__(self, label: str, *, condition: BaseCondition | str | None = None) -> None:
        super().__init__(_label(label, True, type(self).__name__), condition=condition)


class AfterInsert(_Labelled):
    """After insert, storing the new row."""

    function = "after_insert"


class AfterUpdate(_Labelled):
    """After update, storing the new row."""

    function = "after_update"


class AfterDelete(_Labelled):
    """After delete, storing the old row."""

    function = "after_delete"


class BeforeUpdate(_Labelled):
    """Before update, storing the new row."""

    function = "before_update"


class BeforeDelete(_Labelled):
    """Before delete, storing the old row."""

    function = "before_delete"


class AfterInsertOrUpdate(_Labelled):
    """After insert or update, storing the new row."""

    function = "after_insert_or_update"
