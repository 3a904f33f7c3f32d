"""One statement-building layer, two executors: every call runs on a sync or an async connection.

A function of the package is written once, as a generator that yields what it needs from the
server (:class:`Execute`, or a :class:`Transaction` / :class:`Notices` around more of the same)
and receives the answers. :func:`dual` turns it into the public function: given a psycopg
``Connection`` it runs the steps and returns the result; given an ``AsyncConnection`` it returns
a coroutine that runs the same steps with ``await``. No SQL or logic is written twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast, overload

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from .errors import translate

__all__ = ["DualFunction", "Execute", "Notices", "Rows", "Steps", "Transaction", "dual", "run"]

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class Rows:
    """The answer to an :class:`Execute`: column names and rows (tuples, or dicts)."""

    columns: list[str]
    rows: list[Any]

    def first(self) -> Any:
        """The first column of the first row (the value of ``SELECT f(...)``)."""
        return self.rows[0][0]


@dataclass(frozen=True)
class Execute:
    """Run one statement; the answer is :class:`Rows` (empty when it returns none)."""

    query: sql.SQL | sql.Composed | str | bytes
    params: Sequence[object] | None = None
    dicts: bool = False


@dataclass(frozen=True)
class Transaction:
    """Run ``body`` in ``conn.transaction()`` (a savepoint inside one); answer: its result."""

    body: Steps[Any]


@dataclass(frozen=True)
class Notices:
    """Run ``body`` with ``handler`` receiving the server's notices; answer: its result."""

    handler: Callable[[psycopg.errors.Diagnostic], None]
    body: Steps[Any]


Request = Execute | Transaction | Notices
Steps = Generator[Request, Any, T]
Connection = psycopg.Connection[Any]
AsyncConnection = psycopg.AsyncConnection[Any]


# --- the executors ---------------------------------------------------------------------------


def _run_sync(conn: Connection, steps: Steps[T]) -> T:
    try:
        request = next(steps)
        while True:
            try:
                answer = _one_sync(conn, request)
            except Exception as exc:
                request = steps.throw(exc)
            else:
                request = steps.send(answer)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def _one_sync(conn: Connection, request: Request) -> Any:
    if isinstance(request, Execute):
        cursor = conn.cursor(row_factory=dict_row) if request.dicts else conn.cursor()
        with cursor as cur:
            cur.execute(request.query, request.params)
            if cur.description is None:
                return Rows([], [])
            return Rows([c.name for c in cur.description], cur.fetchall())
    if isinstance(request, Transaction):
        with conn.transaction():
            return _run_sync(conn, request.body)
    conn.add_notice_handler(request.handler)
    try:
        return _run_sync(conn, request.body)
    finally:
        conn.remove_notice_handler(request.handler)


async def _run_async(conn: AsyncConnection, steps: Steps[T]) -> T:
    try:
        request = next(steps)
        while True:
            try:
                answer = await _one_async(conn, request)
            except Exception as exc:
                request = steps.throw(exc)
            else:
                request = steps.send(answer)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def _one_async(conn: AsyncConnection, request: Request) -> Any:
    if isinstance(request, Execute):
        cursor = conn.cursor(row_factory=dict_row) if request.dicts else conn.cursor()
        async with cursor as cur:
            await cur.execute(request.query, request.params)
            if cur.description is None:
                return Rows([], [])
            return Rows([c.name for c in cur.description], await cur.fetchall())
    if isinstance(request, Transaction):
        async with conn.transaction():
            return await _run_async(conn, request.body)
    conn.add_notice_handler(request.handler)
    try:
        return await _run_async(conn, request.body)
    finally:
        conn.remove_notice_handler(request.handler)


def _bad_connection(conn: object) -> TypeError:
    return TypeError(
        f"pghist: expected a psycopg Connection or AsyncConnection, got {type(conn).__name__}"
    )


@overload
def run(conn: Connection, steps: Steps[T]) -> T: ...
@overload
def run(conn: AsyncConnection, steps: Steps[T]) -> Coroutine[Any, Any, T]: ...
def run(conn: Any, steps: Steps[T]) -> T | Coroutine[Any, Any, T]:
    """Run ``steps`` on ``conn``: at once (sync), or as the returned coroutine (async)."""
    if isinstance(conn, psycopg.AsyncConnection):

        async def run_async() -> T:
            with translate():
                return await _run_async(conn, steps)

        return run_async()
    if isinstance(conn, psycopg.Connection):
        with translate():
            return _run_sync(conn, steps)
    steps.close()
    raise _bad_connection(conn)


class DualFunction(Protocol[P, T]):
    """What :func:`dual` makes: ``T`` on a Connection, a coroutine of it on an AsyncConnection."""

    steps: Callable[..., Steps[T]]

    @overload
    def __call__(self, conn: Connection, /, *args: P.args, **kwargs: P.kwargs) -> T: ...
    @overload
    def __call__(
        self, conn: AsyncConnection, /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, T]: ...


def dual(steps: Callable[Concatenate[Any, P], Steps[T]]) -> DualFunction[P, T]:
    """Decorator: generator ``steps(conn, *args)`` becomes a function of a sync or async connection.

    The steps receive the connection too, for what it knows without the server (``conn.info``);
    they stay reachable as ``.steps``, for composing one function of others.
    """

    @functools.wraps(steps)
    def function(conn: Any, /, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(conn, psycopg.Connection | psycopg.AsyncConnection):
            raise _bad_connection(conn)
        return run(conn, steps(conn, *args, **kwargs))

    function.steps = steps  # type: ignore[attr-defined]
    return cast(DualFunction[P, T], function)
