"""SQLite's search index takes the new messages of a group commit in one statement (at
most every INDEX_EVERY seconds): what a group stores is found once it commits (and inside
it), edits and deletions keep the index whole, a refused unit leaves nothing behind, and a
database of the schema that indexed by trigger keeps every message findable after the
migration."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from messenger_protocol import Message, parse_search
from messenger_server.storage import DB_FILE, MIGRATIONS, SqliteStore, Tx
from messenger_server.storage import sqlite as sqlite_store
from messenger_server.storage.annotations import annotation_queries
from messenger_server.storage.migrations import sqlite_script
from messenger_server.storage.search import SearchFilter, search_queries
from messenger_server.storage.sql import connection


def _found(tx: Tx, user_id: int, query: str) -> list[str]:
    hits = search_queries(tx).search(user_id, SearchFilter(parse_search(query)), None, 50)
    return sorted(m.text for m in hits)


def _post(tx: Tx, *, user: int, text: str) -> Message:
    message = tx.insert_message(1, user, text, 2.0, None, None, None)
    assert message is not None
    return message


def _whole(store: SqliteStore) -> None:
    """FTS5's own check: the index holds exactly what the messages table says."""
    store.tx.conn.execute(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)"
    )


async def test_a_group_commit_indexes_its_messages_edits_and_deletions(tmp_path: Path) -> None:
    store = SqliteStore.in_dir(tmp_path)
    await store.open()
    try:
        user = await store.write(lambda tx: tx.insert_user("alice", "h", 1.0, False))
        assert user is not None

        def post(text: str) -> Callable[[Tx], int]:
            def unit(tx: Tx) -> int:
                message = tx.insert_message(1, user, text, 2.0, None, None, None)
                assert message is not None
                return message.id

            return unit

        def post_and_edit(tx: Tx) -> int:
            message = tx.insert_message(1, user, "walrus draft", 2.0, None, None, None)
            assert message is not None
            annotation_queries(tx).edit_text(message.id, "walrus final", 3.0)
            return message.id

        def post_and_delete(tx: Tx) -> None:
            message = tx.insert_message(1, user, "walrus gone", 2.0, None, None, None)
            assert message is not None
            connection(tx).execute("DELETE FROM messages WHERE id = ?", (message.id,))

        def post_and_search(tx: Tx) -> list[str]:
            tx.insert_message(1, user, "walrus seen inside", 2.0, None, None, None)
            return _found(tx, user, "walrus")

        def refused(tx: Tx) -> None:
            tx.insert_message(1, user, "walrus refused", 2.0, None, None, None)
            raise RuntimeError("refused")

        results = await asyncio.gather(
            store.write(post("walrus one")),
            store.write(post_and_edit),
            store.write(post_and_delete),
            store.write(refused),
            store.write(post_and_search),
            store.write(post("walrus two")),
            return_exceptions=True,
        )
        assert isinstance(results[3], RuntimeError)
        # a search inside the group finds what the group stored so far, as it is now
        assert results[4] == ["walrus final", "walrus one", "walrus seen inside"]
        found = await store.read(lambda tx: _found(tx, user, "walrus"))
        assert found == ["walrus final", "walrus one", "walrus seen inside", "walrus two"]
        assert await store.read(lambda tx: _found(tx, user, "draft")) == []
        _whole(store)
        # an edit and a deletion of indexed messages, each in a later group
        first = results[0]
        assert isinstance(first, int)
        await store.write(lambda tx: annotation_queries(tx).edit_text(first, "narwhal", 4.0))
        await store.write(lambda tx: annotation_queries(tx).tombstone(first, 5.0))
        assert await store.read(lambda tx: _found(tx, user, "narwhal")) == []
        _whole(store)
    finally:
        await store.close()


def _database_before(tmp_path: Path, step: int) -> sqlite3.Connection:
    """A database of the schema before migration ``step``, holding alice in general."""
    conn = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None)
    for number in range(step):
        script = sqlite_script(MIGRATIONS[number])
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number + 1};\nCOMMIT;")
    conn.execute("INSERT INTO users (login, password_hash, created_at) VALUES ('alice', 'h', 1.0)")
    conn.execute("INSERT INTO members (chat_id, user_id, joined_at) VALUES (1, 1, 1.0)")
    return conn


