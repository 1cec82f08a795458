"""Queries of mentions, per-chat mute, chat options and read-receipt privacy."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from messenger_protocol import Message

from .base import Tx
from .rows import MESSAGE_COLUMNS, MESSAGE_FROM, message_row
from .sql import Connection, connection

__all__ = ["NotifyQueries", "SqlNotifyQueries", "notify_queries"]


class NotifyQueries(Protocol):
    """What mentions, mute and read receipts need of the database."""

    def add_mentions(self, message_id: int, chat_id: int, user_ids: Iterable[int]) -> None:
        """Record that a message mentions these users."""
        ...

    def mentions(self, user_id: int, before: int | None, limit: int) -> list[tuple[Message, int]]:
        """Messages that mention the user in chats they are in, newest first, older than
        message ``before``, with the user's read cursor of the message's chat (of its
        thread, for a comment)."""
        ...

    def set_mute(self, chat_id: int, user_id: int, mute: str) -> None:
        """Set a member's mute setting of a chat."""
        ...

    def set_mention_all(self, chat_id: int, allowed: bool) -> None:
        """Whether ``@all`` mentions every member of a chat."""
        ...

    def mention_all(self, chat_id: int) -> bool:
        """Whether ``@all`` mentions every member of a chat."""
        ...

    def set_hide_receipts(self, user_id: int, hide: bool) -> None:
        """Whether the user's read receipts are hidden from others."""
        ...

    def hide_receipts(self, user_id: int) -> bool:
        """Whether the user's read receipts are hidden from others."""
        ...

    def seen_by(self, chat_id: int, message_id: int, author_id: int) -> list[str]:
        """Logins of the members (not the author, not hiding receipts) whose read cursor of
        the chat is at or past the message, by login."""
        ...

    def comment_seen_by(
        self, chat_id: int, root_id: int, comment_id: int, author_id: int
    ) -> list[str]:
        """Logins of the members (not the author, not hiding receipts) whose read cursor of
        the thread under ``root_id`` is at or past the comment, by login."""
        ...

    def mentioned(self, message_id: int) -> set[int]:
        """The users a message mentions now."""
        ...

    def remove_mentions(self, message_id: int, user_ids: Iterable[int]) -> None:
        """Forget that a message mentions these users (an edit took them out)."""
        ...


class SqlNotifyQueries:
    """:class:`NotifyQueries` in portable SQL."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_mentions(self, message_id: int, chat_id: int, user_ids: Iterable[int]) -> None:
        """Record that a message mentions these users."""
        self.conn.executemany(
            "INSERT INTO mentions (user_id, message_id, chat_id) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id, message_id) DO NOTHING",
            [(u, message_id, chat_id) for u in user_ids],
        )

    def mentions(self, user_id: int, before: int | None, limit: int) -> list[tuple[Message, int]]:
        """Messages that mention the user, newest first, with the read cursor of the chat
        (of the thread, for a comment)."""
        cursor = "" if before is None else " AND n.message_id < ?"
        args = (user_id,) if before is None else (user_id, before)
        rows = self.conn.execute(
            "SELECT CASE WHEN m.thread_root IS NULL THEN mb.last_read"
            f" ELSE coalesce(t.last_read, 0) END, {MESSAGE_COLUMNS} FROM {MESSAGE_FROM}"
            " JOIN mentions n ON n.message_id = m.id"
            " JOIN members mb ON mb.chat_id = n.chat_id AND mb.user_id = n.user_id"
            " LEFT JOIN thread_reads t ON t.user_id = n.user_id AND t.root_id = m.thread_root"
            f" WHERE n.user_id = ? AND m.deleted_at IS NULL{cursor}"
            " ORDER BY n.message_id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [(message_row(r[1:]), int(r[0])) for r in rows]

    def set_mute(self, chat_id: int, user_id: int, mute: str) -> None:
        """Set a member's mute setting of a chat."""
        self.conn.execute(
            "UPDATE members SET mute = ? WHERE chat_id = ? AND user_id = ?",
            (mute, chat_id, user_id),
        )

    def set_mention_all(self, chat_id: int, allowed: bool) -> None:
        """Whether ``@all`` mentions every member of a chat."""
        self.conn.execute("UPDATE chats SET mention_all = ? WHERE id = ?", (int(allowed), chat_id))

    def mention_all(self, chat_id: int) -> bool:
        """Whether ``@all`` mentions every member of a chat."""
        row = self.conn.execute("SELECT mention_all FROM chats WHERE id = ?", (chat_id,)).fetchone()
        return row is not None and bool(row[0])

    def set_hide_receipts(self, user_id: int, hide: bool) -> None:
        """Whether the user's read receipts are hidden from others."""
        self.conn.execute("UPDATE users SET hide_receipts = ? WHERE id = ?", (int(hide), user_id))

    def hide_receipts(self, user_id: int) -> bool:
        """Whether the user's read receipts are hidden from others."""
        row = self.conn.execute(
            "SELECT hide_receipts FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        return row is not None and bool(row[0])

    def seen_by(self, chat_id: int, message_id: int, author_id: int) -> list[str]:
        """Logins of the members who read the message (not the author, not hiding)."""
        rows = self.conn.execute(
            "SELECT u.login FROM members mb JOIN users u ON u.id = mb.user_id"
            " WHERE mb.chat_id = ? AND mb.last_read >= ? AND mb.user_id != ?"
            " AND u.hide_receipts = 0 ORDER BY lower(u.login)",
            (chat_id, message_id, author_id),
        ).fetchall()
        return [r[0] for r in rows]

    def comment_seen_by(
        self, chat_id: int, root_id: int, comment_id: int, author_id: int
    ) -> list[str]:
        """Logins of the members who read the thread past the comment (not the author,
        not hiding)."""
        rows = self.conn.execute(
            "SELECT u.login FROM members mb JOIN users u ON u.id = mb.user_id"
            " JOIN thread_reads t ON t.user_id = mb.user_id AND t.root_id = ?"
            " WHERE mb.chat_id = ? AND t.last_read >= ? AND mb.user_id != ?"
            " AND u.hide_receipts = 0 ORDER BY lower(u.login)",
            (root_id, chat_id, comment_id, author_id),
        ).fetchall()
        return [r[0] for r in rows]

    def mentioned(self, message_id: int) -> set[int]:
        """The users a message mentions now."""
        rows = self.conn.execute(
            "SELECT user_id FROM mentions WHERE message_id = ?", (message_id,)
        ).fetchall()
        return {r[0] for r in rows}

    def remove_mentions(self, message_id: int, user_ids: Iterable[int]) -> None:
        """Forget that a message mentions these users (an edit took them out)."""
        self.conn.executemany(
            "DELETE FROM mentions WHERE user_id = ? AND message_id = ?",
            [(u, message_id) for u in user_ids],
        )


def notify_queries(tx: Tx) -> NotifyQueries:
    """The mention, mute and receipt queries of a unit of work."""
    return SqlNotifyQueries(connection(tx))
