"""Conditions for trackers, in django-pghistory's words.

A condition is a SQL boolean expression over ``OLD`` and ``NEW``, what a trigger's
``WHEN`` clause accepts. Every condition object here compiles to an SQL expression
*whose value is that text*, evaluated by the server when ``track`` runs, so that
they compose:

* ``Condition("OLD.x IS DISTINCT FROM NEW.x")``: raw SQL, sent as a bound text parameter.
* ``Q(old__dollars__gt=F("new__dollars"))``: compiled here to
  ``OLD."dollars" > NEW."dollars"`` and sent as a bound text parameter.
* ``AnyChange("email")`` (and ``AllChange``, ``AnyDontChange``, ``AllDontChange``):
  a call of ``pghistory.any_change(...)``, which returns the text.
* ``a & b``, ``a | b``, ``~a``: ``(a) AND (b)``, ``(a) OR (b)``, ``NOT (a)``. ``Q``
  with ``Q`` combines here; anything else combines in SQL with ``||``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import overload

from psycopg import sql

from ._sql import Fragment, call, param

__all__ = [
    "LOOKUPS",
    "AllChange",
    "AllDontChange",
    "AnyChange",
    "AnyDontChange",
    "BaseCondition",
    "Condition",
    "F",
    "Q",
]


class BaseCondition:
    """Something that can be a tracker's ``condition``."""

    def as_sql(self) -> Fragment:
        """An SQL expression evaluating to the condition's text."""
        raise NotImplementedError

    def __and__(self, other: BaseCondition) -> BaseCondition:
        return _Combined("AND", self, _check(other, "&"))

    def __or__(self, other: BaseCondition) -> BaseCondition:
        return _Combined("OR", self, _check(other, "|"))

    def __invert__(self) -> BaseCondition:
        return _Not(self)


def _check(other: object, operator: str) -> BaseCondition:
    if not isinstance(other, BaseCondition):
        raise TypeError(
            f"cannot combine a condition with {type(other).__name__!r} using {operator}"
        )
    return other


class Condition(BaseCondition):
    """A raw SQL condition, e.g. ``Condition("OLD.dollars >= 100 AND NEW.dollars < 100")``."""

    def __init__(self, sql_text: str) -> None:
        if not isinstance(sql_text, str):
            raise TypeError("Condition() takes the SQL text of a boolean expression")
        if not sql_text.strip():
            raise ValueError("Condition() needs a non-empty SQL expression")
        self.sql = sql_text

    def as_sql(self) -> Fragment:
        return param(self.sql, "text")

    def __repr__(self) -> str:
        return f"Condition({self.sql!r})"


class _Combined(BaseCondition):
    def __init__(self, operator: str, left: BaseCondition, right: BaseCondition) -> None:
        self.operator = operator
        self.left = left
        self.right = right

    def as_sql(self) -> Fragment:
        left = self.left.as_sql()
        right = self.right.as_sql()
        # '(' || a || ') AND (' || b || ')': one text expression, evaluated server side.
        query = sql.SQL("('(' || {} || {} || {} || ')')").format(
            left.query, sql.Literal(f") {self.operator} ("), right.query
        )
        return Fragment(query, left.params + right.params)

    def __repr__(self) -> str:
        return f"({self.left!r} {'&' if self.operator == 'AND' else '|'} {self.right!r})"


class _Not(BaseCondition):
    def __init__(self, inner: BaseCondition) -> None:
        self.inner = inner

    def as_sql(self) -> Fragment:
        inner = self.inner.as_sql()
        return Fragment(sql.SQL("('NOT (' || {} || ')')").format(inner.query), inner.params)

    def __invert__(self) -> BaseCondition:
        return self.inner

    def __repr__(self) -> str:
        return f"~{self.inner!r}"


class _Change(BaseCondition):
    function = ""

    def __init__(
        self,
        *fields: str,
        exclude: Sequence[str] | None = None,
        exclude_auto: bool = False,
    ) -> None:
        for field in fields:
            if not isinstance(field, str):
                raise TypeError(f"{type(self).__name__}() takes column names, got {field!r}")
        if isinstance(exclude, str):
            raise TypeError("exclude= takes a list of column names, not a string")
        self.fields = tuple(fields)
        self.exclude = None if exclude is None else tuple(exclude)
        self.exclude_auto = bool(exclude_auto)

    def as_sql(self) -> Fragment:
        return call(
            self.function,
            fields=param(list(self.fields), "text[]") if self.fields else None,
            exclude=param(list(self.exclude), "text[]") if self.exclude is not None else None,
            exclude_auto=param(True, "boolean") if self.exclude_auto else None,
        )

    def __repr__(self) -> str:
        args = [repr(field) for field in self.fields]
        if self.exclude is not None:
            args.append(f"exclude={list(self.exclude)!r}")
        if self.exclude_auto:
            args.append("exclude_auto=True")
        return f"{type(self).__name__}({', '.join(args)})"


class AnyChange(_Change):
    """Any of the fields changed (no fields: any tracked column)."""

    function = "any_change"


class AllChange(_Change):
    """All of the fields changed."""

    function = "all_change"


class AnyDontChange(_Change):
    """At least one of the fields did not change."""

    function = "any_dont_change"


class AllDontChange(_Change):
    """None of the fields changed."""

    function = "all_dont_change"


# --- Q and F ---------------------------------------------------------------------------

LOOKUPS: dict[str, str] = {
    "exact": "=",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "in": "IN",
    "isnull": "IS NULL",
    "df": "IS DISTINCT FROM",
    "ndf": "IS NOT DISTINCT FROM",
}


