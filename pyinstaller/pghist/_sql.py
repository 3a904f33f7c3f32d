"""A piece of SQL with its bound parameters, and helpers to build calls."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from psycopg import sql

__all__ = ["Fragment", "Query", "call", "join", "param"]

Query = sql.SQL | sql.Composed


@dataclass(frozen=True)
class Fragment:
    """An SQL expression (with ``%s`` placeholders) and the values they bind."""

    query: Query
    params: tuple[object, ...] = ()

    def render(self) -> str:
        """The SQL text, placeholders left as ``%s`` (tests and debugging; psycopg >= 3.2)."""
        return self.query.as_string(None)


def param(value: object, cast: str) -> Fragment:
    """A bound parameter cast to ``cast`` (a fixed type name written by us)."""
    return Fragment(sql.SQL("{}::" + cast).format(sql.Placeholder()), (value,))


def join(fragments: Iterable[Fragment], separator: str) -> Fragment:
    parts = list(fragments)
    return Fragment(
        sql.SQL(separator).join(part.query for part in parts),
        tuple(value for part in parts for value in part.params),
    )


def call(function: str, positional: Sequence[Fragment] = (), **named: Fragment | None) -> Fragment:
    """``pghistory.<function>(positional..., name => value...)``.

    Named arguments that are None are left out, so the server's defaults apply.
    """
    arguments = list(positional)
    for name, value in named.items():
        if value is None:
            continue
        arguments.append(
            Fragment(sql.SQL("{} => {}").format(sql.Identifier(name), value.query), value.params)
        )
    inner = join(arguments, ", ")
    return Fragment(
        sql.SQL("{}.{}({})").format(
            sql.Identifier("pghistory"), sql.Identifier(function), inner.query
        ),
        inner.params,
    )
