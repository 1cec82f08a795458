"""Queries of what users do to posted messages: edits (with the texts they replace),
deletion tombstones, replies, reactions and pins (tables of migration step 8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import msgspec

from messenger_protocol import Encrypted, MessageVersion, Reaction

from .base import Tx
from .sql import Connection, connection, marks

__all__ = [
    "AnnotationQueries",
    "LoggedEvent",
    "PinRecord",
    "SqlAnnotationQueries",
    "annotation_queries",
]

_IN_CHUNK = 500
"""Most ids bound into one ``IN (...)`` list (SQLite caps bound parameters)."""

PinRecord = tuple[int, str, float]
"""``(message_id, pinned_by login, pinned_at)`` of one pin."""


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """A committed event of the log that carries a message (its ``message_id`` column)."""

    seq: int
    name: str
    payload: bytes
    user_id: int | None
    message_id: int


class AnnotationQueries(Protocol):
    """What the message actions (edit, delete, reply, react, pin) need of the database."""

    def set_reply_to(self, message_id: int, reply_to: int) -> None:
        """Record which message a new message answers."""
        ...

    def edit_text(
        self, message_id: int, text: str, now: float, encrypted: str | None = None
    ) -> None:
        """Replace a message's text (and, given ``encrypted``, its ciphertext: the JSON of
        an :class:`~messenger_protocol.Encrypted`), keeping the text and ciphertext it had
        as an earlier version."""
        ...

    def versions(self, message_id: int) -> list[MessageVersion]:
        """The texts (and ciphertexts) a message had before its current one, oldest
        first."""
        ...

    def replies_to(self, message_id: int) -> list[int]:
        """Ids of the messages that reply to a message, oldest first."""
        ...

    def logged(self, message_ids: list[int]) -> list[LoggedEvent]:
        """The committed events of the log that carry these messages, oldest first (on
        PostgreSQL not those of the running write group, numbered at its commit)."""
        ...

    def relog(self, payloads: list[tuple[int, bytes]]) -> None:
        """Give logged events (by seq) a new payload."""
        ...

    def unlog(self, seqs: list[int]) -> None:
        """Take events out of the log (a resume no longer replays them)."""
        ...

    def tombstone(self, message_id: int, now: float) -> None:
        """Delete a message's content (text, earlier texts, reactions, pins) and the logged
        events that carry its text; the row stays as a tombstone."""
        ...

    def reactions(self, message_ids: list[int]) -> dict[int, list[Reaction]]:
        """The reactions of messages, each kind in the order it was first added."""
        ...

    def add_reaction(self, message_id: int, user_id: int, emoji: str, now: float) -> bool:
        """Add a user's reaction; False if they had already added that one."""
        ...

    def remove_reaction(self, message_id: int, user_id: int, emoji: str) -> bool:
        """Take a user's reaction back; False if there was none."""
        ...

    def reaction_kinds(self, message_id: int) -> set[str]:
        """The distinct reactions a message carries."""
        ...

    def pin(self, chat_id: int, message_id: int, user_id: int, now: float) -> bool:
        """Pin a message in its chat; False if it already was."""
        ...

    def unpin(self, chat_id: int, message_id: int) -> bool:
        """Unpin a message; False if it was not pinned."""
        ...

    def pins(self, chat_id: int) -> list[PinRecord]:
        """The pins of a chat, newest first."""
        ...


