"""The SQLite store: migrations, durability of units, group commit, history index."""

from __future__ import annotations

import asyncio
import sqlite3
from functools import partial
from pathlib import Path

import pytest

from messenger_server.storage import DB_FILE, MIGRATIONS, SqliteStore, SqliteTx
from messenger_server.storage.retention import retention_queries
from messenger_server.storage.sqlite import UNREAD_COUNT_MAX


async def open_store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore.in_dir(tmp_path)
    await store.open()
    return store


async def test_fresh_database_is_migrated_in_wal_mode(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    conn = store.tx.conn
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    general = store.tx.chat(1)
    assert general is not None and general.kind == "general"
    await store.close()
    # reopening runs nothing again
    store = await open_store(tmp_path)
    assert store.tx.conn.execute("SELECT count(*) FROM chats").fetchone()[0] == 1
    await store.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        await open_store(tmp_path)


async def test_failed_unit_rolls_back_only_itself(tmp_path: Path) -> None:
    store = await open_store(tmp_path)

    def good(tx: SqliteTx) -> int | None:
        return tx.insert_user("alice", "h", 1.0, False)

    def bad(tx: SqliteTx) -> None:
        tx.insert_user("bob", "h", 1.0, False)
        raise ValueError("changed my mind")

    results = await asyncio.gather(store.write(good), store.write(bad), return_exceptions=True)
    assert isinstance(results[0], int) and isinstance(results[1], ValueError)
    await store.close()
    store = await open_store(tmp_path)
    assert [u.login for u in store.tx.users()] == ["alice"]
    await store.close()


async def test_writes_of_one_turn_share_one_commit_and_are_durable_on_return(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path)
    statements: list[str] = []
    conn = store.tx.conn
    assert isinstance(conn, sqlite3.Connection)
    conn.set_trace_callback(statements.append)

    user_id = await store.write(lambda tx: tx.insert_user("alice", "h", 1.0, False))
    assert user_id is not None
    statements.clear()

    def post(tx: SqliteTx, text: str) -> None:
        assert user_id is not None
        tx.insert_message(1, user_id, text, 2.0, None, None, None)

    await asyncio.gather(*(store.write(partial(post, text=f"m{i}")) for i in range(50)))
    assert statements.count("COMMIT") == 1
    # another connection sees every acknowledged write
    with sqlite3.connect(tmp_path / DB_FILE) as other:
        assert other.execute("SELECT count(*) FROM messages").fetchone()[0] == 50
    await store.close()


async def test_a_writer_cancelled_while_its_group_commits_cancels_no_other(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path)

    def add(tx: SqliteTx, login: str) -> int | None:
        return tx.insert_user(login, "h", 1.0, False)

    first = asyncio.ensure_future(store.write(partial(add, login="alice")))
    second = asyncio.ensure_future(store.write(partial(add, login="bob")))
    await asyncio.sleep(0)  # both units ran in this turn; their commit is the next
    first.cancel()
    assert isinstance(await second, int)
    with pytest.raises(asyncio.CancelledError):
        await first
    await store.sync()
    await store.close()
    store = await open_store(tmp_path)  # the cancelled writer's unit was committed too
    assert sorted(u.login for u in store.tx.users()) == ["alice", "bob"]
    await store.close()


async def test_history_and_unread_use_the_chat_index(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    conn = store.tx.conn
    plans = [
        "SELECT id FROM messages WHERE chat_id = 1 AND thread_root IS NULL ORDER BY id DESC"
        " LIMIT 51",
        "SELECT id FROM messages WHERE chat_id = 1 AND thread_root IS NULL AND id < 500"
        " ORDER BY id DESC LIMIT 51",
        "SELECT count(*) FROM (SELECT 1 FROM messages WHERE chat_id = 1 AND thread_root IS NULL"
        " AND id > 5 AND author_id != 2 LIMIT 10000)",
    ]
    for sql in plans:
        plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "messages_unread" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    # the unread count reads the index alone, never the rows (issue 11)
    assert "COVERING INDEX" in plan, plan
    await store.close()


async def test_checkpoint_moves_the_wal_into_the_database(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    await store.write(lambda tx: tx.insert_user("alice", "h", 1.0, False))
    wal = tmp_path / (DB_FILE + "-wal")
    assert wal.stat().st_size > 0
    await store.checkpoint()
    # a reader that ignores the WAL (immutable) sees the user: it is in the main file
    uri = f"file:{tmp_path / DB_FILE}?immutable=1"
    with sqlite3.connect(uri, uri=True) as reader:
        assert reader.execute("SELECT login FROM users").fetchall() == [("alice",)]
    await store.close()
    assert not wal.exists() or wal.stat().st_size == 0


async def test_unread_count_stops_at_its_cap(tmp_path: Path) -> None:
    """So does the count of unread messages that disappeared (issue 11: /chats looked at
    every unread message of every chat on each request)."""
    store = await open_store(tmp_path)

    def gone(cutoff: float) -> dict[int, int]:
        return retention_queries(store.tx).gone_unread_in(999, [(1, 0)], cutoff)

    def fill(tx: SqliteTx, count: int) -> int:
        tx.insert_user("bob", "h", 1.0, False)  # a member of the general chat, reads nothing
        author = tx.insert_user("alice", "h", 1.0, False)
        assert author is not None
        for _ in range(count):
            tx.insert_message(1, author, "x", 2.0, None, None, None)
        return author

    await store.write(partial(fill, count=UNREAD_COUNT_MAX - 1))
    assert store.tx.unread_count(1, 999, 0) == UNREAD_COUNT_MAX - 1
    assert gone(10.0) == {1: UNREAD_COUNT_MAX - 1} and gone(1.0) == {}
    author = store.tx.user_by_login("alice")
    assert author is not None
    await store.write(lambda tx: tx.insert_message(1, author.id, "y", 3.0, None, None, None))
    assert store.tx.unread_count(1, 999, 0) == UNREAD_COUNT_MAX
    assert gone(10.0) == {1: UNREAD_COUNT_MAX}
    await store.write(lambda tx: tx.insert_message(1, author.id, "z", 3.0, None, None, None))
    assert store.tx.unread_count(1, 999, 0) == UNREAD_COUNT_MAX
    assert gone(10.0) == {1: UNREAD_COUNT_MAX}
    bob = store.tx.user_by_login("bob")
    assert bob is not None
    assert [c.unread for c in store.tx.chat_views_of(bob.id)] == [UNREAD_COUNT_MAX]
    assert [c.unread for c in store.tx.chat_views_of(author.id)] == [0]  # all its own
    await store.close()


@pytest.mark.parametrize(("mode", "level"), [("NORMAL", 1), ("FULL", 2)])
async def test_synchronous_mode_is_the_configured_one(
    tmp_path: Path, mode: str, level: int
) -> None:
    """Item 21 of issue 9: --sqlite-synchronous reaches the connection (FULL fsyncs each
    commit, NORMAL at checkpoints), and NORMAL is the default."""
    store = SqliteStore.in_dir(tmp_path, synchronous=mode)
    await store.open()
    try:
        assert store.tx.conn.execute("PRAGMA synchronous").fetchone()[0] == level
    finally:
        await store.close()
    from messenger_server.config import load_settings

    assert load_settings({}).sqlite_synchronous == "NORMAL"


async def test_a_refused_unit_alone_does_not_keep_the_write_lock(tmp_path: Path) -> None:
    """A unit that raises (a refused post) with no other write in its turn still ends the
    transaction, so another process (the admin CLI) can write."""
    store = await open_store(tmp_path)
    try:

        def refused(tx: SqliteTx) -> None:
            tx.insert_user("alice", "h", 1.0, False)
            raise ValueError("refused")

        with pytest.raises(ValueError):
            await store.write(refused)
        await store.sync()
        other = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")  # "database is locked" while the lock is held
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert store.tx.user_by_login("alice") is None
    finally:
        await store.close()
