"""The local cache (SPEC F20): chats, contacts, users and message history in SQLite.

One database file per account and server, in the user's data dir (platformdirs), so
the app shows history at once on start, before the network answers, and offline.
It also keeps the outbox: sends that have not been acknowledged yet, so a message
typed while offline is retried with the same ``client_id`` after a restart too.

The cache is a mirror, never the truth: whatever the server says replaces it. An
end-to-end encrypted message is kept as the server sent it, ciphertext only (its text
and its quote empty; issue 14): no plaintext at rest. ``/search`` decrypts the cached
ciphertext in memory (:meth:`Cache.search` with a ``reveal``) to find words in it.
Calls are synchronous and short (indexed reads of one page, small writes); WAL mode
keeps writes from blocking reads.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import msgspec
import platformdirs

from messenger_protocol import (
    Attachment,
    Chat,
    Contact,
    Event,
    Message,
    MessageDeleted,
    MessageEdited,
    MessageUpdated,
    ParsedSearch,
    ReactionChanged,
    User,
    fts5_match,
    search_words,
)

__all__ = ["Cache", "PendingAct", "PendingSend", "default_cache_dir"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3

# what /search finds offline: the text of every cached message in the clear that is not a
# tombstone (an encrypted one has no text here: search decrypts it in memory). A search's
# last word is a prefix (noo finds noon): FTS5 keeps an index of the 3-letter prefixes
_MESSAGES_FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    text, chat_id UNINDEXED, author UNINDEXED, created_at UNINDEXED, files UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2', prefix = '3'
)
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chats (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS users (login TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (login TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    thread_root INTEGER,
    body BLOB NOT NULL,
    encrypted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages (chat_id, thread_root, id);
CREATE INDEX IF NOT EXISTS messages_encrypted ON messages (encrypted, chat_id, id);
CREATE TABLE IF NOT EXISTS outbox (
    client_id TEXT PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    thread_root INTEGER,
    created_at REAL NOT NULL
);
"""
_SCHEMA += _MESSAGES_FTS + ";"
_OUTBOX_FILES = "ALTER TABLE outbox ADD COLUMN attachments BLOB"
"""The outbox of a cache made before file messages went through it gains their files."""
_OUTBOX_REPLIES = "ALTER TABLE outbox ADD COLUMN reply_to INTEGER"
"""... and, made before replies went through it, the message each answers."""
_OUTBOX_ACTS = (
    "ALTER TABLE outbox ADD COLUMN act TEXT NOT NULL DEFAULT 'send'",
    "ALTER TABLE outbox ADD COLUMN target INTEGER",
)
"""... and, made before edits and reactions went through it, what each asks."""

_encoder = msgspec.msgpack.Encoder()
_message_decoder = msgspec.msgpack.Decoder(Message)
_chat_decoder = msgspec.msgpack.Decoder(Chat)
_user_decoder = msgspec.msgpack.Decoder(User)
_contact_decoder = msgspec.msgpack.Decoder(Contact)
_attachments_decoder = msgspec.msgpack.Decoder(tuple[Attachment, ...])

PendingAct = Literal["send", "edit", "react", "unreact"]
"""What a queued send asks of the server."""
_ACTS: tuple[str, ...] = get_args(PendingAct)


Reveal = Callable[[Message], Message | None]
"""An encrypted message with its plaintext in memory, None if this device cannot read it."""


def _at_rest(message: Message) -> Message:
    """What is written to disk of a message: an encrypted one without any plaintext (its
    text and its reply's quote are inside the ciphertext)."""
    if message.encrypted is None:
        return message
    quote = message.reply_to
    if quote is not None and quote.text:
        quote = msgspec.structs.replace(quote, text="")
    if not message.text and quote is message.reply_to:
        return message
    return msgspec.structs.replace(message, text="", reply_to=quote)


