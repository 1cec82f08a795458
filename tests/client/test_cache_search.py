"""The cache's own full-text index: what ``/search`` finds offline (issue 12 item 6)."""

from __future__ import annotations

import msgspec

from messenger_client.cache import Cache
from messenger_protocol import Message, MessageDeleted, MessageEdited, parse_search


def _m(mid: int, text: str, chat_id: int = 1, author: str = "alice", at: float = 0.0) -> Message:
    return Message(id=mid, chat_id=chat_id, author=author, text=text, created_at=at)


def _ids(cache: Cache, query: str, chat_id: int | None = None) -> list[int]:
    return [m.id for m in cache.search(parse_search(query), chat_id=chat_id)]


def test_cached_messages_are_found_until_edited_or_deleted() -> None:
    """Issue 12 item 6: words, phrases and operators over the cached messages, newest
    first; an edit replaces the words, a deletion (tombstone or disappearing) drops them."""
    cache = Cache(":memory:")
    cache.save_messages(
        [
            _m(1, "Krill swarm ahead", at=86400.0 * 2),
            _m(2, "no krill here", chat_id=5, author="Bob", at=86400.0 * 4),
            _m(3, "the swarm of krill", at=86400.0 * 6),
        ]
    )
    assert _ids(cache, "krill") == [3, 2, 1]
    assert _ids(cache, '"krill swarm"') == [1]
    assert _ids(cache, "krill", chat_id=5) == [2]
    assert _ids(cache, "krill from:bob") == [2]
    assert _ids(cache, "krill after:1970-01-03 before:1970-01-07") == [2]
    assert _ids(cache, "from:alice") == [3, 1]
    assert _ids(cache, "krill has:file") == []
    cache.save_messages([_m(1, "plankton swarm ahead", at=86400.0 * 2)])  # saved again: edited
    assert _ids(cache, "krill") == [3, 2]
    edited = msgspec.structs.replace(_m(3, "the swarm of shrimp"), edited_at=9.0)
    assert cache.apply(MessageEdited(message=edited))
    assert _ids(cache, "krill") == [2]
    assert cache.apply(MessageDeleted(chat_id=5, message_id=2))  # disappeared: gone
    assert _ids(cache, "krill") == []
    tombstone = msgspec.structs.replace(_m(1, ""), deleted_at=10.0)
    assert cache.apply(MessageDeleted(chat_id=1, message_id=1, tombstone=tombstone))
    assert _ids(cache, "plankton") == [] and _ids(cache, "from:alice") == [3]
    cache.close()
