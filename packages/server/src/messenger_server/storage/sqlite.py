"""The embedded store: one SQLite database in WAL mode, used from the event-loop thread.

Statements are short and indexed (microseconds), so they run inline. Writes are
grouped: each unit of work runs inside its own SAVEPOINT of a transaction that is
committed once per event-loop turn (group commit), and every writer waits for that
COMMIT before it returns, so nothing is acknowledged before it is durable. A unit
that raises rolls back only its own savepoint (the first unit of a transaction, which
has none, the transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

from messenger_protocol import Chat, LoginRecord, Message, Mute

from ..states import JOIN_REQUEST, require
from .migrations import MIGRATIONS, sqlite_script
from .records import (
    ChatRecord,
    EventHandle,
    EventRecord,
    LinkRecord,
    SessionRecord,
    UserRecord,
)
from .rows import MESSAGE_COLUMNS as _MESSAGE_COLUMNS
from .rows import MESSAGE_FROM as _MESSAGE_FROM
from .rows import message_row as _message
from .rows import quote_of
from .search import index_new_messages
from .sql import UNREAD_COUNT_MAX, Connection

__all__ = ["DB_FILE", "UNREAD_COUNT_MAX", "SqliteStore", "SqliteTx", "quote_of"]

log = logging.getLogger(__name__)

INDEX_EVERY = 0.1
"""Seconds between two FTS5 indexings of new messages at group commits: indexing at every
commit cost a send about a fifth of its CPU (five more page writes and three statements
per commit); a search indexes what is pending first, so it still finds every message."""
"""Chats of one unread-count statement (5 parameters each; SQLite caps bound parameters)."""

T = TypeVar("T")

DB_FILE = "messenger.db"
"""Name of the database file inside the data dir."""

CHECKPOINT_INTERVAL = 1.0
"""Seconds between WAL checkpoints, run on a worker thread so commits never pay for them."""

_USER_COLUMNS = "id, login, password_hash, created_at, is_admin, last_seen"
_CHAT_COLUMNS = (
    "c.id, c.kind, c.name, c.owner_id, o.login, c.created_at, c.last_message_id,"
    " c.last_message_at, c.encrypted"
)
_CHAT_FROM = "chats c LEFT JOIN users o ON o.id = c.owner_id"
_LINK_COLUMNS = "key, chat_id, created_at, expires_at, max_uses, uses, revoked_at"


def _user(row: Any) -> UserRecord:
    return UserRecord(row[0], row[1], row[2], row[3], bool(row[4]), row[5])


def _chat(row: Any) -> ChatRecord:
    return ChatRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bool(row[8]))


def _link(row: Any) -> LinkRecord:
    return LinkRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


class SqliteTx:
    """The queries of the store, run on one connection (inside a unit of work).

    The SQL is portable (see :mod:`.sql`): :class:`~.postgres.PostgresTx` runs the
    same methods on PostgreSQL and overrides only the dialect hooks
    (:meth:`append_event`, :meth:`_newest_seq`).
    """

    dialect: Literal["sqlite", "postgresql"] = "sqlite"
    """Which SQL the connection speaks (the query modules' dialect hooks choose by it)."""

    def __init__(self, conn: Connection, after_commit: list[Callable[[], None]]) -> None:
        self.conn = conn
        """The connection, for the query modules of other tables (``storage/files.py``)."""
        self._after_commit = after_commit
        self.unindexed = False
        """Messages were stored that the FTS5 index does not have yet (SQLite indexes them
        at a group commit, at most every :data:`INDEX_EVERY` seconds, or when a search
        asks: :meth:`index_pending`)."""

    def index_pending(self) -> None:
        """Put the stored messages the FTS5 index does not have yet into it (a search finds
        them): in the open group's transaction, or in one of its own."""
        if not self.unindexed:
            return
        if getattr(self.conn, "in_transaction", True):
            index_new_messages(self.conn)  # the flag stays: the group's commit indexes again
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            index_new_messages(self.conn)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.unindexed = False

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this unit's changes are committed (in commit order)."""
        self._after_commit.append(callback)

    def nested(self, unit: Callable[[Any], T]) -> T:
        """Run ``unit`` on this transaction in a savepoint of its own: if it raises, what it
        did (rows, events, after-commit callbacks) is undone and the exception goes on to
        the caller, whose own changes stay."""
        mark, events = len(self._after_commit), self._event_mark()
        self.conn.execute("SAVEPOINT nested")
        try:
            result = unit(self)
        except BaseException:
            self.conn.execute("ROLLBACK TO SAVEPOINT nested")
            self.conn.execute("RELEASE SAVEPOINT nested")
            del self._after_commit[mark:]
            self._drop_events(events)
            raise
        self.conn.execute("RELEASE SAVEPOINT nested")
        return result

    def unnumbered_events(self) -> list[EventHandle]:
        """None: an event is a row of the log as soon as it is appended."""
        return []

    def _event_mark(self) -> int:
        return 0  # events are rows here: the savepoint undoes them

    def _drop_events(self, mark: int) -> None:
        pass

    def _one(self, sql: str, args: Iterable[Any] = ()) -> Any:
        return self.conn.execute(sql, tuple(args)).fetchone()

    def _all(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        return self.conn.execute(sql, tuple(args)).fetchall()

    def _scalar(self, sql: str, args: Iterable[Any] = ()) -> Any:
        row = self.conn.execute(sql, tuple(args)).fetchone()
        return None if row is None else row[0]

    # --- users ------------------------------------------------------------

    def insert_user(self, login: str, password_hash: str, now: float, is_admin: bool) -> int | None:
        """Create a user, a member of the general chat; None if the login is taken."""
        user_id: int | None = self._scalar(
            "INSERT INTO users (login, password_hash, created_at, is_admin)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
            (login, password_hash, now, int(is_admin)),
        )
        if user_id is None:
            return None
        # a newcomer starts with the general chat read up to now
        last = self._scalar("SELECT last_message_id FROM chats WHERE id = 1") or 0
        self.add_member(1, user_id, now, last)
        return user_id

    def user_by_login(self, login: str) -> UserRecord | None:
        """The user with this login (case-insensitive)."""
        row = self._one(
            f"SELECT {_USER_COLUMNS} FROM users WHERE lower(login) = lower(?)", (login,)
        )
        return None if row is None else _user(row)

    def user_by_id(self, user_id: int) -> UserRecord | None:
        """The user with this id."""
        row = self._one(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
        return None if row is None else _user(row)

    def users(self) -> list[UserRecord]:
        """Every user, by login."""
        return [
            _user(r) for r in self._all(f"SELECT {_USER_COLUMNS} FROM users ORDER BY lower(login)")
        ]

    def set_admin(self, user_id: int, is_admin: bool) -> None:
        """Grant or take away admin rights."""
        self.conn.execute("UPDATE users SET is_admin = ? WHERE id = ?", (int(is_admin), user_id))

    def set_last_seen(self, user_id: int, at: float) -> None:
        """Remember when the user was last seen."""
        self.conn.execute("UPDATE users SET last_seen = ? WHERE id = ?", (at, user_id))

    # --- sessions and logins ------------------------------------------------

    def insert_session(
        self, session_id: str, token_sha256: bytes, user_id: int, device: str, now: float,
        address: str,
    ) -> None:  # fmt: skip
        """Store a new session (only the token's hash)."""
        self.conn.execute(
            "INSERT INTO sessions (id, token_sha256, user_id, device, created_at, last_address,"
            " last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (session_id, token_sha256, user_id, device, now, address, now),
        )

    def session_by_token(self, token_sha256: bytes) -> SessionRecord | None:
        """The live session with this token hash, or the one that expired (``expired``);
        None for an unknown or logged-out token."""
        row = self._one(
            "SELECT s.id, s.user_id, u.login, u.is_admin, s.device, s.created_at, s.last_address,"
            " s.last_used_at, s.expired FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.token_sha256 = ? AND (s.ended_at IS NULL OR s.expired = 1)",
            (token_sha256,),
        )
        if row is None:
            return None
        return SessionRecord(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6], row[7],
                             bool(row[8]))  # fmt: skip

    def expire_session(self, session_id: str, now: float) -> bool:
        """End a live session as expired; False if it had ended already."""
        cur = self.conn.execute(
            "UPDATE sessions SET ended_at = ?, expired = 1 WHERE id = ? AND ended_at IS NULL",
            (now, session_id),
        )
        return cur.rowcount > 0

    def live_sessions(self, user_id: int) -> list[SessionRecord]:
        """The sessions of a user that have not ended, oldest first."""
        rows = self._all(
            "SELECT s.id, s.user_id, u.login, u.is_admin, s.device, s.created_at, s.last_address,"
            " s.last_used_at FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.user_id = ? AND s.ended_at IS NULL ORDER BY s.created_at",
            (user_id,),
        )
        return [SessionRecord(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

    def touch_session(self, session_id: str, address: str, now: float) -> None:
        """Record the address and time of a session's latest request."""
        self.conn.execute(
            "UPDATE sessions SET last_address = ?, last_used_at = ? WHERE id = ?",
            (address, now, session_id),
        )

    def end_sessions(self, user_id: int, session_ids: list[str] | None, now: float) -> list[str]:
        """End some (or, with None, all) live sessions of a user; the ids that ended."""
        live = [s.id for s in self.live_sessions(user_id)]
        ending = live if session_ids is None else [s for s in live if s in session_ids]
        self.conn.executemany(
            "UPDATE sessions SET ended_at = ? WHERE id = ?", [(now, s) for s in ending]
        )
        return ending

    def insert_login(
        self, user_id: int, now: float, address: str, device: str, success: bool
    ) -> None:
        """Append to a user's login history."""
        self.conn.execute(
            "INSERT INTO logins (user_id, at, address, device, success) VALUES (?, ?, ?, ?, ?)",
            (user_id, now, address, device, int(success)),
        )

    def recent_logins(self, user_id: int, limit: int) -> list[LoginRecord]:
        """The newest login attempts of a user, newest first."""
        rows = self._all(
            "SELECT at, address, device, success FROM logins WHERE user_id = ?"
            " ORDER BY id DESC LIMIT ?",
            (user_id, limit),
        )
        return [LoginRecord(at=r[0], address=r[1], device=r[2], success=bool(r[3])) for r in rows]

    def add_login_failure(self, address: str, login: str, at: float, prune_before: float) -> None:
        """Note a failed login attempt; drop the notes older than ``prune_before``."""
        self.conn.execute("DELETE FROM login_failures WHERE at <= ?", (prune_before,))
        self.conn.execute(
            "INSERT INTO login_failures (address, login, at) VALUES (?, ?, ?)",
            (address, login, at),
        )

    def login_failures(
        self, address: str, login: str | None, since: float, limit: int
    ) -> list[float]:
        """Times of the newest ``limit`` failures after ``since`` from ``address`` (for
        ``login`` only, or any login with None), newest first."""
        if login is None:
            rows = self._all(
                "SELECT at FROM login_failures WHERE address = ? AND at > ?"
                " ORDER BY at DESC LIMIT ?",
                (address, since, limit),
            )
        else:
            rows = self._all(
                "SELECT at FROM login_failures WHERE address = ? AND login = ? AND at > ?"
                " ORDER BY at DESC LIMIT ?",
                (address, login, since, limit),
            )
        return [float(r[0]) for r in rows]

    def clear_login_failures(self, address: str, login: str) -> None:
        """Forget the failures of ``login`` from ``address`` (after it logged in there)."""
        self.conn.execute(
            "DELETE FROM login_failures WHERE address = ? AND login = ?", (address, login)
        )

    # --- chats and members --------------------------------------------------

    def chat(self, chat_id: int) -> ChatRecord | None:
        """The chat with this id."""
        row = self._one(f"SELECT {_CHAT_COLUMNS} FROM {_CHAT_FROM} WHERE c.id = ?", (chat_id,))
        return None if row is None else _chat(row)

    def group_by_name(self, name: str) -> ChatRecord | None:
        """The group chat with this name (case-insensitive)."""
        row = self._one(
            f"SELECT {_CHAT_COLUMNS} FROM {_CHAT_FROM} WHERE c.kind = 'group'"
            " AND lower(c.name) = lower(?)",
            (name,),
        )
        return None if row is None else _chat(row)

    def direct_chat(self, direct_key: str) -> ChatRecord | None:
        """The private conversation with this key."""
        row = self._one(
            f"SELECT {_CHAT_COLUMNS} FROM {_CHAT_FROM} WHERE c.direct_key = ?", (direct_key,)
        )
        return None if row is None else _chat(row)

    def insert_chat(
        self,
        kind: str,
        name: str,
        owner_id: int | None,
        direct_key: str | None,
        now: float,
        *,
        encrypted: bool = False,
    ) -> int | None:
        """Create a chat; None if the name (group) or key (direct) is taken."""
        chat_id: int | None = self._scalar(
            "INSERT INTO chats (kind, name, owner_id, direct_key, created_at, encrypted)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
            (kind, name, owner_id, direct_key, now, int(encrypted)),
        )
        return chat_id

    def add_member(self, chat_id: int, user_id: int, now: float, last_read: int = 0) -> bool:
        """Add a member; False if they already were one."""
        cur = self.conn.execute(
            "INSERT INTO members (chat_id, user_id, joined_at, last_read)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (chat_id, user_id, now, last_read),
        )
        if cur.rowcount <= 0:
            return False
        self._count_members(chat_id, 1)
        return True

    def remove_member(self, chat_id: int, user_id: int) -> bool:
        """Remove a member; False if they were not one."""
        cur = self.conn.execute(
            "DELETE FROM members WHERE chat_id = ? AND user_id = ?", (chat_id, user_id)
        )
        if cur.rowcount <= 0:
            return False
        self._count_members(chat_id, -1)
        return True

    def _count_members(self, chat_id: int, change: int) -> None:
        """Keep ``chats.member_count`` (read at every GET /chats) in step with the rows."""
        self.conn.execute(
            "UPDATE chats SET member_count = member_count + ? WHERE id = ?", (change, chat_id)
        )

    def member_chat(self, chat_id: int, user_id: int) -> tuple[ChatRecord, int] | None:
        """The chat and the user's read cursor in it; None if they are not a member."""
        row = self._one(
            f"SELECT {_CHAT_COLUMNS}, mem.last_read FROM {_CHAT_FROM}"
            " JOIN members mem ON mem.chat_id = c.id AND mem.user_id = ? WHERE c.id = ?",
            (user_id, chat_id),
        )
        return None if row is None else (_chat(row), row[-1])

    def last_read(self, chat_id: int, user_id: int) -> int | None:
        """The member's read cursor; None if they are not a member."""
        value: int | None = self._scalar(
            "SELECT last_read FROM members WHERE chat_id = ? AND user_id = ?", (chat_id, user_id)
        )
        return value

    def set_last_read(self, chat_id: int, user_id: int, up_to: int) -> int:
        """Move the read cursor forward (never back); the cursor after the move."""
        self.conn.execute(
            "UPDATE members SET last_read = ? WHERE chat_id = ? AND user_id = ? AND last_read < ?",
            (up_to, chat_id, user_id, up_to),
        )
        return self.last_read(chat_id, user_id) or 0

    def member_ids(self, chat_id: int) -> list[int]:
        """Ids of the members of a chat."""
        return [
            r[0] for r in self._all("SELECT user_id FROM members WHERE chat_id = ?", (chat_id,))
        ]

    def members(self, chat_id: int) -> list[UserRecord]:
        """The members of a chat, by login."""
        rows = self._all(
            f"SELECT {', '.join('u.' + c for c in _USER_COLUMNS.split(', '))}"
            " FROM members m JOIN users u ON u.id = m.user_id WHERE m.chat_id = ?"
            " ORDER BY lower(u.login)",
            (chat_id,),
        )
        return [_user(r) for r in rows]

    def member_count(self, chat_id: int) -> int:
        """How many members a chat has."""
        count: int | None = self._scalar("SELECT member_count FROM chats WHERE id = ?", (chat_id,))
        return count or 0

    def chat_ids_of(self, user_id: int) -> list[int]:
        """The chats a user belongs to."""
        rows = self._all(
            "SELECT chat_id FROM members WHERE user_id = ? ORDER BY chat_id", (user_id,)
        )
        return [r[0] for r in rows]

    def chat_views_of(self, user_id: int) -> list[Chat]:
        """:meth:`chat_view` of every chat the user belongs to, by chat id: one query, the
        unread counts in it (counted only in chats with messages after the read cursor)."""
        rows = self._all(
            "SELECT c.id, c.kind, c.name, o.login, c.last_message_at, c.encrypted,"
            " c.mention_all, mem.last_read, mem.mute,"
            " c.member_count,"
            " CASE WHEN c.last_message_id > mem.last_read THEN (SELECT count(*) FROM"
            " (SELECT 1 FROM messages um WHERE um.chat_id = c.id AND um.thread_root IS NULL"
            " AND um.id > mem.last_read AND um.author_id != mem.user_id LIMIT ?) AS q)"
            " ELSE 0 END,"
            " (SELECT count(*) FROM mentions n JOIN messages m ON m.id = n.message_id"
            " LEFT JOIN thread_reads t ON t.user_id = n.user_id AND t.root_id = m.thread_root"
            " WHERE n.chat_id = c.id AND n.user_id = mem.user_id AND m.deleted_at IS NULL"
            " AND n.message_id > CASE WHEN m.thread_root IS NULL THEN mem.last_read"
            " ELSE coalesce(t.last_read, 0) END),"
            " CASE WHEN c.kind = 'direct' THEN coalesce((SELECT u.login FROM members p"
            " JOIN users u ON u.id = p.user_id WHERE p.chat_id = c.id"
            " AND p.user_id != mem.user_id LIMIT 1),"
            " (SELECT u.login FROM users u WHERE u.id = mem.user_id)) END, c.last_message_id"
            " FROM members mem JOIN chats c ON c.id = mem.chat_id"
            " LEFT JOIN users o ON o.id = c.owner_id WHERE mem.user_id = ? ORDER BY c.id",
            (UNREAD_COUNT_MAX, user_id),
        )
        return [
            Chat(
                id=r[0],
                kind=r[1],
                name=f"@{r[12]}" if r[1] == "direct" else r[2],
                owner=r[3],
                peer=r[12],
                members=r[9],
                unread=r[10],
                last_read=r[7],
                last_message_at=r[4],
                last_message_id=r[13],
                mentions=r[11],
                mute=r[8],
                mention_all=bool(r[6]),
                encrypted=bool(r[5]),
            )
            for r in rows
        ]

    def chat_view(self, chat: ChatRecord, user_id: int) -> Chat:
        """A chat as one member sees it: their name for it, unread and mention counts, read
        cursor and mute setting."""
        row = self._one(
            "SELECT last_read, mute FROM members WHERE chat_id = ? AND user_id = ?",
            (chat.id, user_id),
        )
        last_read: int = row[0] if row is not None else 0
        mute: Mute = row[1] if row is not None else "off"
        # a chat message after the chat's read cursor; a comment after its thread's cursor
        mentions: int = self._scalar(
            "SELECT count(*) FROM mentions n JOIN messages m ON m.id = n.message_id"
            " LEFT JOIN thread_reads t ON t.user_id = n.user_id AND t.root_id = m.thread_root"
            " WHERE n.chat_id = ? AND n.user_id = ? AND m.deleted_at IS NULL"
            " AND n.message_id > CASE WHEN m.thread_root IS NULL THEN ?"
            " ELSE coalesce(t.last_read, 0) END",
            (chat.id, user_id, last_read),
        )
        flags = self._one("SELECT mention_all, member_count FROM chats WHERE id = ?", (chat.id,))
        mention_all, members = (bool(flags[0]), int(flags[1])) if flags is not None else (False, 0)
        name, peer = chat.name, None
        if chat.kind == "direct":
            peer = self._scalar(
                "SELECT u.login FROM members m JOIN users u ON u.id = m.user_id"
                " WHERE m.chat_id = ? ORDER BY m.user_id = ? LIMIT 1",
                (chat.id, user_id),
            )
            name = f"@{peer}"
        return Chat(
            id=chat.id,
            kind=chat.kind,
            name=name,
            owner=chat.owner_login,
            peer=peer,
            members=members,
            unread=self.unread_count(chat.id, user_id, last_read),
            last_read=last_read,
            last_message_at=chat.last_message_at,
            last_message_id=chat.last_message_id,
            mentions=mentions,
            mute=mute,
            mention_all=mention_all,
            encrypted=chat.encrypted,
        )

    def touch_chat(self, chat_id: int, message_id: int, now: float) -> None:
        """Record a chat's newest message."""
        self.conn.execute(
            "UPDATE chats SET last_message_id = ?, last_message_at = ? WHERE id = ?",
            (message_id, now, chat_id),
        )

    # --- messages -----------------------------------------------------------

    def insert_message(
        self, chat_id: int, author_id: int, text: str, now: float, client_id: str | None,
        thread_root: int | None, scheduled_id: int | None,
    ) -> Message | None:  # fmt: skip
        """Store a message (a root, or a comment under ``thread_root``) and return it;
        None, storing nothing, if the author already has a message with this ``client_id``."""
        row = self._one(
            "INSERT INTO messages (chat_id, author_id, text, created_at, client_id, thread_root,"
            " scheduled_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (author_id, client_id) WHERE client_id IS NOT NULL DO NOTHING"
            " RETURNING id, (SELECT login FROM users WHERE id = author_id)",
            (chat_id, author_id, text, now, client_id, thread_root, scheduled_id),
        )
        if row is None:
            return None
        self.unindexed = True
        message_id = row[0]
        if thread_root is None:
            self.touch_chat(chat_id, message_id, now)
        # what the row holds now, without reading it back: a new message has no
        # comments, edits, reply or ciphertext yet (the caller adds those)
        return Message(
            id=message_id, chat_id=chat_id, author=row[1], text=text, created_at=now,
            client_id=client_id, thread_root=thread_root, scheduled_id=scheduled_id,
        )  # fmt: skip

    def message(self, message_id: int) -> Message | None:
        """One message or comment."""
        row = self._one(f"SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM} WHERE m.id = ?",
                        (message_id,))  # fmt: skip
        return None if row is None else _message(row)

    def message_author_id(self, message_id: int) -> int | None:
        """Id of a message's author."""
        value: int | None = self._scalar(
            "SELECT author_id FROM messages WHERE id = ?", (message_id,)
        )
        return value

    def message_by_client_id(self, author_id: int, client_id: str) -> Message | None:
        """The message an author already sent with this idempotency id."""
        row = self._one(
            f"SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM}"
            " WHERE m.author_id = ? AND m.client_id = ?",
            (author_id, client_id),
        )
        return None if row is None else _message(row)

    def history(
        self, chat_id: int, before: int | None, after: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """A page of root messages, oldest first, and whether there are more beyond it.

        ``after`` pages forward (``has_more``: newer ones exist); otherwise the page
        ends before ``before`` (or at the newest) and ``has_more`` means older ones exist.
        """
        base = f"SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM} WHERE m.chat_id = ?" \
               " AND m.thread_root IS NULL"  # fmt: skip
        if after is not None:
            rows = self._all(f"{base} AND m.id > ? ORDER BY m.id LIMIT ?",
                             (chat_id, after, limit + 1))  # fmt: skip
            return [_message(r) for r in rows[:limit]], len(rows) > limit
        if before is not None:
            rows = self._all(f"{base} AND m.id < ? ORDER BY m.id DESC LIMIT ?",
                             (chat_id, before, limit + 1))  # fmt: skip
        else:
            rows = self._all(f"{base} ORDER BY m.id DESC LIMIT ?", (chat_id, limit + 1))
        page = [_message(r) for r in rows[:limit]]
        page.reverse()
        return page, len(rows) > limit

    def unread_count(self, chat_id: int, user_id: int, after: int) -> int:
        """Root messages of others in a chat newer than ``after`` (at most ``UNREAD_COUNT_MAX``)."""
        count: int = self._scalar(
            "SELECT count(*) FROM (SELECT 1 FROM messages WHERE chat_id = ?"
            " AND thread_root IS NULL AND id > ? AND author_id != ? LIMIT ?) AS unread",
            (chat_id, after, user_id, UNREAD_COUNT_MAX),
        )
        return count

    def unread_messages(self, chat_id: int, user_id: int, after: int, limit: int) -> list[Message]:
        """The oldest ``limit`` root messages of others newer than ``after``, oldest first."""
        rows = self._all(
            f"SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM} WHERE m.chat_id = ?"
            " AND m.thread_root IS NULL AND m.id > ? AND m.author_id != ? ORDER BY m.id LIMIT ?",
            (chat_id, after, user_id, limit),
        )
        return [_message(r) for r in rows]

    def comments(self, root_id: int) -> list[Message]:
        """The comments under a root message, oldest first."""
        rows = self._all(
            f"SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM} WHERE m.thread_root = ? ORDER BY m.id",
            (root_id,),
        )
        return [_message(r) for r in rows]

    def count_comment(self, root_id: int, now: float) -> Message:
        """Add one to a root's comment count; the updated root."""
        self.conn.execute(
            "UPDATE messages SET comment_count = comment_count + 1, last_comment_at = ?"
            " WHERE id = ?",
            (now, root_id),
        )
        root = self.message(root_id)
        assert root is not None
        return root

    def thread_participants(self, root_id: int) -> set[int]:
        """The root's author and everyone who commented under it."""
        rows = self._all(
            "SELECT author_id FROM messages WHERE id = ?"
            " UNION SELECT author_id FROM messages WHERE thread_root = ?",
            (root_id, root_id),
        )
        return {r[0] for r in rows}

    def thread_last_read(self, user_id: int, root_id: int) -> int:
        """The user's read cursor in a thread (0 if never read)."""
        value: int | None = self._scalar(
            "SELECT last_read FROM thread_reads WHERE user_id = ? AND root_id = ?",
            (user_id, root_id),
        )
        return value or 0

    def set_thread_read(self, user_id: int, root_id: int, up_to: int) -> int:
        """Move the thread read cursor forward; the cursor after the move."""
        self.conn.execute(
            "INSERT INTO thread_reads (user_id, root_id, last_read) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id, root_id) DO UPDATE SET last_read = excluded.last_read"
            " WHERE thread_reads.last_read < excluded.last_read",
            (user_id, root_id, up_to),
        )
        return self.thread_last_read(user_id, root_id)

    def thread_unread(self, root_id: int, user_id: int, after: int) -> int:
        """Comments of others under a root newer than ``after``."""
        count: int = self._scalar(
            "SELECT count(*) FROM messages WHERE thread_root = ? AND id > ? AND author_id != ?",
            (root_id, after, user_id),
        )
        return count

    def private_counts(self, user_id: int) -> tuple[int, int]:
        """Messages the user sent to and received in private conversations."""
        row = self._one(
            "SELECT coalesce(sum(CASE WHEN m.author_id = ? THEN 1 ELSE 0 END), 0),"
            " coalesce(sum(CASE WHEN m.author_id = ? THEN 0 ELSE 1 END), 0)"
            " FROM members mb JOIN chats c ON c.id = mb.chat_id AND c.kind = 'direct'"
            " JOIN messages m ON m.chat_id = c.id WHERE mb.user_id = ?",
            (user_id, user_id, user_id),
        )
        return int(row[0]), int(row[1])

    # --- contacts -----------------------------------------------------------

    def contacts(self, user_id: int) -> list[tuple[UserRecord, float]]:
        """A user's contacts with when they were added, by login."""
        cols = ", ".join("u." + c for c in _USER_COLUMNS.split(", "))
        rows = self._all(
            f"SELECT {cols}, c.added_at FROM contacts c JOIN users u ON u.id = c.contact_id"
            " WHERE c.user_id = ? ORDER BY lower(u.login)",
            (user_id,),
        )
        return [(_user(r), r[6]) for r in rows]

    def add_contact(self, user_id: int, contact_id: int, now: float) -> float:
        """Add a contact (no-op if present); when it was added."""
        self.conn.execute(
            "INSERT INTO contacts (user_id, contact_id, added_at) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (user_id, contact_id, now),
        )
        added: float = self._scalar(
            "SELECT added_at FROM contacts WHERE user_id = ? AND contact_id = ?",
            (user_id, contact_id),
        )
        return added

    def remove_contact(self, user_id: int, contact_id: int) -> bool:
        """Remove a contact; False if it was not one."""
        cur = self.conn.execute(
            "DELETE FROM contacts WHERE user_id = ? AND contact_id = ?", (user_id, contact_id)
        )
        return cur.rowcount > 0

    # --- invite links and join requests ----------------------------------------

    def insert_link(
        self, key: str, chat_id: int, created_by: int, now: float, expires_at: float | None,
        max_uses: int | None,
    ) -> LinkRecord:  # fmt: skip
        """Store a new invite key."""
        self.conn.execute(
            "INSERT INTO invite_links (key, chat_id, created_by, created_at, expires_at, max_uses)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key, chat_id, created_by, now, expires_at, max_uses),
        )
        link = self.link(key)
        assert link is not None
        return link

    def link(self, key: str) -> LinkRecord | None:
        """The invite key, revoked or not."""
        row = self._one(f"SELECT {_LINK_COLUMNS} FROM invite_links WHERE key = ?", (key,))
        return None if row is None else _link(row)

    def links(self, chat_id: int) -> list[LinkRecord]:
        """Every invite key of a chat, oldest first."""
        rows = self._all(
            f"SELECT {_LINK_COLUMNS} FROM invite_links WHERE chat_id = ? ORDER BY created_at",
            (chat_id,),
        )
        return [_link(r) for r in rows]

    def use_link(self, key: str) -> None:
        """Count one use of an invite key."""
        self.conn.execute("UPDATE invite_links SET uses = uses + 1 WHERE key = ?", (key,))

    def revoke_link(self, key: str, now: float) -> None:
        """Revoke an invite key."""
        self.conn.execute(
            "UPDATE invite_links SET revoked_at = ? WHERE key = ? AND revoked_at IS NULL",
            (now, key),
        )

    def upsert_join_request(self, chat_id: int, user_id: int, now: float, with_key: bool) -> None:
        """File (or refresh) a join request; a keyed request stays keyed."""
        self.conn.execute(
            "INSERT INTO join_requests (chat_id, user_id, created_at, with_key) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (chat_id, user_id) DO UPDATE SET created_at = excluded.created_at,"
            " with_key = CASE WHEN excluded.with_key > join_requests.with_key"
            " THEN excluded.with_key ELSE join_requests.with_key END",
            (chat_id, user_id, now, int(with_key)),
        )

    def join_request(self, chat_id: int, user_id: int) -> tuple[float, bool] | None:
        """``(created_at, with_key)`` of a pending request."""
        row = self._one(
            "SELECT created_at, with_key FROM join_requests WHERE chat_id = ? AND user_id = ?",
            (chat_id, user_id),
        )
        return None if row is None else (row[0], bool(row[1]))

    def join_requests(self, chat_id: int) -> list[tuple[str, float, bool]]:
        """``(login, created_at, with_key)`` of a chat's pending requests, oldest first."""
        rows = self._all(
            "SELECT u.login, r.created_at, r.with_key FROM join_requests r"
            " JOIN users u ON u.id = r.user_id WHERE r.chat_id = ? ORDER BY r.created_at",
            (chat_id,),
        )
        return [(r[0], r[1], bool(r[2])) for r in rows]

    def decide_join_request(self, chat_id: int, user_id: int, to: str) -> bool:
        """Settle a pending request as ``to`` (see :data:`~messenger_server.states.JOIN_REQUEST`);
        False if there was none. Only pending requests are stored, so settling one deletes it."""
        require(JOIN_REQUEST, "pending", to)
        cur = self.conn.execute(
            "DELETE FROM join_requests WHERE chat_id = ? AND user_id = ?", (chat_id, user_id)
        )
        return cur.rowcount > 0

    # --- the event log ------------------------------------------------------

    def append_event(
        self,
        name: str,
        payload: bytes,
        chat_id: int | None,
        user_id: int | None,
        now: float,
        message_id: int | None = None,
        except_late: int | None = None,
    ) -> EventHandle:
        """Append an event for a chat's members or one user; numbered by commit.

        ``message_id`` names the message whose text the event carries (it is deleted
        with the message). SQLite numbers the event at once (``AUTOINCREMENT``; its
        single writer makes that the commit order); read ``handle.seq`` after commit.
        """
        handle = EventHandle(name, payload, chat_id, user_id, now, message_id, except_late)
        handle.seq = self._scalar(
            "INSERT INTO events (chat_id, user_id, name, payload, created_at, message_id,"
            " except_late) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            (chat_id, user_id, name, payload, now, message_id, except_late),
        )
        return handle

    def events_after(self, user_id: int, after: int, upto: int, limit: int) -> list[EventRecord]:
        """Events in ``(after, upto]`` for the user or a chat they belong to, oldest first."""
        rows = self._all(
            "SELECT seq, name, payload FROM events WHERE seq > ? AND seq <= ? AND"
            " (user_id = ? OR chat_id IN (SELECT chat_id FROM members WHERE user_id = ?)"
            " AND (except_late IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries d"
            " WHERE d.message_id = except_late AND d.user_id = ?)))"
            " ORDER BY seq LIMIT ?",
            (after, upto, user_id, user_id, user_id, limit),
        )
        return [EventRecord(r[0], r[1], r[2]) for r in rows]

    def event_bounds(self) -> tuple[int, int]:
        """``(oldest kept seq, newest seq ever)``; the oldest is newest + 1 when none are kept."""
        newest = self._newest_seq()
        oldest = self._scalar("SELECT min(seq) FROM events")
        return (newest + 1 if oldest is None else oldest), newest

    def event_max(self) -> int:
        """The newest sequence number handed out (0 if none)."""
        return self._newest_seq()

    def events_range(self, after: int, upto: int, limit: int) -> list[EventRecord]:
        """Events of every audience in ``(after, upto]``, oldest first, with their audience."""
        rows = self._all(
            "SELECT seq, name, payload, chat_id, user_id, except_late FROM events"
            " WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (after, upto, limit),
        )
        return [EventRecord(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def _newest_seq(self) -> int:
        """Dialect hook: the newest sequence number ever handed out (0 if none)."""
        newest: int | None = self._scalar("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
        return newest or 0

    def prune_events(self, keep: int) -> int:
        """Delete all but the newest ``keep`` events; how many went."""
        _, newest = self.event_bounds()
        cur = self.conn.execute("DELETE FROM events WHERE seq <= ?", (newest - keep,))
        return cur.rowcount

    # --- stats ----------------------------------------------------------------

    def message_count(self) -> int:
        """Messages and comments stored."""
        count: int = self._scalar("SELECT count(*) FROM messages")
        return count

    def try_job_lock(self, job: str) -> bool:
        """Dialect hook: the lock of a singleton job; SQLite has one writer, so it is held."""
        return True

    def database_bytes(self) -> int:
        """Dialect hook: bytes the database takes (its file with the WAL and shared memory)."""
        path: str | None = self._scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
        if not path:  # in memory
            size: int = self._scalar(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
            )
            return size
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(path + suffix).st_size
        return total


class SqliteStore:
    """:class:`~messenger_server.storage.Store` on one SQLite file (``<data_dir>/messenger.db``)."""

    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    unavailable: tuple[type[Exception], ...] = (sqlite3.OperationalError,)

    def __init__(self, path: Path, *, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._tx: SqliteTx | None = None
        self._after_commit: list[Callable[[], None]] = []
        self._waiters: list[asyncio.Future[None]] | None = None
        """One future per writer of the open group (None: no group open); each writer
        awaits its own, so a cancelled writer cancels nothing of the others (what a shield
        of one shared future did, for a future and two callbacks more per write)."""
        self._group_loop: asyncio.AbstractEventLoop | None = None
        self._commit_handle: asyncio.Handle | None = None
        self._commits = 0
        self._checkpointed_at = 0
        self._checkpointer: asyncio.Task[None] | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpoint_lock = threading.Lock()
        self._indexed_at = -INDEX_EVERY
        self._index_timer: asyncio.TimerHandle | None = None
        self._index_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    @classmethod
    def in_dir(cls, data_dir: Path, *, synchronous: str = "NORMAL") -> SqliteStore:
        """The store of a data dir."""
        return cls(data_dir / DB_FILE, synchronous=synchronous)

    async def open(self) -> None:
        """Open (creating if needed) the database and run pending migrations."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        # each unit's savepoint journals the pages it touches; on a file that spilled
        # past 64 KiB into a temporary file and cost a write per page per send
        conn.execute("PRAGMA temp_store = MEMORY")
        # checkpoints move to a worker thread (checkpoint()); a commit on the event
        # loop would otherwise now and then copy and fsync the whole WAL
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._conn = conn
        self._tx = SqliteTx(conn, self._after_commit)
        self._migrate(conn)
        self._tx.unindexed = True  # what a crash left unindexed goes in with the next commit
        self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoint_loop())

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema version {version} is newer than this server "
                f"({len(MIGRATIONS)}); upgrade the server"
            )
        for number in range(version, len(MIGRATIONS)):
            log.info("migrating database schema %d -> %d", number, number + 1)
            # executescript commits first; BEGIN..COMMIT makes each migration atomic
            script = sqlite_script(MIGRATIONS[number])
            conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number + 1};\nCOMMIT;")

    @property
    def tx(self) -> SqliteTx:
        """The query object (only valid while open)."""
        if self._tx is None:
            raise RuntimeError("store is not open")
        return self._tx

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    async def read(self, unit: Callable[[SqliteTx], T]) -> T:
        """Run a read-only unit of work."""
        return unit(self.tx)

    async def write(self, unit: Callable[[SqliteTx], T]) -> T:
        """Run a unit of work atomically; return once it is committed to disk."""
        tx = self.tx
        conn = self._connection()
        first = not conn.in_transaction
        if first:
            # IMMEDIATE: take the write lock now (waiting out the admin CLI), so a unit
            # that reads first cannot fail on a snapshot another process made stale
            conn.execute("BEGIN IMMEDIATE")
        waiters = self._waiters
        if waiters is None:
            # scheduled before the unit runs: a unit that raises (a refused post) must not
            # leave the write lock held until some later write commits
            loop = self._group_loop = asyncio.get_running_loop()
            waiters = self._waiters = []
            self._commit_handle = loop.call_soon(self._flush)
        mark = len(self._after_commit)
        if first:
            # the transaction holds this unit alone: rolling it back undoes exactly the
            # unit, so the first unit of a group needs no savepoint (a send that commits
            # alone, as at low load, runs 9 statements instead of 11)
            try:
                result = unit(tx)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                del self._after_commit[mark:]
                raise
        else:
            conn.execute("SAVEPOINT unit")
            try:
                result = unit(tx)
            except BaseException:
                conn.execute("ROLLBACK TO unit")
                conn.execute("RELEASE unit")
                del self._after_commit[mark:]
                raise
            conn.execute("RELEASE unit")
        # the commit happens whether or not this waiter is still interested
        assert self._group_loop is not None
        waiter = self._group_loop.create_future()
        waiters.append(waiter)
        await waiter
        return result

    async def sync(self) -> None:
        """Wait until every write so far is committed."""
        if self._waiters is not None:
            assert self._group_loop is not None
            waiter = self._group_loop.create_future()
            self._waiters.append(waiter)
            await waiter

    def _flush(self, *, index: bool = False) -> None:
        waiters, self._waiters = self._waiters or [], None
        self._commit_handle = None
        callbacks = self._after_commit[:]
        self._after_commit.clear()
        conn = self._connection()
        try:
            if conn.in_transaction:
                tx = self.tx
                if tx.unindexed:
                    self._index_in_group(conn, tx, index)
                conn.execute("COMMIT")
        except Exception as exc:
            log.exception("commit failed; rolling back the group")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for waiter in waiters:
                if not waiter.done():  # a cancelled writer is not waiting any more
                    waiter.set_exception(exc)
            return
        self._commits += 1
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("after-commit callback failed")
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _index_in_group(self, conn: sqlite3.Connection, tx: SqliteTx, now: bool) -> None:
        """Index the new messages in this group's commit if the last indexing was
        :data:`INDEX_EVERY` ago (or ``now``); else once that time is up."""
        loop = asyncio.get_running_loop()
        if now or loop.time() - self._indexed_at >= INDEX_EVERY:
            tx.unindexed = False
            self._indexed_at = loop.time()
            index_new_messages(conn)
        elif self._index_timer is None:
            self._index_timer = loop.call_later(INDEX_EVERY, self._index_later)

    def _index_later(self) -> None:
        self._index_timer = None
        if self._tx is not None and self._tx.unindexed and self._index_task is None:
            self._index_task = asyncio.get_running_loop().create_task(self._index_group())

    async def _index_group(self) -> None:
        try:
            await self.write(lambda tx: None)  # the group's commit indexes (it is due)
        except Exception:
            log.warning("could not index new messages for search; the next commit does")
        finally:
            self._index_task = None

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file on a worker thread (readers and writers go on)."""
        commits = self._commits
        if commits == self._checkpointed_at:
            return
        await asyncio.to_thread(self._checkpoint_now)
        self._checkpointed_at = commits

    def _checkpoint_now(self) -> None:
        # one connection for every checkpoint, kept open: opening one read and parsed the
        # whole schema each time (a few % of the CPU of a busy server)
        with self._checkpoint_lock:
            conn = self._checkpoint_conn
            if conn is None:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA busy_timeout = 5000")
                self._checkpoint_conn = conn
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _close_checkpoint_conn(self) -> None:
        with self._checkpoint_lock:  # after a checkpoint still running on its thread
            conn, self._checkpoint_conn = self._checkpoint_conn, None
            if conn is not None:
                conn.close()

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            try:
                await self.checkpoint()
            except sqlite3.Error:
                log.exception("WAL checkpoint failed")

    async def close(self) -> None:
        """Commit what is pending, checkpoint, and close the database."""
        if self._conn is None:
            return
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        await asyncio.to_thread(self._close_checkpoint_conn)
        if self._index_timer is not None:
            self._index_timer.cancel()
            self._index_timer = None
        if self._index_task is not None:
            with contextlib.suppress(Exception):
                await self._index_task
        if self._commit_handle is not None:
            self._commit_handle.cancel()
            self._flush(index=True)
        elif self._tx is not None:
            with contextlib.suppress(sqlite3.Error):
                self._tx.index_pending()
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()
        self._conn = None
        self._tx = None
