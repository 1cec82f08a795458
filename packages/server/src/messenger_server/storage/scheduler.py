"""Queries of scheduled messages (the ``scheduled`` table).

A row changes state only along :data:`messenger_server.states.SCHEDULED`: every
state change is guarded by the states it may come from. On PostgreSQL a send claims its
rows with ``FOR UPDATE SKIP LOCKED`` (several nodes send at once, never the same row) and a
cancel locks its row ``FOR UPDATE`` (it waits for a send of that row to commit, then sees
``sent``); SQLite's one writer gives the same without the clauses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from messenger_protocol import ScheduledMessage

from ..states import SCHEDULED, sources
from .base import Tx
from .sql import Connection, connection, marks

__all__ = ["DueMessage", "ScheduledQueries", "SqlScheduledQueries", "scheduled_queries"]

_COLUMNS = "id, chat_id, text, send_at, created_at, state, failure, message_id"


@dataclass(frozen=True, slots=True)
class DueMessage:
    """A pending scheduled message whose time has come, with its author."""

    id: int
    user_id: int
    login: str
    chat_id: int
    text: str


def _item(row: Any) -> ScheduledMessage:
    return ScheduledMessage(
        id=row[0],
        chat_id=row[1],
        text=row[2],
        send_at=row[3],
        created_at=row[4],
        state=row[5],
        failure=row[6],
        message_id=row[7],
    )


class ScheduledQueries(Protocol):
    """What the scheduler needs of the database."""

    def pending_count(self, user_id: int) -> int:
        """A user's messages still waiting to be sent."""
        ...

    def insert(self, user_id: int, chat_id: int, text: str, send_at: float, now: float) -> int:
        """Store a pending message; its id."""
        ...

    def get(self, scheduled_id: int) -> ScheduledMessage | None:
        """One scheduled message."""
        ...

    def owned(self, scheduled_id: int, user_id: int) -> ScheduledMessage | None:
        """One scheduled message of this user."""
        ...

    def owned_for_update(self, scheduled_id: int, user_id: int) -> ScheduledMessage | None:
        """:meth:`owned`, its row locked until the transaction ends (waits for a send)."""
        ...

    def pending(self, user_id: int) -> list[ScheduledMessage]:
        """A user's pending messages, soonest first."""
        ...

    def finished(self, user_id: int, limit: int) -> list[ScheduledMessage]:
        """A user's newest ``limit`` sent, failed or cancelled messages, oldest first."""
        ...

    def next_due(self) -> float | None:
        """When the soonest pending message falls due."""
        ...

    def due(self, now: float) -> list[DueMessage]:
        """Pending messages due at ``now``, in the order they fell due."""
        ...

    def claim_due(self, now: float, limit: int) -> list[DueMessage]:
        """Up to ``limit`` of :meth:`due`, their rows locked until the transaction ends;
        rows another transaction (node) has locked are passed over."""
        ...

    def move(
        self,
        scheduled_id: int,
        to: str,
        *,
        failure: str | None = None,
        message_id: int | None = None,
    ) -> bool:
        """Move a message to state ``to`` if its state allows it; False if it did not."""
        ...


