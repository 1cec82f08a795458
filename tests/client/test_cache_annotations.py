"""The local cache applies edits, deletions and reactions (issue 12 item 6)."""

from __future__ import annotations

from messenger_client.cache import Cache
from messenger_protocol import (
    Message,
    MessageDeleted,
    MessageEdited,
    Reaction,
    ReactionChanged,
)


def _message(message_id: int, text: str) -> Message:
    return Message(id=message_id, chat_id=1, author="alice", text=text, created_at=100.0)


def test_edits_deletions_and_reactions_reach_what_the_cache_shows() -> None:
    """Issue 12 item 6: an edit replaces the cached text, a reaction its counts, a
    deletion leaves the tombstone; a message that disappeared leaves the cache."""
    cache = Cache(":memory:")
    cache.save_messages([_message(1, "a stray j"), _message(2, "keep"), _message(3, "soon")])
    edited = Message(
        id=1, chat_id=1, author="alice", text="fixed", created_at=100.0, edited_at=110.0
    )
    assert cache.apply(MessageEdited(message=edited))
    thumbs = [Reaction(emoji="👍", count=1, users=["bob"])]
    assert cache.apply(
        ReactionChanged(
            chat_id=1, message_id=2, emoji="👍", login="bob", added=True, reactions=thumbs
        )
    )
    tombstone = Message(id=1, chat_id=1, author="alice", text="", created_at=100.0,
                        deleted_at=120.0)  # fmt: skip
    shown = {m.id: m for m in cache.messages(1)}
    assert (shown[1].text, shown[1].edited_at) == ("fixed", 110.0)
    assert shown[2].reactions == thumbs
    assert cache.apply(MessageDeleted(chat_id=1, message_id=1, tombstone=tombstone))
    assert cache.apply(MessageDeleted(chat_id=1, message_id=3))
    shown = {m.id: m for m in cache.messages(1)}
    assert sorted(shown) == [1, 2]
    assert (shown[1].text, shown[1].deleted_at) == ("", 120.0)
    # toggled back: no reaction left
    assert cache.apply(
        ReactionChanged(chat_id=1, message_id=2, emoji="👍", login="bob", added=False)
    )
    untouched = cache.message(2)
    assert untouched is not None and untouched.reactions == []
    # news of a message the device never saw does not put it in the cache
    assert not cache.apply(MessageEdited(message=_message(9, "unseen")))
    assert cache.message(9) is None
