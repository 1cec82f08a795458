"""Queries of disappearing messages: the ``expiring`` and ``deliveries`` tables, and the
deletion of a message with its comments and the logged events that carry it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .base import Tx
from .sql import UNREAD_COUNT_MAX, Connection, connection, marks

__all__ = ["RetentionQueries", "SqlRetentionQueries", "retention_queries"]

_CHATS_PER_QUERY = 100
"""Chats of one :meth:`SqlRetentionQueries.gone_unread_in` statement (4 parameters each;
SQLite caps bound parameters)."""


class RetentionQueries(Protocol):
    """What the retention service needs of the database."""

    def add_expiring(
        self, message_id: int, chat_id: int, created_at: float, expires_at: float
    ) -> bool:
        """Start tracking a message; False if it already was (a retried send)."""
        ...

    def add_waiting(self, message_id: int, user_ids: Iterable[int]) -> None:
        """Recipients who have not got the message yet (offline when it was posted)."""
        ...

    def deliveries(
        self, user_id: int, message_ids: list[int]
    ) -> dict[int, tuple[float | None, bool]]:
        """``(delivered_at, expired)`` of the user's delivery rows of these messages."""
        ...

    def recipients(self, message_id: int) -> dict[int, tuple[float | None, bool]]:
        """``(delivered_at, expired)`` of every delivery row of one message, by user id."""
        ...

    def mark_delivered(self, user_id: int, message_ids: list[int] | None, now: float) -> None:
        """The user got these messages (None: every message still waiting for them) now."""
        ...

    def gone_unread(self, user_id: int, chat_id: int, after: int, cutoff: float) -> int:
        """Root messages of others after ``after`` in a chat that disappeared for the user
        (delivered at or before ``cutoff``, or expired)."""
        ...

    def gone_unread_in(
        self, user_id: int, chats: list[tuple[int, int]], cutoff: float
    ) -> dict[int, int]:
        """:meth:`gone_unread` of several ``(chat_id, after)`` at once: chat id -> count
        (chats with none left out)."""
        ...

    def next_due(self, ttl: float, max_age: float) -> float | None:
        """The soonest time something expires."""
        ...

    def too_old(self, before: float, limit: int) -> list[tuple[int, int]]:
        """``(message_id, chat_id)`` of messages posted at or before ``before``."""
        ...

    def due_deliveries(self, cutoff: float, limit: int) -> list[tuple[int, int, int]]:
        """``(message_id, user_id, chat_id)`` of late copies delivered at or before ``cutoff``."""
        ...

    def expire_delivery(self, message_id: int, user_id: int) -> None:
        """The user's late copy of a message expired."""
        ...

    def base_due(self, now: float, limit: int) -> list[tuple[int, int]]:
        """``(message_id, chat_id)`` whose copies delivered when posted expire by ``now``."""
        ...

    def waiting_users(self, message_id: int) -> set[int]:
        """Users with a delivery row of a message."""
        ...

    def expire_base(self, message_id: int, told: list[int]) -> None:
        """The copies delivered when posted expired; ``told`` are their recipients."""
        ...

    def gone_for_everyone(self, message_id: int) -> bool:
        """No recipient still has the message."""
        ...

    def delete_message(self, message_id: int) -> list[int]:
        """Delete a message with its comments and the logged events that carry them; their ids."""
        ...