class SqlAnnotationQueries:
    """:class:`AnnotationQueries` in portable SQL."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def set_reply_to(self, message_id: int, reply_to: int) -> None:
        """Record which message a new message answers."""
        self.conn.execute("UPDATE messages SET reply_to = ? WHERE id = ?", (reply_to, message_id))

    def edit_text(
        self, message_id: int, text: str, now: float, encrypted: str | None = None
    ) -> None:
        """Replace a message's text (and ciphertext), keeping what it had as an earlier
        version."""
        self.conn.execute(
            "INSERT INTO message_edits (message_id, text, at, encrypted)"
            " SELECT id, text, coalesce(edited_at, created_at), encrypted FROM messages"
            " WHERE id = ?",
            (message_id,),
        )
        self.conn.execute(
            "UPDATE messages SET text = ?, edited_at = ?, encrypted = coalesce(?, encrypted)"
            " WHERE id = ?",
            (text, now, encrypted, message_id),
        )

    def versions(self, message_id: int) -> list[MessageVersion]:
        """The texts (and ciphertexts) a message had before its current one, oldest
        first."""
        rows = self.conn.execute(
            "SELECT text, at, encrypted FROM message_edits WHERE message_id = ? ORDER BY id",
            (message_id,),
        ).fetchall()
        return [
            MessageVersion(
                text=r[0],
                at=r[1],
                encrypted=None if r[2] is None else msgspec.json.decode(r[2], type=Encrypted),
            )
            for r in rows
        ]

    def replies_to(self, message_id: int) -> list[int]:
        """Ids of the messages that reply to a message, oldest first."""
        rows = self.conn.execute(
            "SELECT id FROM messages WHERE reply_to = ? ORDER BY id", (message_id,)
        ).fetchall()
        return [r[0] for r in rows]

    def logged(self, message_ids: list[int]) -> list[LoggedEvent]:
        """The committed events of the log that carry these messages, oldest first."""
        found: list[LoggedEvent] = []
        for start in range(0, len(message_ids), _IN_CHUNK):
            ids = message_ids[start : start + _IN_CHUNK]
            rows = self.conn.execute(
                "SELECT seq, name, payload, user_id, message_id FROM events"
                f" WHERE message_id IN ({marks(len(ids))}) ORDER BY seq",
                ids,
            ).fetchall()
            found += [LoggedEvent(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]
        found.sort(key=lambda e: e.seq)
        return found

    def relog(self, payloads: list[tuple[int, bytes]]) -> None:
        """Give logged events (by seq) a new payload."""
        self.conn.executemany(
            "UPDATE events SET payload = ? WHERE seq = ?", [(p, seq) for seq, p in payloads]
        )

    def unlog(self, seqs: list[int]) -> None:
        """Take events out of the log."""
        self.conn.executemany("DELETE FROM events WHERE seq = ?", [(seq,) for seq in seqs])

    def tombstone(self, message_id: int, now: float) -> None:
        """Delete a message's content and the logged events that carry its text."""
        self.conn.execute(
            "UPDATE messages SET text = '', encrypted = NULL, deleted_at = ?"
            " WHERE id = ? AND deleted_at IS NULL",
            (now, message_id),
        )
        for table in ("message_edits", "reactions", "pins"):
            self.conn.execute(f"DELETE FROM {table} WHERE message_id = ?", (message_id,))
        self.conn.execute("DELETE FROM events WHERE message_id = ?", (message_id,))

    def reactions(self, message_ids: list[int]) -> dict[int, list[Reaction]]:
        """The reactions of messages, each kind in the order it was first added."""
        found: dict[int, dict[str, list[str]]] = {}
        for start in range(0, len(message_ids), _IN_CHUNK):
            ids = message_ids[start : start + _IN_CHUNK]
            rows = self.conn.execute(
                "SELECT r.message_id, r.emoji, u.login FROM reactions r"
                f" JOIN users u ON u.id = r.user_id WHERE r.message_id IN ({marks(len(ids))})"
                " ORDER BY r.message_id, r.id",
                ids,
            ).fetchall()
            for message_id, emoji, login in rows:
                found.setdefault(message_id, {}).setdefault(emoji, []).append(login)
        return {
            mid: [Reaction(emoji=e, count=len(users), users=users) for e, users in kinds.items()]
            for mid, kinds in found.items()
        }

    def add_reaction(self, message_id: int, user_id: int, emoji: str, now: float) -> bool:
        """Add a user's reaction; False if they had already added that one."""
        cur = self.conn.execute(
            "INSERT INTO reactions (message_id, user_id, emoji, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (message_id, emoji, user_id) DO NOTHING",
            (message_id, user_id, emoji, now),
        )
        return cur.rowcount > 0

    def remove_reaction(self, message_id: int, user_id: int, emoji: str) -> bool:
        """Take a user's reaction back; False if there was none."""
        cur = self.conn.execute(
            "DELETE FROM reactions WHERE message_id = ? AND user_id = ? AND emoji = ?",
            (message_id, user_id, emoji),
        )
        return cur.rowcount > 0

    def reaction_kinds(self, message_id: int) -> set[str]:
        """The distinct reactions a message carries."""
        rows = self.conn.execute(
            "SELECT DISTINCT emoji FROM reactions WHERE message_id = ?", (message_id,)
        ).fetchall()
        return {r[0] for r in rows}

    def pin(self, chat_id: int, message_id: int, user_id: int, now: float) -> bool:
        """Pin a message in its chat; False if it already was."""
        cur = self.conn.execute(
            "INSERT INTO pins (chat_id, message_id, pinned_by, pinned_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (chat_id, message_id) DO NOTHING",
            (chat_id, message_id, user_id, now),
        )
        return cur.rowcount > 0

    def unpin(self, chat_id: int, message_id: int) -> bool:
        """Unpin a message; False if it was not pinned."""
        cur = self.conn.execute(
            "DELETE FROM pins WHERE chat_id = ? AND message_id = ?", (chat_id, message_id)
        )
        return cur.rowcount > 0

    def pins(self, chat_id: int) -> list[PinRecord]:
        """The pins of a chat, newest first."""
        rows = self.conn.execute(
            "SELECT p.message_id, u.login, p.pinned_at FROM pins p"
            " JOIN users u ON u.id = p.pinned_by WHERE p.chat_id = ?"
            " ORDER BY p.pinned_at DESC, p.message_id DESC",
            (chat_id,),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]


def annotation_queries(tx: Tx) -> AnnotationQueries:
    """The annotation queries of a unit of work."""
    return SqlAnnotationQueries(connection(tx))