async def test_messages_indexed_by_the_old_trigger_stay_findable(tmp_path: Path) -> None:
    """A database migrated from the schema step that indexed each row by trigger."""
    step = next(n for n, s in enumerate(MIGRATIONS) if "search_indexed" in s.sqlite)
    with _database_before(tmp_path, step) as conn:
        for text in ("otter before", "otter edited later", "otter deleted later"):
            conn.execute(
                "INSERT INTO messages (chat_id, author_id, text, created_at) VALUES (1, 1, ?, 2.0)",
                (text,),
            )
    conn.close()
    store = SqliteStore.in_dir(tmp_path)
    await store.open()
    try:

        def after(tx: Tx) -> None:
            tx.insert_message(1, 1, "otter after", 3.0, None, None, None)
            annotation_queries(tx).edit_text(2, "otter changed", 4.0)
            annotation_queries(tx).tombstone(3, 5.0)

        await store.write(after)
        found = await store.read(lambda tx: _found(tx, 1, "otter"))
        assert found == ["otter after", "otter before", "otter changed"]
        _whole(store)
    finally:
        await store.close()


async def test_the_prefix_index_step_keeps_every_message_findable_once(tmp_path: Path) -> None:
    """A database from before the prefix index: the step makes the index again from the
    messages it held, a message stored but not yet indexed is indexed after, once, and
    a prefix finds them all through FTS5's prefix index."""
    step = next(n for n, s in enumerate(MIGRATIONS) if "prefix=" in s.sqlite)
    with _database_before(tmp_path, step) as conn:
        insert = "INSERT INTO messages (chat_id, author_id, text, created_at) VALUES (1, 1, ?, 2.0)"
        for text in ("otter indexed", "otters edited later"):
            conn.execute(insert, (text,))
        conn.execute("UPDATE search_indexed SET upto = (SELECT max(id) FROM messages)")
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
        conn.execute(insert, ("otter not indexed yet",))
    conn.close()
    store = SqliteStore.in_dir(tmp_path)
    await store.open()
    try:
        await store.write(lambda tx: annotation_queries(tx).edit_text(2, "otterly changed", 4.0))
        found = await store.read(lambda tx: _found(tx, 1, "ott"))
        assert found == ["otter indexed", "otter not indexed yet", "otterly changed"]
        assert await store.read(lambda tx: _found(tx, 1, "otters")) == []
        _whole(store)
        (sql,) = store.tx.conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'messages_fts'"
        ).fetchone()
        assert "prefix=" in sql
    finally:
        await store.close()


async def test_groups_in_quick_succession_index_together_and_stay_findable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: new messages are indexed at a group commit at most every INDEX_EVERY
    seconds; a search in between (outside any group) indexes what is pending first, and a
    store that stopped with messages unindexed indexes them after it opens again."""
    monkeypatch.setattr(sqlite_store, "INDEX_EVERY", 60.0)  # however slow the machine
    store = SqliteStore.in_dir(tmp_path)
    await store.open()

    def upto(tx: Tx) -> tuple[int, int]:
        row = (
            connection(tx)
            .execute("SELECT (SELECT upto FROM search_indexed), (SELECT max(id) FROM messages)")
            .fetchone()
        )
        return int(row[0]), int(row[1])

    try:
        user = await store.write(lambda tx: tx.insert_user("alice", "h", 1.0, False))
        assert user is not None
        ids: list[int] = []
        for text in ("otter one", "otter two", "otter three"):  # three group commits
            message = await store.write(partial(_post, user=user, text=text))
            ids.append(message.id)
        indexed, newest = await store.read(upto)
        assert indexed < newest  # not every commit indexed
        await store.write(lambda tx: annotation_queries(tx).edit_text(ids[2], "otter 3", 3.0))
        found = await store.read(lambda tx: _found(tx, user, "otter"))
        assert found == ["otter 3", "otter one", "otter two"]
        assert await store.read(upto) == (newest, newest)
        _whole(store)
        await store.write(partial(_post, user=user, text="otter four"))
    finally:
        await store.close()
    # a crash before the indexing: the mark is behind the newest message
    db = sqlite3.connect(tmp_path / DB_FILE)
    with db:
        db.execute("DELETE FROM messages_fts")
        db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
        db.execute("UPDATE search_indexed SET upto = ?", (ids[0],))
        db.execute("DELETE FROM messages_fts WHERE rowid > ?", (ids[0],))
    db.close()
    store = SqliteStore.in_dir(tmp_path)
    await store.open()
    try:
        found = await store.read(lambda tx: _found(tx, user, "otter"))
        assert found == ["otter 3", "otter four", "otter one", "otter two"]
        _whole(store)
    finally:
        await store.close()
