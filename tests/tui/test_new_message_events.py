"""Issue 12: the TUI takes the new events of edits, deletions, reactions and pins in its
stride (their screens come later): nothing crashes, the chats stay as they were."""

from __future__ import annotations

from pathlib import Path

from messenger_client.cache import Cache
from messenger_client.tui.store import ChatStore
from messenger_protocol import (
    Chat,
    ChatUpdated,
    Mentioned,
    Message,
    MessageCreated,
    MessageDeleted,
    MessageEdited,
    PinChanged,
    Reaction,
    ReactionChanged,
)


def test_new_message_events_change_no_chat_and_raise_nothing(tmp_path: Path) -> None:
    store = ChatStore(me="alice", cache=Cache(tmp_path / "c.sqlite3"))
    store.set_chats([Chat(id=1, kind="general", name="general")])
    message = Message(id=7, chat_id=1, author="bob", text="hi", created_at=1.0)
    store.apply(MessageCreated(message))
    before = store.sorted_chats()
    edited = Message(id=7, chat_id=1, author="bob", text="hello", created_at=1.0, edited_at=2.0)
    thumbs = [Reaction(emoji="👍", count=1, users=["alice"])]
    for event in (
        MessageEdited(message=edited),
        ReactionChanged(chat_id=1, message_id=7, emoji="👍", login="alice", added=True,
                        reactions=thumbs),
        PinChanged(chat_id=1, message_id=7, pinned=True, by="alice"),
        MessageDeleted(chat_id=1, message_id=7,
                       tombstone=Message(id=7, chat_id=1, author="bob", text="",
                                         created_at=1.0, deleted_at=3.0)),
    ):  # fmt: skip
        change = store.apply(event)
        assert not change.chats
    assert store.sorted_chats() == before


def test_a_chat_an_event_brings_while_the_list_is_asked_for_stays(tmp_path: Path) -> None:
    """A private chat someone starts just as the TUI connects comes as an event before
    the (older) chat list answers; the answer no longer drops it (and its messages)."""
    store = ChatStore(me="alice", cache=Cache(tmp_path / "c.sqlite3"))
    general = Chat(id=1, kind="general", name="general")
    store.set_chats([general])
    store.refreshing_chats()
    dm = Chat(id=5, kind="direct", name="@bob", peer="bob")
    store.apply(ChatUpdated(chat=dm))
    store.apply(MessageCreated(Message(id=9, chat_id=5, author="bob", text="hi", created_at=1.0)))
    store.set_chats([general])  # what the server said before bob started the chat
    assert set(store.chats) == {1, 5}
    assert [m.text for m in store.timeline(5).messages] == ["hi"]
    store.set_chats([general])  # a later answer is the truth again
    assert set(store.chats) == {1}


def test_a_message_counts_once_in_the_badge_whichever_comes_first(tmp_path: Path) -> None:
    """The chat list answered on connect and a live message race: the badge says 1 both
    when the answer was read before the message was sent (and arrives after it) and when
    it already counts the message (and the live event comes after it)."""
    hi = Message(id=9, chat_id=5, author="bob", text="hi", created_at=2.0)
    before = Chat(id=5, kind="direct", name="@bob", peer="bob", last_message_id=4,
                  last_message_at=1.0)  # fmt: skip
    after = Chat(id=5, kind="direct", name="@bob", peer="bob", unread=1, last_message_id=9,
                 last_message_at=2.0)  # fmt: skip
    for answer in (before, after):
        store = ChatStore(me="alice", cache=Cache(tmp_path / f"{answer.unread}.sqlite3"))
        store.set_chats([before])
        store.refreshing_chats()
        if answer is before:
            store.apply(MessageCreated(hi))  # the stream is faster than the answer
            store.set_chats([answer])
        else:
            store.set_chats([answer])
            store.apply(MessageCreated(hi))
        assert store.chats[5].unread == 1
        assert store.chats[5].last_message_id == 9


def test_a_mention_counts_once_in_the_badge_whichever_comes_first(tmp_path: Path) -> None:
    """The @N badge races the same way: the chat list's answer may count a mention the
    live event then brings again, or be read before it and come after it. It says @1 in
    every order (it said @2 when the answer counted it, and @0 when it came last)."""
    hi = Message(id=9, chat_id=5, author="bob", text="@alice hi", created_at=2.0)
    before = Chat(id=5, kind="group", name="crew", last_message_id=4, last_message_at=1.0)
    after = Chat(id=5, kind="group", name="crew", unread=1, mentions=1, last_message_id=9,
                 last_message_at=2.0)  # fmt: skip
    orders = [("answer", "events"), ("events", "answer"), ("created", "answer", "mentioned")]
    for answer in (before, after):
        for n, order in enumerate(orders):
            store = ChatStore(me="alice", cache=Cache(tmp_path / f"{answer.unread}-{n}.sqlite3"))
            store.set_chats([before])
            store.refreshing_chats()
            for step in order:
                if step == "answer":
                    store.set_chats([answer])
                if step in ("events", "created"):
                    store.apply(MessageCreated(hi))
                if step in ("events", "mentioned"):
                    store.apply(Mentioned(chat_id=5, message=hi))
            assert (store.chats[5].unread, store.chats[5].mentions) == (1, 1), (answer, order)
