"""Queries of disappearing messages: the ``expiring``, ``deliveries``, ``online_spans``
and ``delivered_cursors`` tables, and the deletion of a message with its comments and the
logged events that carry it.

Who is still waiting for a message follows from cursors, not from a row per recipient:
a member of the chat (joined by the time it was posted, not its author) waits for a
tracked message (``expiring.by_cursor``) when no ``online_spans`` range of theirs holds
its id and they have no ``deliveries`` row of it yet. Messages tracked before the cursors
(``by_cursor = 0``) keep the old rule: only a ``deliveries`` row makes a waiting copy.
"""

from __future__ import annotations

import functools
from typing import Protocol

from .base import Tx
from .sql import UNREAD_COUNT_MAX, Connection, connection, marks

__all__ = ["RetentionQueries", "SqlRetentionQueries", "retention_queries"]

_CHATS_PER_QUERY = 100
"""Chats of one :meth:`SqlRetentionQueries.gone_unread_in` statement (4 parameters each;
SQLite caps bound parameters)."""


def _waiting_for(user: str, message: str) -> str:
    """SQL true when the member ``user`` (a column) never had the tracked message
    ``message`` (an ``expiring`` alias) pushed to a live stream and has no row of it."""
    return (
        f"{message}.by_cursor = 1"
        f" AND NOT EXISTS (SELECT 1 FROM online_spans s WHERE s.user_id = {user}"
        f" AND s.after_id < {message}.message_id"
        f" AND (s.until_id IS NULL OR s.until_id >= {message}.message_id))"
        f" AND NOT EXISTS (SELECT 1 FROM deliveries d0 WHERE d0.user_id = {user}"
        f" AND d0.message_id = {message}.message_id)"
    )


@functools.lru_cache(maxsize=_CHATS_PER_QUERY)
def _gone_unread_sql(chats: int) -> str:
    """The statement of :meth:`SqlRetentionQueries.gone_unread_in` for ``chats`` chats
    (built once per count: /chats asks at every request)."""
    unread = " UNION ALL ".join(
        "SELECT * FROM (SELECT m.id, m.chat_id, m.created_at FROM messages m"
        " WHERE m.chat_id = ? AND m.thread_root IS NULL AND m.id > ?"
        f" AND m.author_id != ? ORDER BY m.id LIMIT ?) AS q{n}"
        for n in range(chats)
    )
    # gone: a row of the user's copy says it expired or was delivered by the cutoff; or,
    # posted by the cutoff, no row and the user is not still waiting for it. A message
    # posted after the cutoff (CASE runs one branch) needs no look-up when the user has no
    # such row after the read cursors at all (asked once per statement: the subquery names
    # no column of the row), else one; joins looked up its row, its tracking and the member
    # for every message
    late = (
        "EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = u.id"
        " AND d.user_id = ? AND (d.expired = 1 OR d.delivered_at <= ?))"
    )
    any_late = (
        "EXISTS (SELECT 1 FROM deliveries dx WHERE dx.user_id = ?"
        " AND dx.message_id > ? AND (dx.expired = 1 OR dx.delivered_at <= ?))"
    )
    return (
        f"SELECT u.chat_id, count(*) FROM ({unread}) AS u WHERE CASE"
        f" WHEN u.created_at > ? THEN {any_late} AND {late}"
        f" ELSE {late} OR (NOT EXISTS (SELECT 1 FROM deliveries d1"
        " WHERE d1.message_id = u.id AND d1.user_id = ?)"
        " AND NOT EXISTS (SELECT 1 FROM expiring e JOIN members mem"
        " ON mem.chat_id = u.chat_id AND mem.user_id = ?"
        " WHERE e.message_id = u.id AND mem.joined_at <= e.created_at"
        f" AND {_waiting_for('mem.user_id', 'e')})) END GROUP BY u.chat_id"
    )


@functools.lru_cache(maxsize=_CHATS_PER_QUERY)
def _maybe_gone_sql(chats: int) -> str:
    """Whether :func:`_gone_unread_sql` can count anything: a late copy of the user's
    after the read cursors, or an unread message (of the oldest ``UNREAD_COUNT_MAX``)
    posted by the cutoff. Without either every unread message is still there for them,
    and this reads the unread index once (the counting statement looked each row up)."""
    old = " OR ".join(
        "EXISTS (SELECT 1 FROM (SELECT m.created_at FROM messages m WHERE m.chat_id = ?"
        " AND m.thread_root IS NULL AND m.id > ? AND m.author_id != ? ORDER BY m.id LIMIT ?)"
        f" AS q{n} WHERE q{n}.created_at <= ?)"
        for n in range(chats)
    )
    return (
        "SELECT EXISTS (SELECT 1 FROM deliveries dx WHERE dx.user_id = ?"
        f" AND dx.message_id > ? AND (dx.expired = 1 OR dx.delivered_at <= ?)) OR {old}"
    )