class SqlRetentionQueries:
    """:class:`RetentionQueries` in portable SQL."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_expiring(
        self, message_id: int, chat_id: int, created_at: float, expires_at: float
    ) -> bool:
        """Start tracking a message; False if it already was (a retried send)."""
        cur = self.conn.execute(
            "INSERT INTO expiring (message_id, chat_id, created_at, expires_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
            (message_id, chat_id, created_at, expires_at),
        )
        return cur.rowcount > 0

    def add_waiting(self, message_id: int, user_ids: Iterable[int]) -> None:
        """Recipients who have not got the message yet (offline when it was posted)."""
        self.conn.executemany(
            "INSERT INTO deliveries (message_id, user_id) VALUES (?, ?)"
            " ON CONFLICT (message_id, user_id) DO NOTHING",
            [(message_id, u) for u in user_ids],
        )

    def deliveries(
        self, user_id: int, message_ids: list[int]
    ) -> dict[int, tuple[float | None, bool]]:
        """``(delivered_at, expired)`` of the user's delivery rows of these messages."""
        if not message_ids:
            return {}
        rows = self.conn.execute(
            "SELECT message_id, delivered_at, expired FROM deliveries"
            f" WHERE user_id = ? AND message_id IN ({marks(len(message_ids))})",
            (user_id, *message_ids),
        ).fetchall()
        return {r[0]: (r[1], bool(r[2])) for r in rows}

    def recipients(self, message_id: int) -> dict[int, tuple[float | None, bool]]:
        """``(delivered_at, expired)`` of every delivery row of one message, by user id."""
        rows = self.conn.execute(
            "SELECT user_id, delivered_at, expired FROM deliveries WHERE message_id = ?",
            (message_id,),
        ).fetchall()
        return {r[0]: (r[1], bool(r[2])) for r in rows}

    def mark_delivered(self, user_id: int, message_ids: list[int] | None, now: float) -> None:
        """The user got these messages (None: every message still waiting for them) now."""
        if message_ids is None:
            self.conn.execute(
                "UPDATE deliveries SET delivered_at = ? WHERE user_id = ? AND delivered_at IS NULL",
                (now, user_id),
            )
            return
        if not message_ids:
            return
        self.conn.execute(
            "UPDATE deliveries SET delivered_at = ? WHERE user_id = ?"
            f" AND delivered_at IS NULL AND message_id IN ({marks(len(message_ids))})",
            (now, user_id, *message_ids),
        )

    def gone_unread(self, user_id: int, chat_id: int, after: int, cutoff: float) -> int:
        """Root messages of others after ``after`` in a chat that disappeared for the user."""
        return self.gone_unread_in(user_id, [(chat_id, after)], cutoff).get(chat_id, 0)

    def gone_unread_in(
        self, user_id: int, chats: list[tuple[int, int]], cutoff: float
    ) -> dict[int, int]:
        """:meth:`gone_unread` of several ``(chat_id, after)`` at once: chat id -> count
        (chats with none left out). Like the unread count itself, only the oldest
        ``UNREAD_COUNT_MAX`` unread messages of a chat are looked at; one statement per
        ``_CHATS_PER_QUERY`` chats."""
        found: dict[int, int] = {}
        for start in range(0, len(chats), _CHATS_PER_QUERY):
            part = chats[start : start + _CHATS_PER_QUERY]
            unread = " UNION ALL ".join(
                "SELECT * FROM (SELECT m.id, m.chat_id, m.created_at FROM messages m"
                " WHERE m.chat_id = ? AND m.thread_root IS NULL AND m.id > ?"
                f" AND m.author_id != ? ORDER BY m.id LIMIT ?) AS q{n}"
                for n in range(len(part))
            )
            params: list[float] = []
            for chat_id, after in part:
                params += (chat_id, after, user_id, UNREAD_COUNT_MAX)
            rows = self.conn.execute(
                f"SELECT u.chat_id, count(*) FROM ({unread}) AS u LEFT JOIN deliveries d"
                " ON d.message_id = u.id AND d.user_id = ?"
                " WHERE (d.message_id IS NULL AND u.created_at <= ?)"
                " OR d.expired = 1 OR d.delivered_at <= ? GROUP BY u.chat_id",
                (*params, user_id, cutoff, cutoff),
            ).fetchall()
            found.update((int(r[0]), int(r[1])) for r in rows)
        return found

    def next_due(self, ttl: float, max_age: float) -> float | None:
        """The soonest time something expires."""
        candidates = [
            self.conn.execute("SELECT min(expires_at) FROM expiring WHERE partial = 0").fetchone()[
                0
            ],
            self.conn.execute(
                "SELECT min(delivered_at) + ? FROM deliveries"
                " WHERE expired = 0 AND delivered_at IS NOT NULL",
                (ttl,),
            ).fetchone()[0],
            self.conn.execute("SELECT min(created_at) + ? FROM expiring", (max_age,)).fetchone()[0],
        ]
        found = [float(c) for c in candidates if c is not None]
        return min(found) if found else None

    def too_old(self, before: float, limit: int) -> list[tuple[int, int]]:
        """``(message_id, chat_id)`` of messages posted at or before ``before``."""
        rows = self.conn.execute(
            "SELECT message_id, chat_id FROM expiring WHERE created_at <= ? LIMIT ?",
            (before, limit),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def due_deliveries(self, cutoff: float, limit: int) -> list[tuple[int, int, int]]:
        """``(message_id, user_id, chat_id)`` of late copies delivered at or before ``cutoff``."""
        rows = self.conn.execute(
            "SELECT d.message_id, d.user_id, e.chat_id FROM deliveries d"
            " JOIN expiring e ON e.message_id = d.message_id"
            " WHERE d.expired = 0 AND d.delivered_at IS NOT NULL AND d.delivered_at <= ? LIMIT ?",
            (cutoff, limit),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def expire_delivery(self, message_id: int, user_id: int) -> None:
        """The user's late copy of a message expired."""
        self.conn.execute(
            "UPDATE deliveries SET expired = 1 WHERE message_id = ? AND user_id = ?",
            (message_id, user_id),
        )

    def base_due(self, now: float, limit: int) -> list[tuple[int, int]]:
        """``(message_id, chat_id)`` whose copies delivered when posted expire by ``now``."""
        rows = self.conn.execute(
            "SELECT message_id, chat_id FROM expiring WHERE partial = 0 AND expires_at <= ?"
            " LIMIT ?",
            (now, limit),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def waiting_users(self, message_id: int) -> set[int]:
        """Users with a delivery row of a message."""
        rows = self.conn.execute(
            "SELECT user_id FROM deliveries WHERE message_id = ?", (message_id,)
        ).fetchall()
        return {r[0] for r in rows}

    def expire_base(self, message_id: int, told: list[int]) -> None:
        """The copies delivered when posted expired; ``told`` are their recipients."""
        self.conn.executemany(
            "INSERT INTO deliveries (message_id, user_id, delivered_at, expired)"
            " VALUES (?, ?, NULL, 1) ON CONFLICT (message_id, user_id) DO NOTHING",
            [(message_id, u) for u in told],
        )
        self.conn.execute("UPDATE expiring SET partial = 1 WHERE message_id = ?", (message_id,))

    def gone_for_everyone(self, message_id: int) -> bool:
        """No recipient still has the message."""
        row = self.conn.execute(
            "SELECT e.partial, (SELECT count(*) FROM deliveries d"
            " WHERE d.message_id = e.message_id AND d.expired = 0)"
            " FROM expiring e WHERE e.message_id = ?",
            (message_id,),
        ).fetchone()
        return row is not None and bool(row[0]) and row[1] == 0

    def delete_message(self, message_id: int) -> list[int]:
        """Delete a message with its comments and the logged events that carry them; their ids."""
        rows = self.conn.execute(
            "SELECT id FROM messages WHERE thread_root = ?", (message_id,)
        ).fetchall()
        ids = [message_id, *(r[0] for r in rows)]
        among = marks(len(ids))
        # the logged "message" events carry the text: they go too (resume sees the deletion);
        # events logged before they named their message were found by expiring.event_seq
        self.conn.execute(
            f"DELETE FROM events WHERE message_id IN ({among}) OR seq IN"
            f" (SELECT event_seq FROM expiring WHERE message_id IN ({among})"
            " AND event_seq IS NOT NULL)",
            (*ids, *ids),
        )
        self.conn.execute(f"DELETE FROM messages WHERE id IN ({among})", ids)
        for table in ("message_edits", "reactions", "pins"):
            self.conn.execute(f"DELETE FROM {table} WHERE message_id IN ({among})", ids)
        self.conn.execute(f"DELETE FROM deliveries WHERE message_id IN ({among})", ids)
        self.conn.execute(f"DELETE FROM expiring WHERE message_id IN ({among})", ids)
        self.conn.execute(f"DELETE FROM mentions WHERE message_id IN ({among})", ids)
        return ids


def retention_queries(tx: Tx) -> RetentionQueries:
    """The retention queries of a unit of work."""
    return SqlRetentionQueries(connection(tx))