class SqlScheduledQueries:
    """:class:`ScheduledQueries` in portable SQL."""

    def __init__(self, conn: Connection, *, locking: bool = False) -> None:
        self.conn = conn
        self.locking = locking
        """Row locks are taken (PostgreSQL); SQLite's single writer needs none."""

    def pending_count(self, user_id: int) -> int:
        """A user's messages still waiting to be sent."""
        row = self.conn.execute(
            "SELECT count(*) FROM scheduled WHERE user_id = ? AND state = 'pending'", (user_id,)
        ).fetchone()
        return int(row[0])

    def insert(self, user_id: int, chat_id: int, text: str, send_at: float, now: float) -> int:
        """Store a pending message; its id."""
        row = self.conn.execute(
            "INSERT INTO scheduled (user_id, chat_id, text, send_at, created_at, state)"
            " VALUES (?, ?, ?, ?, ?, 'pending') RETURNING id",
            (user_id, chat_id, text, send_at, now),
        ).fetchone()
        return int(row[0])

    def get(self, scheduled_id: int) -> ScheduledMessage | None:
        """One scheduled message."""
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM scheduled WHERE id = ?", (scheduled_id,)
        ).fetchone()
        return None if row is None else _item(row)

    def owned(self, scheduled_id: int, user_id: int) -> ScheduledMessage | None:
        """One scheduled message of this user."""
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM scheduled WHERE id = ? AND user_id = ?",
            (scheduled_id, user_id),
        ).fetchone()
        return None if row is None else _item(row)

    def owned_for_update(self, scheduled_id: int, user_id: int) -> ScheduledMessage | None:
        """:meth:`owned`, its row locked until the transaction ends (waits for a send)."""
        lock = " FOR UPDATE" if self.locking else ""
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM scheduled WHERE id = ? AND user_id = ?{lock}",
            (scheduled_id, user_id),
        ).fetchone()
        return None if row is None else _item(row)

    def pending(self, user_id: int) -> list[ScheduledMessage]:
        """A user's pending messages, soonest first."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM scheduled WHERE user_id = ? AND state = 'pending'"
            " ORDER BY send_at, id",
            (user_id,),
        ).fetchall()
        return [_item(r) for r in rows]

    def finished(self, user_id: int, limit: int) -> list[ScheduledMessage]:
        """A user's newest ``limit`` sent, failed or cancelled messages, oldest first."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM scheduled WHERE user_id = ? AND state != 'pending'"
            " ORDER BY id DESC LIMIT ?",
            (user_id, limit),
        ).fetchall()
        return [_item(r) for r in reversed(rows)]

    def next_due(self) -> float | None:
        """When the soonest pending message falls due."""
        row = self.conn.execute(
            "SELECT min(send_at) FROM scheduled WHERE state = 'pending'"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def due(self, now: float) -> list[DueMessage]:
        """Pending messages due at ``now``, in the order they fell due."""
        rows = self.conn.execute(
            "SELECT s.id, s.user_id, u.login, s.chat_id, s.text FROM scheduled s"
            " JOIN users u ON u.id = s.user_id"
            " WHERE s.state = 'pending' AND s.send_at <= ? ORDER BY s.send_at, s.id",
            (now,),
        ).fetchall()
        return [DueMessage(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def claim_due(self, now: float, limit: int) -> list[DueMessage]:
        """Up to ``limit`` of :meth:`due`, their rows locked until the transaction ends;
        rows another transaction (node) has locked are passed over."""
        lock = " FOR UPDATE OF s SKIP LOCKED" if self.locking else ""
        rows = self.conn.execute(
            "SELECT s.id, s.user_id, u.login, s.chat_id, s.text FROM scheduled s"
            " JOIN users u ON u.id = s.user_id"
            " WHERE s.state = 'pending' AND s.send_at <= ? ORDER BY s.send_at, s.id"
            f" LIMIT ?{lock}",
            (now, limit),
        ).fetchall()
        return [DueMessage(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def move(
        self,
        scheduled_id: int,
        to: str,
        *,
        failure: str | None = None,
        message_id: int | None = None,
    ) -> bool:
        """Move a message to state ``to`` if its state allows it; False if it did not."""
        source = sources(SCHEDULED, to)
        if not source:
            raise ValueError(f"no scheduled message may become {to!r}")
        cur = self.conn.execute(
            "UPDATE scheduled SET state = ?, failure = ?, message_id = ?"
            f" WHERE id = ? AND state IN ({marks(len(source))})",
            (to, failure, message_id, scheduled_id, *source),
        )
        return cur.rowcount > 0


def scheduled_queries(tx: Tx) -> ScheduledQueries:
    """The scheduled-message queries of a unit of work."""
    return SqlScheduledQueries(connection(tx), locking=tx.dialect == "postgresql")
