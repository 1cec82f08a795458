"""The connection the SQL query modules run on (SQLite today, PostgreSQL through an adapter).

Every query under :mod:`messenger_server.storage` is written once in portable SQL
(``?`` placeholders, ``ON CONFLICT``, ``RETURNING``) against this small interface,
which :class:`sqlite3.Connection` already provides and
:class:`~.postgres.PgConnection` provides on psycopg.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from .base import Tx

__all__ = ["UNREAD_COUNT_MAX", "Connection", "Cursor", "connection", "marks", "unprepared"]

UNREAD_COUNT_MAX = 10_000
"""Unread counts stop here ("10000+"): counting a million unread rows would stall the loop."""


class Cursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int:
        """Rows changed by an INSERT, UPDATE or DELETE."""
        ...

    def fetchone(self) -> Any:
        """The next row, or None."""
        ...

    def fetchall(self) -> list[Any]:
        """The remaining rows."""
        ...

    def __iter__(self) -> Iterator[Any]:
        """The remaining rows, one by one."""
        ...


class Connection(Protocol):
    """Runs statements with positional ``?`` parameters."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        """Run one statement."""
        ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        """Run one statement for each parameter row."""
        ...


def connection(tx: Tx) -> Connection:
    """The SQL connection behind a unit of work."""
    conn: Connection | None = getattr(tx, "conn", None)
    if conn is None:
        raise TypeError(f"{type(tx).__name__} has no SQL connection")
    return conn


def unprepared(tx: Tx) -> Connection:
    """:func:`connection`, each statement planned with its parameters at every run: for a
    search, whose plan depends on how selective its words are. PostgreSQL's connection
    says so (``PgConnection.unprepared``); SQLite plans every statement that way."""
    conn = connection(tx)
    make: Callable[[], Connection] | None = getattr(conn, "unprepared", None)
    return conn if make is None else make()


def marks(count: int) -> str:
    """``?, ?, ...`` for an ``IN (...)`` list of ``count`` values."""
    return ",".join("?" * count)