class RetentionQueries(Protocol):
    """What the retention service needs of the database."""

    def add_expiring(
        self, message_id: int, chat_id: int, created_at: float, expires_at: float
    ) -> bool:
        """Start tracking a message; False if it already was (a retried send)."""
        ...

    def last_message_id(self) -> int:
        """The newest message id (0 with none)."""
        ...

    def set_online(self, user_id: int, node: str, online: bool, boundary: int) -> None:
        """The user got (``online``) or lost their live streams on ``node``: messages
        after ``boundary`` reach them through the stream (or not any more)."""
        ...

    def end_spans(self, node: str, boundary: int) -> None:
        """Close every open online span of ``node`` at ``boundary`` (the node restarts)."""
        ...

    def prune_spans(self) -> None:
        """Forget online spans that end before the oldest tracked message."""
        ...

    def deliveries(
        self, user_id: int, message_ids: list[int]
    ) -> dict[int, tuple[float | None, bool]]:
        """``(delivered_at, expired)`` of the user's copies of these messages that were not
        delivered when posted: ``(None, False)`` for one still waiting for them."""
        ...

    def recipients(self, message_id: int) -> dict[int, tuple[float | None, bool]]:
        """:meth:`deliveries` of one message for every member, by user id."""
        ...

    def mark_delivered(self, user_id: int, message_ids: list[int] | None, now: float) -> None:
        """The user got these messages (None: every message still waiting for them) now.
        With ``message_ids`` those are ones :meth:`deliveries` said were waiting."""
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
        """Users whose copy was not delivered when posted (waiting, delivered late or
        expired)."""
        ...

    def expire_base(self, message_id: int) -> None:
        """The copies delivered when posted expired."""
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
            "INSERT INTO expiring (message_id, chat_id, created_at, expires_at, by_cursor)"
            " VALUES (?, ?, ?, ?, 1) ON CONFLICT (message_id) DO NOTHING",
            (message_id, chat_id, created_at, expires_at),
        )
        return cur.rowcount > 0

    def last_message_id(self) -> int:
        """The newest message id (0 with none)."""
        value = self.conn.execute("SELECT max(id) FROM messages").fetchone()[0]
        return int(value or 0)

    def set_online(self, user_id: int, node: str, online: bool, boundary: int) -> None:
        """The user got (``online``) or lost their live streams on ``node``: messages
        after ``boundary`` reach them through the stream (or not any more)."""
        open_span = self.conn.execute(
            "SELECT after_id FROM online_spans WHERE user_id = ? AND node = ? AND until_id IS NULL",
            (user_id, node),
        ).fetchone()
        if online:
            if open_span is None:
                self.conn.execute(
                    "INSERT INTO online_spans (user_id, node, after_id) VALUES (?, ?, ?)",
                    (user_id, node, boundary),
                )
            return
        if open_span is None:
            return
        if open_span[0] >= boundary:  # no message came while they were online: forget it
            self.conn.execute(
                "DELETE FROM online_spans WHERE user_id = ? AND node = ? AND until_id IS NULL",
                (user_id, node),
            )
        else:
            self.conn.execute(
                "UPDATE online_spans SET until_id = ? WHERE user_id = ? AND node = ?"
                " AND until_id IS NULL",
                (boundary, user_id, node),
            )

    def end_spans(self, node: str, boundary: int) -> None:
        """Close every open online span of ``node`` at ``boundary`` (the node restarts)."""
        self.conn.execute(
            "DELETE FROM online_spans WHERE node = ? AND until_id IS NULL AND after_id >= ?",
            (node, boundary),
        )
        self.conn.execute(
            "UPDATE online_spans SET until_id = ? WHERE node = ? AND until_id IS NULL",
            (boundary, node),
        )

    def prune_spans(self) -> None:
        """Forget online spans that end before the oldest tracked message."""
        oldest = self.conn.execute("SELECT min(message_id) FROM expiring").fetchone()[0]
        if oldest is None:
            self.conn.execute("DELETE FROM online_spans WHERE until_id IS NOT NULL")
        else:
            self.conn.execute("DELETE FROM online_spans WHERE until_id < ?", (oldest,))

    def deliveries(
        self, user_id: int, message_ids: list[int]
    ) -> dict[int, tuple[float | None, bool]]:
        """``(delivered_at, expired)`` of the user's copies of these messages that were not
        delivered when posted: ``(None, False)`` for one still waiting for them."""
        if not message_ids:
            return {}
        among = marks(len(message_ids))
        rows = self.conn.execute(
            "SELECT message_id, delivered_at, expired FROM deliveries"
            f" WHERE user_id = ? AND message_id IN ({among})",
            (user_id, *message_ids),
        ).fetchall()
        found: dict[int, tuple[float | None, bool]] = {r[0]: (r[1], bool(r[2])) for r in rows}
        waiting = self.conn.execute(
            "SELECT e.message_id FROM expiring e JOIN messages m ON m.id = e.message_id"
            " JOIN members mem ON mem.chat_id = e.chat_id AND mem.user_id = ?"
            f" WHERE e.message_id IN ({among}) AND m.author_id != ?"
            f" AND mem.joined_at <= e.created_at AND {_waiting_for('mem.user_id', 'e')}",
            (user_id, *message_ids, user_id),
        ).fetchall()
        for r in waiting:
            found[r[0]] = (None, False)
        return found

    def _waiting_members(self, message_id: int) -> list[int]:
        rows = self.conn.execute(
            "SELECT mem.user_id FROM expiring e JOIN messages m ON m.id = e.message_id"
            " JOIN members mem ON mem.chat_id = e.chat_id"
            " WHERE e.message_id = ? AND mem.user_id != m.author_id"
            f" AND mem.joined_at <= e.created_at AND {_waiting_for('mem.user_id', 'e')}",
            (message_id,),
        ).fetchall()
        return [r[0] for r in rows]

    def recipients(self, message_id: int) -> dict[int, tuple[float | None, bool]]:
        """:meth:`deliveries` of one message for every member, by user id."""
        rows = self.conn.execute(
            "SELECT user_id, delivered_at, expired FROM deliveries WHERE message_id = ?",
            (message_id,),
        ).fetchall()
        found: dict[int, tuple[float | None, bool]] = {r[0]: (r[1], bool(r[2])) for r in rows}
        for user_id in self._waiting_members(message_id):
            found[user_id] = (None, False)
        return found

    def mark_delivered(self, user_id: int, message_ids: list[int] | None, now: float) -> None:
        """The user got these messages (None: every message still waiting for them) now.
        With ``message_ids`` those are ones :meth:`deliveries` said were waiting."""
        if message_ids is None:
            self.conn.execute(
                "UPDATE deliveries SET delivered_at = ? WHERE user_id = ? AND delivered_at IS NULL",
                (now, user_id),
            )
            # everything tracked since the last time (older ones got their rows then)
            row = self.conn.execute(
                "SELECT upto_id FROM delivered_cursors WHERE user_id = ?", (user_id,)
            ).fetchone()
            upto = self.last_message_id()
            self.conn.execute(
                "INSERT INTO deliveries (message_id, user_id, delivered_at)"
                " SELECT e.message_id, mem.user_id, ? FROM expiring e"
                " JOIN messages m ON m.id = e.message_id"
                " JOIN members mem ON mem.chat_id = e.chat_id AND mem.user_id = ?"
                " WHERE e.message_id > ? AND e.message_id <= ? AND m.author_id != ?"
                f" AND mem.joined_at <= e.created_at AND {_waiting_for('mem.user_id', 'e')}"
                " ON CONFLICT (message_id, user_id) DO NOTHING",
                (now, user_id, row[0] if row is not None else 0, upto, user_id),
            )
            self.conn.execute(
                "INSERT INTO delivered_cursors (user_id, upto_id) VALUES (?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET upto_id = excluded.upto_id",
                (user_id, upto),
            )
            return
        if not message_ids:
            return
        among = marks(len(message_ids))
        self.conn.execute(
            "UPDATE deliveries SET delivered_at = ? WHERE user_id = ?"
            f" AND delivered_at IS NULL AND message_id IN ({among})",
            (now, user_id, *message_ids),
        )
        # the waiting ones without a row (still tracked: not deleted meanwhile)
        self.conn.execute(
            "INSERT INTO deliveries (message_id, user_id, delivered_at)"
            f" SELECT e.message_id, ?, ? FROM expiring e WHERE e.message_id IN ({among})"
            " AND e.by_cursor = 1 ON CONFLICT (message_id, user_id) DO NOTHING",
            (user_id, now, *message_ids),
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
            params: list[float] = []
            for chat_id, after in part:
                params += (chat_id, after, user_id, UNREAD_COUNT_MAX)
            since = min(after for _, after in part)
            maybe: list[float] = [user_id, since, cutoff]
            for chat_id, after in part:
                maybe += (chat_id, after, user_id, UNREAD_COUNT_MAX, cutoff)
            if not self.conn.execute(_maybe_gone_sql(len(part)), maybe).fetchone()[0]:
                continue  # nothing after the cursors is gone for the user (the usual case)
            params += (cutoff, user_id, since, cutoff, user_id, cutoff)  # WHEN and THEN
            params += (user_id, cutoff, user_id, user_id)  # ELSE
            rows = self.conn.execute(_gone_unread_sql(len(part)), params).fetchall()
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
        """Users whose copy was not delivered when posted (waiting, delivered late or
        expired)."""
        rows = self.conn.execute(
            "SELECT user_id FROM deliveries WHERE message_id = ?", (message_id,)
        ).fetchall()
        return {r[0] for r in rows} | set(self._waiting_members(message_id))

    def expire_base(self, message_id: int) -> None:
        """The copies delivered when posted expired."""
        self.conn.execute("UPDATE expiring SET partial = 1 WHERE message_id = ?", (message_id,))

    def gone_for_everyone(self, message_id: int) -> bool:
        """No recipient still has the message."""
        row = self.conn.execute(
            "SELECT e.partial, (SELECT count(*) FROM deliveries d"
            " WHERE d.message_id = e.message_id AND d.expired = 0)"
            " FROM expiring e WHERE e.message_id = ?",
            (message_id,),
        ).fetchone()
        if row is None or not row[0] or row[1]:
            return False
        return not self._waiting_members(message_id)

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
