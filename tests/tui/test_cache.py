"""The local cache keeps history, chats, contacts and the outbox across restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from messenger_client.cache import Cache, PendingSend
from messenger_client.tui.store import ChatStore
from messenger_protocol import Attachment, Chat, Contact, Message, MessageCreated, User


def msg(mid: int, chat_id: int = 1, root: int | None = None) -> Message:
    return Message(
        id=mid, chat_id=chat_id, author="a", text=f"m{mid}", created_at=float(mid), thread_root=root
    )


def test_history_pages_come_back_oldest_first_after_reopening(tmp_path: Path) -> None:
    cache = Cache.for_account("http://127.0.0.1:8000", "alice", root=tmp_path)
    cache.save_messages([msg(i) for i in range(1, 501)] + [msg(1000, chat_id=2), msg(1001, root=5)])
    cache.last_event_id = 42
    cache.close()
    cache = Cache.for_account("http://127.0.0.1:8000", "alice", root=tmp_path)
    assert [m.id for m in cache.messages(1, limit=3)] == [498, 499, 500]
    assert [m.id for m in cache.messages(1, before=3, limit=10)] == [1, 2]
    assert cache.message_count(1) == 500
    assert [m.id for m in cache.comments(5)] == [1001]
    assert cache.last_event_id == 42
    cache.delete_message(500)
    assert cache.messages(1, limit=1)[0].id == 499


def test_accounts_do_not_share_a_cache(tmp_path: Path) -> None:
    alice = Cache.for_account("http://h:1", "alice", root=tmp_path)
    bob = Cache.for_account("http://h:1", "bob", root=tmp_path)
    alice.save_messages([msg(1)])
    assert bob.messages(1) == []


def test_chats_users_contacts_and_outbox(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite3")
    cache.replace_chats(
        [
            Chat(id=1, kind="general", name="general"),
            Chat(id=2, kind="direct", name="@bob", peer="bob"),
        ]
    )
    cache.save_chat(Chat(id=2, kind="direct", name="@bob", peer="bob", unread=3))
    assert [c.unread for c in cache.chats()] == [0, 3]
    cache.replace_users([User("bob", online=True)])
    cache.replace_contacts([Contact("bob")])
    assert cache.users()[0].online and cache.contacts()[0].login == "bob"
    cache.add_pending(PendingSend("c1", 1, "hello", 1.0))
    cache.add_pending(PendingSend("c2", 2, "later", 2.0))
    cache.remove_pending("c1")
    assert [p.client_id for p in cache.pending()] == ["c2"]
    cache.remove_chat(2)
    cache.clear()
    assert cache.chats() == [] and cache.last_event_id is None
    assert [p.client_id for p in cache.pending()] == ["c2"]


def test_a_replayed_message_is_not_counted_twice(tmp_path: Path) -> None:
    store = ChatStore(me="alice", cache=Cache(tmp_path / "c.sqlite3"))
    store.set_chats([Chat(id=1, kind="general", name="general"),
                     Chat(id=2, kind="direct", name="@bob", peer="bob")])  # fmt: skip
    event = MessageCreated(Message(id=7, chat_id=2, author="bob", text="hi", created_at=1.0))
    assert store.apply(event).new_message is not None
    assert store.apply(event).new_message is None  # the same event again, after a reconnect
    assert store.chats[2].unread == 1
    assert store.cache is not None and store.cache.has_message(7)


def test_a_file_message_in_the_outbox_survives_a_restart_and_an_older_cache(
    tmp_path: Path,
) -> None:
    """Issue 12 (the TUI's shape first): file messages go through the outbox too, so the
    cache keeps their files with the send; a cache made before that gains the column."""
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE outbox (client_id TEXT PRIMARY KEY, chat_id INTEGER NOT NULL,"
        " text TEXT NOT NULL, thread_root INTEGER, created_at REAL NOT NULL);"
        "INSERT INTO outbox VALUES ('t1', 1, 'typed before', NULL, 1.0);"
    )
    old.commit()
    old.close()
    cache = Cache(path)
    photo = Attachment(id="f1", name="photo.png", mime="image/png", size=1234, sha256="ab" * 32)
    cache.add_pending(PendingSend("c1", 1, "", 2.0, None, (photo,)))
    cache.close()
    again = Cache(path)
    assert again.pending() == [
        PendingSend("t1", 1, "typed before", 1.0),
        PendingSend("c1", 1, "", 2.0, None, (photo,)),
    ]
    again.close()


def test_paging_the_cache_offline_leaves_it_as_the_server_sent_it(tmp_path: Path) -> None:
    """Older pages read from the cache are not written back: an edit still waiting in the
    outbox shows on its message but is not in the cache, so a refused edit leaves the
    server's text there (writing each page back was also 90 % of scrolling offline)."""
    cache = Cache(tmp_path / "c.sqlite3")
    cache.save_messages([msg(i) for i in range(1, 501)])
    cache.add_pending(PendingSend("e1", 1, "m5, edited", created_at=600.0, act="edit", target=5))
    store = ChatStore(me="a", cache=cache)
    store.load_cached()
    timeline = store.timeline(1)
    while (older := store.older_from_cache(1)) != []:
        store.add_older(1, older, has_more=True, from_cache=True)
    assert len(timeline) == 500
    assert timeline[4].text == "m5, edited"
    assert [m.text for m in cache.messages(1, before=6, limit=1)] == ["m5"]