def _text_matches(query: ParsedSearch, text: str) -> bool:
    """Whether a plaintext has every word and phrase of a query (the index's words), and
    a word that begins with its prefix."""
    words = search_words(text)
    if not set(query.words) <= set(words):
        return False
    prefix = query.prefix
    if prefix is not None and not any(w.startswith(prefix) for w in words):
        return False
    for phrase in query.phrases:
        n = len(phrase)
        if not any(tuple(words[i : i + n]) == phrase for i in range(len(words) - n + 1)):
            return False
    return True


@dataclass(frozen=True)
class PendingSend:
    """A message typed by the user that the server has not acknowledged yet (or an
    edit or a reaction: see ``act``)."""

    client_id: str
    chat_id: int
    text: str
    created_at: float
    thread_root: int | None = None
    attachments: tuple[Attachment, ...] = ()
    """Files already uploaded that the message carries (a file message)."""
    reply_to: int | None = None
    """The message it answers (a reply, quoting it)."""
    act: PendingAct = "send"
    """What it asks: a new message (``send``), or a new ``text`` for message ``target``
    (``edit``), or the reaction ``text`` added to it or taken back (``react``,
    ``unreact``). Edits and reactions wait and are retried like sends."""
    target: int | None = None
    """The message an edit or a reaction is for."""


def default_cache_dir() -> Path:
    """Where caches live by default: ``<user data dir>/messenger/cache``."""
    return Path(platformdirs.user_data_dir("messenger", appauthor=False)) / "cache"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "default"