def _quote_ident(name: str) -> str:
    if "\x00" in name:
        raise ValueError("a column name cannot contain a NUL character")
    return '"' + name.replace('"', '""') + '"'


def _row_column(path: str, what: str) -> tuple[str, str, list[str]]:
    """Split ``old__col__rest`` into (``OLD``, column, rest)."""
    parts = path.split("__")
    row = parts[0].upper()
    if row not in ("OLD", "NEW") or len(parts) < 2 or not parts[1]:
        raise ValueError(
            f"{what} {path!r} must name a row and a column: old__<column> or new__<column>"
        )
    return row, parts[1], parts[2:]


class F:
    """A reference to a column of ``OLD`` or ``NEW``: ``F("new__dollars")``."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError("F() takes a name like 'old__<column>' or 'new__<column>'")
        row, column, rest = _row_column(name, "F()")
        if rest:
            raise ValueError(f"F({name!r}): expected old__<column> or new__<column>")
        self.name = name
        self.row = row
        self.column = column

    def sql(self) -> str:
        return f"{self.row}.{_quote_ident(self.column)}"

    def __repr__(self) -> str:
        return f"F({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, F) and (other.row, other.column) == (self.row, self.column)

    def __hash__(self) -> int:
        return hash((self.row, self.column))


def _literal(value: object) -> str:
    """``value`` as an SQL literal, or the column an ``F`` names."""
    if isinstance(value, F):
        return value.sql()
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("PostgreSQL text cannot contain a NUL character")
    try:
        return sql.Literal(value).as_string(None).strip()
    except Exception as exc:
        raise TypeError(f"cannot use {type(value).__name__} value {value!r} in Q()") from exc


class Q(BaseCondition):
    """A condition in Django's lookup syntax over ``old__`` and ``new__`` columns.

    ``Q(old__dollars__gte=100, new__dollars__lt=100)``,
    ``Q(old__dollars__gt=F("new__dollars"))``, ``Q(new__email__isnull=False)``.
    Several keywords are ANDed; ``&``, ``|`` and ``~`` combine.
    """

    def __init__(self, *children: Q, **lookups: object) -> None:
        self.operator = "AND"
        self.negated = False
        self.children: list[Q | tuple[str, object]] = []
        for child in children:
            if not isinstance(child, Q):
                raise TypeError(f"Q() takes Q objects and keyword lookups, got {child!r}")
            self.children.append(child)
        for key, value in lookups.items():
            _compile_lookup(key, value)  # fail early on bad input
            self.children.append((key, value))

    @classmethod
    def _node(cls, operator: str, children: Iterable[Q], negated: bool = False) -> Q:
        node = cls()
        node.operator = operator
        node.negated = negated
        node.children = list(children)
        return node

    @overload
    def __and__(self, other: Q) -> Q: ...
    @overload
    def __and__(self, other: BaseCondition) -> BaseCondition: ...
    def __and__(self, other: BaseCondition) -> BaseCondition:
        if isinstance(other, Q):
            return Q._node("AND", [self, other])
        return super().__and__(other)

    @overload
    def __or__(self, other: Q) -> Q: ...
    @overload
    def __or__(self, other: BaseCondition) -> BaseCondition: ...
    def __or__(self, other: BaseCondition) -> BaseCondition:
        if isinstance(other, Q):
            return Q._node("OR", [self, other])
        return super().__or__(other)

    def __invert__(self) -> Q:
        return Q._node("AND", [self], negated=True)

    def _compound(self) -> bool:
        return self.negated is False and len(self.children) > 1

    def compile(self) -> str:
        """The SQL boolean expression over ``OLD``/``NEW``."""
        if not self.children:
            raise ValueError("an empty Q() is not a condition")
        parts = []
        for child in self.children:
            if isinstance(child, Q):
                text = child.compile()
                if child._compound() and len(self.children) > 1:
                    text = f"({text})"
                parts.append(text)
            else:
                parts.append(_compile_lookup(*child))
        text = f" {self.operator} ".join(parts)
        if self.negated:
            return f"NOT ({text})"
        return text

    def as_sql(self) -> Fragment:
        return param(self.compile(), "text")

    def __str__(self) -> str:
        return self.compile()

    def __repr__(self) -> str:
        return f"<Q: {self.compile()}>" if self.children else "<Q: (empty)>"


def _compile_lookup(key: str, value: object) -> str:
    row, column, rest = _row_column(key, "Q() lookup")
    if len(rest) > 1:
        raise ValueError(f"Q() lookup {key!r}: expected old__<column>[__<lookup>]")
    lookup = rest[0] if rest else "exact"
    if lookup not in LOOKUPS:
        raise ValueError(
            f"Q() lookup {key!r}: unknown lookup {lookup!r} (known: {', '.join(LOOKUPS)})"
        )
    target = f"{row}.{_quote_ident(column)}"
    if lookup == "isnull":
        if not isinstance(value, bool):
            raise ValueError(f"Q() lookup {key!r} takes True or False")
        return f"{target} IS NULL" if value else f"{target} IS NOT NULL"
    if lookup == "in":
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise ValueError(f"Q() lookup {key!r} takes a list of values")
        items = [_literal(item) for item in value]
        if not items:
            return "false"
        return f"{target} IN ({', '.join(items)})"
    if value is None:
        if lookup == "exact":
            return f"{target} IS NULL"
        if lookup not in ("df", "ndf"):
            raise ValueError(f"Q() lookup {key!r}: None only works with exact, df, ndf, isnull")
    return f"{target} {LOOKUPS[lookup]} {_literal(value)}"
