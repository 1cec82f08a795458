"""The cache's own full-text index: what ``/search`` finds offline (issue 12 item 6)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from messenger_client.cache import Cache
from messenger_protocol import Encrypted, Message, MessageDeleted, MessageEdited, parse_search


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


def test_the_last_word_is_a_prefix_in_the_cache_too() -> None:
    """Issue 12: offline the last word matches as a prefix as on the server (three letters
    on), the words before it and a quoted one whole; an encrypted message too, decrypted
    in memory; nothing typed is an FTS5 operator."""
    enc = Encrypted(
        algorithm="m.megolm.v1.aes-sha2", sender_key="k" * 43, device_id="D",
        session_id="s" * 43, ciphertext="opaque",
    )  # fmt: skip
    cache = Cache(":memory:")
    secret = msgspec.structs.replace(_m(3, ""), encrypted=enc)
    cache.save_messages([_m(1, "the noomnn release"), _m(2, "noon plans"), secret])
    assert _ids(cache, "noo") == [2, 1]
    assert _ids(cache, "noomx") == []
    assert _ids(cache, "noo plans") == [] and _ids(cache, "noon pla") == [2]
    assert _ids(cache, '"noo"') == [] and _ids(cache, "no") == [] and _ids(cache, "noo") == [2, 1]
    for query in ("noon OR zzz", "noon NOT zzz", "noo* zzz*", 'noon "zz*"', "noon^ zz"):
        assert _ids(cache, query) == [], query

    def reveal(m: Message) -> Message | None:
        return msgspec.structs.replace(m, text="noomnn secret") if m.id == 3 else None

    found = cache.search(parse_search("the noo"), reveal=reveal)
    assert [m.id for m in found] == [1]
    assert [m.id for m in cache.search(parse_search("noo"), reveal=reveal)] == [3, 2, 1]
    assert cache.search_encrypted(parse_search("noomx"), reveal) == []
    cache.close()


def test_a_cache_from_before_the_prefix_index_keeps_finding_its_messages(
    tmp_path: Path,
) -> None:
    """A cache whose search index was made without the prefix index gets it on opening and
    keeps its messages findable, by a prefix too, without fetching them again."""
    path = tmp_path / "before.sqlite3"
    old = Cache(path)
    old.save_messages([_m(1, "the noon release"), _m(2, "krill")])
    old.close()
    db = sqlite3.connect(path)
    db.executescript(
        "ALTER TABLE messages_fts RENAME TO fts;"
        "CREATE VIRTUAL TABLE messages_fts USING fts5(text, chat_id UNINDEXED,"
        " author UNINDEXED, created_at UNINDEXED, files UNINDEXED,"
        " tokenize = 'unicode61 remove_diacritics 2');"
        "INSERT INTO messages_fts (rowid, text, chat_id, author, created_at, files)"
        " SELECT rowid, text, chat_id, author, created_at, files FROM fts;"
        "DROP TABLE fts;"
    )
    db.close()
    reopened = Cache(path)
    assert _ids(reopened, "noo") == [1] and _ids(reopened, "krill") == [2]
    reopened.close()
    db = sqlite3.connect(path)
    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'messages_fts'").fetchone()
    assert "prefix" in sql
    db.close()


def test_encrypted_messages_are_kept_as_ciphertext_and_found_by_decrypting(
    tmp_path: Path,
) -> None:
    """Issue 14: an encrypted message is written without its plaintext (even when handed
    over decrypted) and is found only through ``reveal``, in memory; a cache made before
    that rule loses its messages, plaintext and all."""
    enc = Encrypted(
        algorithm="m.megolm.v1.aes-sha2", sender_key="k" * 43, device_id="D",
        session_id="s" * 43, ciphertext="opaque",
    )  # fmt: skip
    secret = msgspec.structs.replace(_m(7, "the walrus password"), encrypted=enc)
    path = tmp_path / "c.sqlite3"
    cache = Cache(path)
    cache.save_messages([secret, _m(8, "walrus in the clear")])
    assert _ids(cache, "walrus") == [8]
    kept = cache.message(7)
    assert kept is not None and kept.text == "" and kept.encrypted == enc
    plaintexts = {7: "the walrus password"}

    def reveal(m: Message) -> Message | None:
        text = plaintexts.get(m.id)
        return None if text is None else msgspec.structs.replace(m, text=text)

    found = cache.search(parse_search("walrus"), reveal=reveal)
    assert [(m.id, m.text) for m in found] == [
        (8, "walrus in the clear"),
        (7, "the walrus password"),
    ]
    assert [m.id for m in cache.search(parse_search('"walrus password"'), reveal=reveal)] == [7]
    assert cache.search_encrypted(parse_search("walrus from:bob"), reveal) == []
    cache.close()
    assert b"password" not in b"".join(p.read_bytes() for p in tmp_path.iterdir())

    old = tmp_path / "old.sqlite3"
    db = sqlite3.connect(old)
    db.executescript(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, chat_id INTEGER NOT NULL,"
        " thread_root INTEGER, body BLOB NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '2');"
    )
    db.execute("INSERT INTO messages VALUES (1, 1, NULL, ?)", (b"oldpassword" * 100,))
    db.commit()
    db.close()
    reopened = Cache(old)
    assert reopened.message_count(1) == 0
    reopened.close()
    assert b"oldpassword" not in b"".join(p.read_bytes() for p in tmp_path.glob("old*"))