class Cache:
    """The local cache of one account on one server."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.closed = False
        """Whether :meth:`close` ran."""
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._drop_plaintext_of_old_caches()
        self._add_prefix_index()
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "attachments" not in columns:
            self._db.execute(_OUTBOX_FILES)
        if "reply_to" not in columns:
            self._db.execute(_OUTBOX_REPLIES)
        if "act" not in columns:
            for alter in _OUTBOX_ACTS:
                self._db.execute(alter)
        version = self._meta("schema_version")
        if version is None:
            self._set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) != SCHEMA_VERSION:
            # A mirror: when its shape changes, start over rather than migrate.
            log.info("cache %s has schema %s, rebuilding", self.path, version)
            self.clear()
            self._set_meta("schema_version", str(SCHEMA_VERSION))

    def _add_prefix_index(self) -> None:
        """A cache whose search index has no prefix index gets one: the index is made again
        with it and keeps every entry it had."""
        row = self._db.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'messages_fts'"
        ).fetchone()
        if row is None or "prefix" in row[0]:
            return
        log.info("cache %s: adding the prefix index to search", self.path)
        columns = "rowid, text, chat_id, author, created_at, files"
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("ALTER TABLE messages_fts RENAME TO messages_fts_old")
            self._db.execute(_MESSAGES_FTS)
            self._db.execute(
                f"INSERT INTO messages_fts ({columns}) SELECT {columns} FROM messages_fts_old"
            )
            self._db.execute("DROP TABLE messages_fts_old")

    def _drop_plaintext_of_old_caches(self) -> None:
        """A cache from before encrypted messages were kept as ciphertext only may hold
        their plaintext: its messages go (a mirror: they come back from the server),
        overwritten on disk, not only unlinked."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
        if not columns or "encrypted" in columns:
            return
        log.info("cache %s: dropping messages kept before ciphertext-only", self.path)
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute("DROP TABLE messages")
        self._db.execute("DROP TABLE IF EXISTS messages_fts")
        self._db.execute("DELETE FROM meta WHERE key = 'last_event_id'")
        self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @classmethod
    def for_account(cls, server: str, login: str, root: Path | None = None) -> Cache:
        """Open (or create) the cache of ``login`` on ``server`` (a base URL)."""
        server_part = _slug(re.sub(r"^[a-z]+://", "", server))
        return cls((root or default_cache_dir()) / server_part / f"{_slug(login)}.sqlite3")

    def close(self) -> None:
        """Close the database."""
        self._db.close()
        self.closed = True

    def clear(self) -> None:
        """Forget everything except the outbox (the server asked for a reset)."""
        with self._db:
            for table in ("chats", "users", "contacts", "messages", "messages_fts"):
                self._db.execute(f"DELETE FROM {table}")
            self._db.execute("DELETE FROM meta WHERE key IN ('last_event_id', 'encrypted_chats')")

    # --- meta -----------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def last_event_id(self) -> int | None:
        """Id of the last event applied to this cache, to resume the stream from."""
        value = self._meta("last_event_id")
        return None if value is None else int(value)

    @last_event_id.setter
    def last_event_id(self, value: int | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = 'last_event_id'")
        else:
            self._set_meta("last_event_id", str(value))

    def encrypted_chats(self) -> set[int]:
        """Chats this device found to be end-to-end encrypted (a direct chat is, once both
        users have keys: only the server's key directory tells, so offline the lock
        comes from here)."""
        value = self._meta("encrypted_chats")
        return {int(part) for part in value.split(",")} if value else set()

    def save_encrypted_chats(self, chat_ids: Iterable[int]) -> None:
        """Remember which chats are end-to-end encrypted."""
        self._set_meta("encrypted_chats", ",".join(str(i) for i in sorted(set(chat_ids))))

    # --- chats, users, contacts ---------------------------------------------------

    def chats(self) -> list[Chat]:
        """Cached chats, in id order."""
        rows = self._db.execute("SELECT body FROM chats ORDER BY id").fetchall()
        return [_chat_decoder.decode(row[0]) for row in rows]

    def replace_chats(self, chats: Iterable[Chat]) -> None:
        """Replace the chat list with what the server says."""
        with self._db:
            self._db.execute("DELETE FROM chats")
            self._db.executemany(
                "INSERT INTO chats (id, body) VALUES (?, ?)",
                [(c.id, _encoder.encode(c)) for c in chats],
            )

    def save_chat(self, chat: Chat) -> None:
        """Insert or update one chat."""
        body = _encoder.encode(chat)
        self._db.execute("INSERT OR REPLACE INTO chats (id, body) VALUES (?, ?)", (chat.id, body))

    def remove_chat(self, chat_id: int) -> None:
        """Forget a chat the user left, with its messages."""
        with self._db:
            self._db.execute("DELETE FROM chats WHERE id = ?", (chat_id,))
            self._db.execute("DELETE FROM messages WHERE chat_id = ?", (chat_id,))

    def users(self) -> list[User]:
        """Cached users, by login."""
        rows = self._db.execute("SELECT body FROM users ORDER BY login").fetchall()
        return [_user_decoder.decode(row[0]) for row in rows]

    def replace_users(self, users: Iterable[User]) -> None:
        """Replace the user list with what the server says."""
        with self._db:
            self._db.execute("DELETE FROM users")
            self._db.executemany(
                "INSERT INTO users (login, body) VALUES (?, ?)",
                [(u.login, _encoder.encode(u)) for u in users],
            )

    def contacts(self) -> list[Contact]:
        """Cached contacts, by login."""
        rows = self._db.execute("SELECT body FROM contacts ORDER BY login").fetchall()
        return [_contact_decoder.decode(row[0]) for row in rows]

    def replace_contacts(self, contacts: Iterable[Contact]) -> None:
        """Replace the contact list with what the server says."""
        with self._db:
            self._db.execute("DELETE FROM contacts")
            self._db.executemany(
                "INSERT INTO contacts (login, body) VALUES (?, ?)",
                [(c.login, _encoder.encode(c)) for c in contacts],
            )

    # --- messages -------------------------------------------------------------

    def save_messages(self, messages: Iterable[Message]) -> None:
        """Insert or update messages (by id), and their words in the search index. An
        encrypted message is kept without plaintext: give the server's copy (a decrypted
        copy loses its text and quote here, but its files' names would stay)."""
        batch = [_at_rest(m) for m in messages]
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO messages (id, chat_id, thread_root, body, encrypted)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (m.id, m.chat_id, m.thread_root, _encoder.encode(m), m.encrypted is not None)
                    for m in batch
                ],
            )
            self._db.executemany(
                "DELETE FROM messages_fts WHERE rowid = ?", [(m.id,) for m in batch]
            )
            self._db.executemany(
                "INSERT INTO messages_fts (rowid, text, chat_id, author, created_at, files)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (m.id, m.text, m.chat_id, m.author.lower(), m.created_at, len(m.attachments))
                    for m in batch
                    if m.deleted_at is None and m.encrypted is None
                ],
            )

    def has_message(self, message_id: int) -> bool:
        """Whether a message is cached (a replayed event for it is not news)."""
        row = self._db.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone()
        return row is not None

    def delete_message(self, message_id: int) -> None:
        """Forget a message that disappeared."""
        with self._db:
            self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            self._db.execute("DELETE FROM messages_fts WHERE rowid = ?", (message_id,))

    def search(
        self,
        query: ParsedSearch,
        *,
        chat_id: int | None = None,
        limit: int = 20,
        reveal: Reveal | None = None,
    ) -> list[Message]:
        """The cached messages that match a parsed search (``chat_id``: its ``in:``),
        newest first: what this device has seen, for ``/search`` while offline. With
        ``reveal`` the encrypted ones are searched too (:meth:`search_encrypted`)."""
        found = self._search_clear(query, chat_id, limit)
        if reveal is not None:
            found += self.search_encrypted(query, reveal, chat_id=chat_id, limit=limit)
            found.sort(key=lambda m: m.id, reverse=True)
        return found[:limit]

    def search_encrypted(
        self, query: ParsedSearch, reveal: Reveal, *, chat_id: int | None = None, limit: int = 20
    ) -> list[Message]:
        """The cached encrypted messages that match, newest first, each decrypted in
        memory by ``reveal`` (the server cannot search them: it has no text); those this
        device cannot read are left out."""
        out: list[Message] = []
        for message in self._encrypted(chat_id):
            if len(out) >= limit:
                break
            if message.deleted_at is not None:
                continue
            if query.from_login is not None and message.author.lower() != query.from_login.lower():
                continue
            if query.before is not None and message.created_at >= query.before:
                continue
            if query.after is not None and message.created_at < query.after:
                continue
            if query.has_file and not message.attachments:
                continue
            shown = reveal(message)
            if shown is not None and _text_matches(query, shown.text):
                out.append(shown)
        return out

    def _encrypted(self, chat_id: int | None) -> Iterator[Message]:
        sql = "SELECT body FROM messages WHERE encrypted = 1"
        args: tuple[int, ...] = ()
        if chat_id is not None:
            sql += " AND chat_id = ?"
            args = (chat_id,)
        for row in self._db.execute(sql + " ORDER BY id DESC", args).fetchall():
            yield _message_decoder.decode(row[0])

    def _search_clear(self, query: ParsedSearch, chat_id: int | None, limit: int) -> list[Message]:
        where: list[str] = []
        args: list[object] = []
        if query.has_text:
            where.append("messages_fts MATCH ?")
            args.append(fts5_match(query))
        if chat_id is not None:
            where.append("chat_id = ?")
            args.append(chat_id)
        if query.from_login is not None:
            where.append("author = ?")
            args.append(query.from_login.lower())
        if query.before is not None:
            where.append("created_at < ?")
            args.append(query.before)
        if query.after is not None:
            where.append("created_at >= ?")
            args.append(query.after)
        if query.has_file:
            where.append("files > 0")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.execute(
            f"SELECT m.body FROM messages m JOIN (SELECT rowid AS id FROM messages_fts{clause})"
            " f ON f.id = m.id ORDER BY m.id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [_message_decoder.decode(r[0]) for r in rows]

    def message(self, message_id: int) -> Message | None:
        """One cached message."""
        row = self._db.execute("SELECT body FROM messages WHERE id = ?", (message_id,)).fetchone()
        return None if row is None else _message_decoder.decode(row[0])

    def apply(self, event: Event) -> bool:
        """Apply a live event about a message already seen: an edit or a change replaces it,
        a deletion leaves its tombstone (or, for a message that disappeared, nothing), a
        reaction updates its counts. Messages never cached stay out (True if it changed)."""
        match event:
            case MessageEdited(message=message) | MessageUpdated(message=message):
                if not self.has_message(message.id):
                    return False
                self.save_messages([message])
                return True
            case MessageDeleted(message_id=message_id, tombstone=None):
                known = self.has_message(message_id)
                self.delete_message(message_id)
                return known
            case MessageDeleted(message_id=message_id, tombstone=tombstone):
                if tombstone is None or not self.has_message(message_id):
                    return False
                self.save_messages([tombstone])
                return True
            case ReactionChanged(message_id=message_id, reactions=reactions):
                cached = self.message(message_id)
                if cached is None:
                    return False
                self.save_messages([msgspec.structs.replace(cached, reactions=reactions)])
                return True
            case _:
                return False

    def messages(self, chat_id: int, before: int | None = None, limit: int = 200) -> list[Message]:
        """Up to ``limit`` messages of a chat older than ``before``, oldest first."""
        if before is None:
            rows = self._db.execute(
                "SELECT body FROM messages WHERE chat_id = ? AND thread_root IS NULL"
                " ORDER BY id DESC LIMIT ?",
                (chat_id, limit),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT body FROM messages WHERE chat_id = ? AND thread_root IS NULL AND id < ?"
                " ORDER BY id DESC LIMIT ?",
                (chat_id, before, limit),
            ).fetchall()
        return [_message_decoder.decode(row[0]) for row in reversed(rows)]

    def comments(self, root_id: int) -> list[Message]:
        """Cached comments under a message, oldest first."""
        rows = self._db.execute(
            "SELECT body FROM messages WHERE thread_root = ? ORDER BY id", (root_id,)
        ).fetchall()
        return [_message_decoder.decode(row[0]) for row in rows]

    def message_count(self, chat_id: int) -> int:
        """How many messages of a chat are cached."""
        row = self._db.execute(
            "SELECT count(*) FROM messages WHERE chat_id = ? AND thread_root IS NULL", (chat_id,)
        ).fetchone()
        return int(row[0])

    # --- outbox ---------------------------------------------------------------

    def add_pending(self, p: PendingSend) -> None:
        """Keep a send until the server acknowledges it."""
        self._db.execute(
            "INSERT OR REPLACE INTO outbox"
            " (client_id, chat_id, text, thread_root, created_at, attachments, reply_to,"
            " act, target) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                p.client_id, p.chat_id, p.text, p.thread_root, p.created_at,
                _encoder.encode(p.attachments) if p.attachments else None, p.reply_to,
                p.act, p.target,
            ),
        )  # fmt: skip

    def pending(self) -> list[PendingSend]:
        """Unacknowledged sends, oldest first."""
        rows = self._db.execute(
            "SELECT client_id, chat_id, text, created_at, thread_root, attachments, reply_to,"
            " act, target FROM outbox ORDER BY created_at"
        ).fetchall()
        return [
            PendingSend(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                _attachments_decoder.decode(r[5]) if r[5] else (),
                reply_to=r[6],
                act=r[7] if r[7] in _ACTS else "send",
                target=r[8],
            )
            for r in rows
        ]

    def remove_pending(self, client_id: str) -> None:
        """The server acknowledged (or finally refused) a send."""
        self._db.execute("DELETE FROM outbox WHERE client_id = ?", (client_id,))
