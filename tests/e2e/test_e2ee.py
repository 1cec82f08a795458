"""End-to-end encrypted direct chats (issue 14) through the client library, both stores.

Two users with two devices each talk in a DM that is encrypted by default; every device
reads every message; the server's database and log hold none of the planted words; a
third user and an admin get ciphertext at most; a tampered ciphertext and a replayed one
are refused by the receiving client with a clear reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import os
import stat
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from messenger_client import Client, ConnectionState
from messenger_client.crypto import NO_KEY_TEXT, DecryptionError, DeviceCrypto
from messenger_client.events import StreamItem
from messenger_protocol import (
    ApiError,
    Chat,
    ChatUpdated,
    DeviceListChanged,
    EditMessage,
    FileComplaint,
    Message,
    MessageCreated,
    MessageEdited,
    QueryKeys,
    SendMessage,
    encode,
    limits,
)
from messenger_protocol import endpoints as ep
from tests.support import db, postgres
from tests.support.plain import StartPlain
from tests.support.server import ServerProcess
from tests.support.wire import SseReader

WORDS = ["aardvarkplaintext", "zeppelinplaintext", "quokkaplaintext", "narwhalplaintext"]
GROUP_WORD = "pangolinplaintext"


@contextlib.asynccontextmanager
async def _alice_and_bob_in_a_dm(
    server: ServerProcess, tmp_path: Path
) -> AsyncIterator[tuple[Client, Client, DeviceCrypto, DeviceCrypto, Chat]]:
    """alice and bob registered, each with a device's keys, and their direct chat."""
    alice, bob = Client(server.url), Client(server.url)
    try:
        await alice.register("alice", "password1")
        await bob.register("bob", "password1")
        alice_c = await DeviceCrypto.open(alice, tmp_path / "alice")
        bob_c = await DeviceCrypto.open(bob, tmp_path / "bob")
        yield alice, bob, alice_c, bob_c, await alice.open_direct("bob")
    finally:
        await alice.close()
        await bob.close()


class _Stream:
    """A client's event stream read in a task, as a console or the TUI reads it (what
    lets its :class:`DeviceCrypto` keep members and device keys in memory)."""

    def __init__(self, client: Client) -> None:
        self.items: asyncio.Queue[StreamItem] = asyncio.Queue()
        self._task = asyncio.create_task(self._read(client))

    async def _read(self, client: Client) -> None:
        async for item in client.events():
            self.items.put_nowait(item)

    async def until(self, wanted: Callable[[StreamItem], bool]) -> StreamItem:
        """The next item ``wanted`` accepts (the ones before it passed over)."""
        while not wanted(item := await asyncio.wait_for(self.items.get(), 10)):
            pass
        return item

    async def connected(self) -> None:
        await self.until(lambda i: isinstance(i, ConnectionState) and i.state == "connected")

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ApiError):  # ended by a logout
            await self._task


def _device_list_of(login: str) -> Callable[[StreamItem], bool]:
    return lambda item: isinstance(item, DeviceListChanged) and item.login == login


def _stored_bytes(server: ServerProcess) -> bytes:
    """Everything the server keeps: its data dir's files, or (PostgreSQL) every row of
    every table of its schema as text; and its log."""
    chunks = [server.log_path.read_bytes()]
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            chunks.append(path.read_bytes())
    if server.store_url:
        tables = postgres.query(
            server.store_url,
            "SELECT table_name FROM information_schema.tables WHERE table_schema ="
            " current_schema() AND table_type = 'BASE TABLE'",
        )
        for (table,) in tables:
            rows = postgres.query(server.store_url, f"SELECT t::text FROM {table} t")
            chunks.extend(str(r[0]).encode() for r in rows)
    return b"\n".join(chunks)


def _tampered(message: Message) -> SendMessage:
    """The same encrypted body with one byte of the ciphertext changed."""
    assert message.encrypted is not None
    raw = bytearray(base64.b64decode(message.encrypted.ciphertext + "=="))
    raw[len(raw) // 2] ^= 0x01
    text = base64.b64encode(bytes(raw)).decode().rstrip("=")
    enc = msgspec.structs.replace(message.encrypted, ciphertext=text)
    return SendMessage(text="", client_id="tampered", encrypted=enc)


@pytest.fixture
def admin_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(args=["--admins", "root"])


async def test_two_users_two_devices_each_read_an_encrypted_dm_and_group(
    admin_server: ServerProcess, tmp_path: Path
) -> None:
    """Issue 14: alice and bob, two devices each, write in their DM and in an encrypted
    group; every device reads every message; the server keeps none of the words."""
    server = admin_server
    clients: list[Client] = []

    async def device(login: str, name: str, *, new: bool = False) -> tuple[Client, DeviceCrypto]:
        client = Client(server.url, device=name)
        clients.append(client)
        if new:
            await client.register(login, "password1")
        else:
            await client.login(login, "password1")
        return client, await DeviceCrypto.open(client, tmp_path / f"{login}-{name}")

    try:
        alice_phone, alice_phone_c = await device("alice", "phone", new=True)
        alice_laptop, alice_laptop_c = await device("alice", "laptop")
        bob_phone, bob_phone_c = await device("bob", "phone", new=True)
        bob_laptop, bob_laptop_c = await device("bob", "laptop")
        carol = Client(server.url, device="x")
        root = Client(server.url, device="x")
        clients += [carol, root]
        await carol.register("carol", "password1")
        await root.register("root", "password1")
        # the pickle key is a private file; the state holds no key in the clear
        key_file = tmp_path / "alice-phone" / "pickle.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        state = (tmp_path / "alice-phone" / "state.json").read_bytes()
        assert alice_phone_c.curve25519.encode() not in state

        dm = await alice_phone.open_direct("bob")
        assert await alice_phone_c.can_encrypt(dm)
        sent = [
            await alice_phone_c.send(dm, f"hello {WORDS[0]}"),
            await bob_phone_c.send(dm, f"hi back {WORDS[1]}"),
            await alice_laptop_c.send(dm, f"from my laptop {WORDS[2]}"),
            await bob_laptop_c.send(dm, f"and mine {WORDS[3]}"),
        ]
        assert all(m.text == "" and m.encrypted is not None for m in sent)
        # a plain message in the general chat is found by the same search: the grep works
        await carol.send(1, "controlwordinplaintext")

        expected = [
            f"hello {WORDS[0]}",
            f"hi back {WORDS[1]}",
            f"from my laptop {WORDS[2]}",
            f"and mine {WORDS[3]}",
        ]
        for client, crypto in [
            (alice_phone, alice_phone_c),
            (alice_laptop, alice_laptop_c),
            (bob_phone, bob_phone_c),
            (bob_laptop, bob_laptop_c),
        ]:
            page = await client.history(dm.id)
            assert all(m.text == "" for m in page.messages)
            texts = [(await crypto.decrypt(m)).text for m in page.messages]
            assert texts == expected, crypto.device_id

        # a group message too: every device of both reads it
        group = await alice_phone.create_chat("pair", encrypted=True)
        await alice_phone.invite(group.id, "bob")
        in_group = [
            await bob_laptop_c.send(group, f"to the group {GROUP_WORD}"),
            await alice_phone_c.send(group, "and back"),
        ]
        for crypto in (alice_phone_c, alice_laptop_c, bob_phone_c, bob_laptop_c):
            texts = [(await crypto.decrypt(m)).text for m in in_group]
            assert texts == [f"to the group {GROUP_WORD}", "and back"], crypto.device_id

        stored = _stored_bytes(server)
        assert b"controlwordinplaintext" in stored
        assert [w for w in [*WORDS, GROUP_WORD] if w.encode() in stored] == []

        # a third user cannot read the chat, and ciphertext alone opens nothing
        with pytest.raises(ApiError):
            await carol.history(dm.id)
        carol_c = await DeviceCrypto.open(carol, tmp_path / "carol")
        with pytest.raises(DecryptionError, match="can't decrypt") as no_key:
            await carol_c.decrypt(sent[0])
        assert no_key.value.kind == "no_key"
        # an admin handling a complaint about the message sees no plaintext either
        await bob_phone.complain("alice", "spam", message_id=sent[0].id)
        admin_view = encode(await root.admin_complaints()) + encode(await root.admin_users())
        assert [w for w in WORDS if w.encode() in admin_view] == []
        # ... unless the reporter includes the text (its word: the server cannot check it)
        read = (await bob_phone_c.decrypt(sent[0])).text
        await bob_phone.complain("alice", "this", message_id=sent[0].id, quoted=read)
        queue = (await root.admin_complaints()).complaints
        assert [(c.reason, c.quoted) for c in queue] == [("spam", ""), ("this", expected[0])]
        for body in (
            FileComplaint(login="alice", quoted="no message named"),
            FileComplaint(login="alice", message_id=sent[0].id,
                          quoted="x" * (limits.MAX_MESSAGE_TEXT + 1)),
        ):  # fmt: skip
            with pytest.raises(ApiError) as bad_quote:
                await bob_phone.call(ep.COMPLAIN, body)
            assert bad_quote.value.code == "invalid"
        quote = FileComplaint(login="alice", message_id=sent[0].id,
                              quoted="x" * limits.MAX_MESSAGE_TEXT)  # fmt: skip
        assert (await bob_phone.call(ep.COMPLAIN, quote)).complaint.quoted == quote.quoted

        # a tampered ciphertext is refused with a clear reason
        bad = await alice_phone.call(ep.SEND, _tampered(sent[0]), chat_id=dm.id)
        with pytest.raises(DecryptionError, match="tampered with") as tampered:
            await bob_phone_c.decrypt(bad)
        assert tampered.value.kind == "tampered"
        # the same ciphertext posted again is a replay: shown once, the copy refused
        assert sent[0].encrypted is not None
        again = SendMessage(text="", client_id="replay", encrypted=sent[0].encrypted)
        replay = await alice_phone.call(ep.SEND, again, chat_id=dm.id)
        shown: list[str] = []
        for m in (await bob_laptop.history(dm.id)).messages:
            try:
                shown.append((await bob_laptop_c.decrypt(m)).text)
            except DecryptionError as exc:
                if m.id == replay.id:
                    assert exc.kind == "replayed" and f"#{sent[0].id}" in str(exc)
        assert shown == expected
        # encrypted messages cannot be edited into plaintext
        with pytest.raises(ApiError, match="encrypted"):
            await alice_phone.edit(sent[0].id, "now in the clear")
        # an edit: the admin's view of the edit history is ciphertext, which the admin's
        # device cannot read; the author's other device reads every version
        await alice_phone_c.edit(sent[0].id, f"{expected[0]} edited")
        assert [w for w in WORDS if w.encode() in encode(await root.edits(sent[0].id))] == []
        root_c = await DeviceCrypto.open(root, tmp_path / "root")
        assert [v.text for v in (await root_c.edits(sent[0].id)).versions] == [NO_KEY_TEXT] * 2
        versions = (await alice_laptop_c.edits(sent[0].id)).versions
        assert [v.text for v in versions] == [expected[0], f"{expected[0]} edited"]

        # once encrypted, a DM stays encrypted on this device
        assert await alice_phone_c.can_encrypt(dm)
        # a device opened again from its data dir is the same device and still reads
        reopened = await DeviceCrypto.open(bob_phone, tmp_path / "bob-phone")
        assert reopened.device_id == bob_phone_c.device_id
        assert (await reopened.decrypt(sent[2])).text == expected[2]
        # ... and still knows which copy came first: the replay stays refused
        laptop_again = DeviceCrypto.load(bob_laptop, tmp_path / "bob-laptop")
        with pytest.raises(DecryptionError, match=f"replays message #{sent[0].id}"):
            laptop_again.decrypt_now(replay)
    finally:
        for c in clients:
            await c.close()


async def test_plain_consoles_encrypt_a_dm_and_show_a_lock(
    server: ServerProcess, plain: StartPlain
) -> None:
    """Two plain consoles: a private message is encrypted by default (both have device
    keys from their first login), printed with a lock on both sides, its author's
    /edits shows its earlier versions decrypted, and the server keeps no word of it."""
    alice, bob = await plain(), await plain()
    alice.send("/auth alice password1")
    await alice.expect("logged in as alice")
    bob.send("/auth bob password1")
    await bob.expect("logged in as bob")
    alice.send(f"/private bob secret {WORDS[0]}")
    mine = await alice.expect(WORDS[0])
    assert mine.startswith("🔒 "), mine
    theirs = await bob.expect(WORDS[0])
    assert theirs.startswith("🔒 ") and "alice:" in theirs, theirs
    bob.send(f"/private alice answer {WORDS[1]}")
    assert (await alice.expect(WORDS[1])).startswith("🔒 ")
    root_id = mine.split("#", 1)[1].split()[0]  # "🔒 [#1 @bob 12:00] alice: …"
    bob.send(f"/comment {root_id} thread {WORDS[2]}")  # a comment, encrypted too
    assert (await bob.expect(WORDS[2])).startswith("🔒 ")
    theirs = await alice.expect(WORDS[2])
    assert theirs.startswith("🔒 ") and f"↳#{root_id}]" in theirs, theirs
    # the edit history of an encrypted message: its earlier ciphertext decrypted here
    alice.send(f"/edit {root_id} edited {WORDS[3]}")
    await alice.expect(WORDS[3])
    alice.send(f"/edits {root_id}")
    await alice.expect(f"edits of #{root_id} in ")
    assert f"🔒 secret {WORDS[0]}" in await alice.expect("1  ")
    assert f"🔒 edited {WORDS[3]}" in await alice.expect("2 (now)  ")
    stored = _stored_bytes(server)
    assert [w for w in WORDS if w.encode() in stored] == []
    # a report carries the message's text only when its reporter includes it
    bob.send(f"/report {root_id} rude")
    assert "text goes with it" not in await bob.expect("complaint about alice filed")
    bob.send(f"/report {root_id} --with-text rude again")
    assert "the message's text goes with it" in await bob.expect("complaint about alice filed")
    quoted = db.rows(server, "SELECT reason, quoted FROM complaints ORDER BY id")
    assert quoted == [("rude", ""), ("rude again", f"edited {WORDS[3]}")]


async def test_an_encrypted_group_shares_keys_to_members_and_rotates(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Issue 14: a group its owner creates encrypted refuses messages in the clear; every
    member device decrypts; a member who left gets no key to what follows (a new Megolm
    session); the session is also replaced after ``rotate_after_messages``. alice's event
    stream runs (her device keeps the members in memory): a member who joins or leaves
    reaches her as a ``chat`` event, and the very next message follows it."""
    users = {name: Client(server.url) for name in ("alice", "bob", "carol")}
    stream: _Stream | None = None
    try:
        devices = {}
        for name, client in users.items():
            await client.register(name, "password1")
            devices[name] = await DeviceCrypto.open(client, tmp_path / name)
        alice, bob = users["alice"], users["bob"]
        stream = _Stream(alice)
        await stream.connected()

        def members(n: int) -> Callable[[StreamItem], bool]:
            return lambda i: isinstance(i, ChatUpdated) and i.chat.members == n

        group = await alice.create_chat("vault", encrypted=True)
        assert group.encrypted
        plain_group = await alice.create_chat("lobby")
        assert not plain_group.encrypted and not await devices["alice"].can_encrypt(plain_group)
        for login in ("bob", "carol"):
            await alice.invite(group.id, login)
        await stream.until(members(3))
        with pytest.raises(ApiError, match="end-to-end encrypted") as refused:
            await bob.send(group.id, "in the clear")
        assert refused.value.code == "invalid"

        first = await devices["alice"].send(group, f"to all {WORDS[0]}")
        assert first.encrypted is not None and first.text == ""
        for name in ("bob", "carol"):
            assert (await devices[name].decrypt(first)).text == f"to all {WORDS[0]}"
        reply = await devices["bob"].send(group, f"bob here {WORDS[1]}")
        assert (await devices["carol"].decrypt(reply)).text == f"bob here {WORDS[1]}"

        await alice.remove_member(group.id, "carol")
        await stream.until(members(2))
        after = await devices["alice"].send(group, f"carol is gone {WORDS[2]}")
        assert after.encrypted is not None
        assert after.encrypted.session_id != first.encrypted.session_id, "a new session"
        assert (await devices["bob"].decrypt(after)).text == f"carol is gone {WORDS[2]}"
        with pytest.raises(DecryptionError) as no_key:
            await devices["carol"].decrypt(after)
        assert no_key.value.kind == "no_key"

        devices["alice"].rotate_after_messages = 2
        second = await devices["alice"].send(group, "two")
        assert second.encrypted is not None
        assert second.encrypted.session_id == after.encrypted.session_id
        third = await devices["alice"].send(group, "three")
        assert third.encrypted is not None
        assert third.encrypted.session_id != after.encrypted.session_id, "rotated after 2"
        assert (await devices["bob"].decrypt(third)).text == "three"
        await alice.invite(group.id, "carol")
        await stream.until(members(3))
        back = await devices["alice"].send(group, "carol is back")
        assert (await devices["carol"].decrypt(back)).text == "carol is back"

        stored = _stored_bytes(server)
        assert [w for w in WORDS[:3] if w.encode() in stored] == []
    finally:
        if stream is not None:
            await stream.close()
        for client in users.values():
            await client.close()


async def test_an_encrypted_group_of_more_users_than_one_key_query_takes_sends(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Issue 14: a key query names at most 100 users; an encrypted group of 101 members
    (99 of them put in by the database, with no device) still sends: the sender asks
    for their devices in parts. It was refused ``invalid`` (101 logins in one query)."""
    async with _alice_and_bob_in_a_dm(server, tmp_path) as (alice, _, alice_c, bob_c, _dm):
        group = await alice.create_chat("crowd", encrypted=True)
        await alice.invite(group.id, "bob")
        extra = limits.MAX_KEY_QUERY_USERS - 1
        db.execute(server, "INSERT INTO users (login, password_hash, created_at) WITH RECURSIVE"
                   " n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?)"
                   " SELECT 'crowd' || x, 'none', 0 FROM n", (extra,))  # fmt: skip
        db.execute(server, "INSERT INTO members (chat_id, user_id, joined_at) SELECT ?, id, 0"
                   " FROM users WHERE login LIKE ?", (group.id, "crowd%"))  # fmt: skip
        assert len((await alice.members(group.id)).members) == limits.MAX_KEY_QUERY_USERS + 1
        sent = await alice_c.send(group, "to the crowd")
        assert (await bob_c.decrypt(sent)).text == "to the crowd"


async def test_encrypted_edits_quotes_files_and_mentions_keep_the_text_from_the_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Issue 14: an edit of an encrypted message is ciphertext (and cannot be moved to
    another message), the server keeps the ciphertexts it replaced and the author's
    device decrypts that history; a reply's quote travels inside its ciphertext; a thread comment is
    encrypted under the chat's session (and cannot be moved out of its thread); a file is encrypted
    with its own key, round-trips byte-identical, and its stored blob is not the file;
    the 5 MiB limit applies to the ciphertext; mentions are the sender's metadata."""
    async with _alice_and_bob_in_a_dm(server, tmp_path) as (alice, bob, alice_c, bob_c, dm):
        first = await alice_c.send(dm, f"original {WORDS[0]}")
        reply = await bob_c.send(dm, "answer", reply_to=first.id)
        assert reply.reply_to is not None and reply.reply_to.text == "", "the server's quote"
        shown = await alice_c.reveal(reply)
        assert shown is not None and shown.reply_to is not None
        assert shown.reply_to.text == f"original {WORDS[0]}"

        edited = await alice_c.edit(first.id, f"edited {WORDS[1]}")
        assert edited.text == "" and edited.encrypted is not None and edited.edited_at
        shown = await bob_c.reveal(await bob.message(first.id))
        assert shown is not None and shown.text == f"edited {WORDS[1]}"
        again = await alice_c.edit(first.id, "edited twice")
        # a device of bob's that was offline since before the message resumes: it is
        # replayed with the ciphertext it has now, the ones edited away reach it nowhere
        assert bob.session is not None and bob.token is not None
        async with SseReader(server.url, bob.token, bob.session.last_event_id) as resumed:
            replay = await resumed.until(
                lambda e: isinstance(e, MessageEdited) and e.message.encrypted == again.encrypted
            )
        [created] = [
            e for _, e in replay if isinstance(e, MessageCreated) and e.message.id == first.id
        ]
        assert isinstance(created, MessageCreated)
        assert created.message.encrypted == again.encrypted
        replayed = b"".join(encode(e) for _, e in replay)
        assert first.encrypted is not None and edited.encrypted is not None
        assert first.encrypted.ciphertext.encode() not in replayed
        assert edited.encrypted.ciphertext.encode() not in replayed
        # the server keeps each ciphertext an edit replaced; the author's device reads them
        stored_history = await alice.edits(first.id)
        assert [v.text for v in stored_history.versions] == ["", "", ""]
        assert [v.encrypted for v in stored_history.versions][1:] == [
            edited.encrypted,
            again.encrypted,
        ]
        assert first.encrypted is not None
        assert stored_history.versions[0].encrypted == first.encrypted
        history = await alice_c.edits(first.id)
        assert [v.text for v in history.versions] == [
            f"original {WORDS[0]}",
            f"edited {WORDS[1]}",
            "edited twice",
        ]
        assert [v.at for v in history.versions] == [v.at for v in stored_history.versions]
        with pytest.raises(ApiError, match="only its author and admins"):
            await bob_c.edits(first.id)
        with pytest.raises(ApiError, match="ciphertext only") as plain_edit:
            await alice.edit(first.id, "in the clear")
        assert plain_edit.value.code == "conflict"
        # a comment in the thread is encrypted like a message, and stays in its thread
        comment = await bob_c.comment(first.id, f"in the thread {WORDS[3]}")
        assert comment.thread_root == first.id and comment.text == ""
        assert comment.encrypted is not None and reply.encrypted is not None
        assert comment.encrypted.session_id == reply.encrypted.session_id, "the chat's session"
        out_of_it = SendMessage(text="", client_id="moved", encrypted=comment.encrypted)
        moved_out = await bob.call(ep.SEND, out_of_it, chat_id=dm.id)
        with pytest.raises(DecryptionError, match="moved into or out of a thread"):
            await alice_c.decrypt(moved_out)
        (in_thread,) = (await alice.thread(first.id)).comments
        assert (await alice_c.decrypt(in_thread)).text == f"in the thread {WORDS[3]}"
        edited_comment = await bob_c.edit(comment.id, "in the thread, edited")
        assert (await alice_c.decrypt(edited_comment)).text == "in the thread, edited"

        # the ciphertext of that edit put on another message is refused by the reader
        other = await alice_c.send(dm, "another")
        moved = EditMessage(text="", encrypted=edited.encrypted)
        await alice.call(ep.EDIT_MESSAGE, moved, message_id=other.id)
        with pytest.raises(DecryptionError, match=r"replays message|carries an edit of"):
            await bob_c.decrypt(await bob.message(other.id))

        data = os.urandom(100_000) + WORDS[2].encode() * 10
        path = tmp_path / "notes.bin"
        path.write_bytes(data)
        sent: list[tuple[int, int | None]] = []
        with_file = await alice_c.send(
            dm, "a file", files=[path], progress=lambda done, total: sent.append((done, total))
        )
        assert len(with_file.attachments) == 1
        stored_as = with_file.attachments[0]
        assert stored_as.name == "encrypted" and stored_as.size > len(data)
        assert sent[0] == (0, stored_as.size) and sent[-1] == (stored_as.size, stored_as.size)
        shown = await bob_c.reveal(await bob.message(with_file.id))
        assert shown is not None and shown.attachments[0].name == "notes.bin"
        got: list[tuple[int, int | None]] = []
        file = bob_c.known_files[stored_as.id]
        saved = await bob_c.download_file(
            file, tmp_path / "got.bin", lambda d, t: got.append((d, t))
        )
        assert saved.read_bytes() == data, "byte-identical"
        assert got[-1] == (stored_as.size, stored_as.size), "the download's progress"
        raw = await bob.download(stored_as.id, tmp_path / "raw.bin")
        assert raw.read_bytes() != data and WORDS[2].encode() not in raw.read_bytes()

        # the limit is the ciphertext's: a file 80 bytes under it no longer fits, and
        # the client says so before uploading anything
        big = tmp_path / "big.bin"
        big.write_bytes(b"\0" * (limits.MAX_FILE_BYTES - 80))
        with pytest.raises(ApiError) as too_big:
            await alice_c.send(dm, "", files=[big])
        assert too_big.value.code == "too_large"
        assert too_big.value.message == "file is 16 bytes over the limit of 5.0 MiB once encrypted"

        named = await alice_c.send(dm, "look, bob", mentions=["bob"])
        found = await bob.mentions()
        assert [m.message.id for m in found.mentions] == [named.id]
        assert found.mentions[0].message.text == ""
        over = SendMessage(text="", encrypted=named.encrypted, mentions=["bob"] * 51)
        with pytest.raises(ApiError) as too_many:
            await alice.call(ep.SEND, over, chat_id=dm.id)
        assert too_many.value.code == "invalid"

        stored = _stored_bytes(server)
        assert [w for w in WORDS if w.encode() in stored] == []


async def test_a_logged_out_device_is_no_longer_encrypted_to(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Issue 14: logging out takes the device's keys off the server (DELETE
    /keys/device), so the next message goes under a new Megolm session it is not given;
    logging in again from the same data dir is the same device, encrypted to again.

    alice's event stream runs, so her device keeps bob's devices in memory between
    sends: each change of bob's devices (one logged out, back, a new one) reaches her as
    a ``device_list`` event, and the very next message follows it."""
    alice = Client(server.url)
    phone, laptop = Client(server.url, device="phone"), Client(server.url, device="laptop")
    tablet = Client(server.url, device="tablet")
    stream: _Stream | None = None
    try:
        await alice.register("alice", "password1")
        stream = _Stream(alice)
        await phone.register("bob", "password1")
        await laptop.login("bob", "password1")
        alice_c = await DeviceCrypto.open(alice, tmp_path / "alice")
        phone_c = await DeviceCrypto.open(phone, tmp_path / "phone")
        dm = await alice.open_direct("bob")
        await stream.connected()
        laptop_c = await DeviceCrypto.open(laptop, tmp_path / "laptop")
        await stream.until(_device_list_of("bob"))  # they share a direct chat
        first = await alice_c.send(dm, "before")
        assert (await laptop_c.decrypt(first)).text == "before"

        await laptop_c.unpublish()
        await laptop.logout()
        laptop_c.close()
        await stream.until(_device_list_of("bob"))
        shown = await alice_c.devices(["bob"], cached=True)
        assert [d.device_id for d in shown] == [phone_c.device_id]
        after = await alice_c.send(dm, f"after {WORDS[0]}")
        assert after.encrypted is not None and first.encrypted is not None
        assert after.encrypted.session_id != first.encrypted.session_id, "a new session"
        assert (await phone_c.decrypt(after)).text == f"after {WORDS[0]}"

        await laptop.login("bob", "password1")
        back = await DeviceCrypto.open(laptop, tmp_path / "laptop")
        assert back.device_id == laptop_c.device_id
        # the client let go of the closed keys: one DeviceCrypto hears its events, not
        # one more per login (a stale one could write its old state over the new one's)
        closed = weakref.ref(laptop_c)
        del laptop_c
        gc.collect()
        assert closed() is None, "the logged-out device's keys are still held"
        with pytest.raises(DecryptionError) as no_key:
            await back.decrypt(after)
        assert no_key.value.kind == "no_key"
        await stream.until(_device_list_of("bob"))
        again = await alice_c.send(dm, "again")
        assert (await back.decrypt(again)).text == "again"

        # a device bob adds while alice keeps his devices in memory reads the next one
        await tablet.login("bob", "password1")
        tablet_c = await DeviceCrypto.open(tablet, tmp_path / "tablet")
        await stream.until(_device_list_of("bob"))
        news = await alice_c.send(dm, f"news {WORDS[1]}")
        assert news.encrypted is not None and again.encrypted is not None
        assert news.encrypted.session_id == again.encrypted.session_id, "nobody left"
        for crypto in (tablet_c, back, phone_c):
            assert (await crypto.decrypt(news)).text == f"news {WORDS[1]}"
        # more one-time keys (a top-up) change no device list: no event, nothing forgotten
        await tablet_c.publish()
        await alice_c.send(dm, "no change")
        # without a connected stream nothing is kept: every send asks the server again
        await stream.close()
        assert not alice.streaming
        await tablet_c.unpublish()
        alone = await alice_c.send(dm, "tablet gone")
        assert (
            alone.encrypted is not None and alone.encrypted.session_id != news.encrypted.session_id
        )
        # a session with no device keys has nothing to remove
        await alice.logout()
        await alice.login("alice", "password1")
        assert await alice.call(ep.DELETE_DEVICE_KEYS) is not None
    finally:
        if stream is not None:
            await stream.close()
        for c in (alice, phone, laptop, tablet):
            await c.close()


async def test_the_plain_console_takes_its_keys_off_the_server_at_logout(
    server: ServerProcess, plain: StartPlain
) -> None:
    """/logout in the plain console removes the device from the key directory."""
    bob = await plain()
    bob.send("/auth bob password1")
    await bob.expect("logged in as bob")
    watcher = Client(server.url)
    try:
        await watcher.register("carol", "password1")
        query = QueryKeys(logins=["bob"])
        assert len((await watcher.call(ep.QUERY_KEYS, query)).devices) == 1
        bob.send("/logout")
        await bob.expect("logged out")
        assert (await watcher.call(ep.QUERY_KEYS, query)).devices == []
    finally:
        await watcher.close()


async def test_a_device_registered_between_key_query_and_send_reads_that_message_or_edit(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: an encrypted send names the devices it was encrypted for; a device of
    bob registered after alice asked the key directory and before her message reached
    the server makes the server refuse it (409 ``devices_changed``, listing the devices
    now); alice's library asks again, shares the key with the new device and sends
    again under the same client_id: one message is stored and the new device reads it.
    Without the check the new device never got that message's key. An edit likewise."""
    async with _alice_and_bob_in_a_dm(server, tmp_path) as (alice, bob, alice_c, bob_c, dm):
        await alice_c.send(dm, "before")
        tablet, watch = Client(server.url, device="tablet"), Client(server.url, device="watch")
        try:
            await tablet.login("bob", "password1")
            await watch.login("bob", "password1")
            registered: list[DeviceCrypto] = []
            refused: list[ApiError] = []
            sends: list[SendMessage] = []
            real_call = alice.call

            async def call(endpoint: Any, *args: Any, **params: Any) -> Any:
                if endpoint is ep.SEND:
                    sends.append(args[0])
                    if not registered:  # alice has asked for bob's devices: one comes now
                        registered.append(await DeviceCrypto.open(tablet, tmp_path / "tablet"))
                if endpoint is ep.EDIT_MESSAGE and len(registered) == 1:  # ... and for an edit
                    registered.append(await DeviceCrypto.open(watch, tmp_path / "watch"))
                try:
                    return await real_call(endpoint, *args, **params)
                except ApiError as exc:
                    refused.append(exc)
                    raise

            monkeypatch.setattr(alice, "call", call)
            sent = await alice_c.send(dm, f"just then {WORDS[0]}")
            monkeypatch.undo()

            (tablet_c,) = registered
            assert [e.code for e in refused] == ["devices_changed"]
            listed = {(d.login, d.device_id) for d in refused[0].devices or ()}
            assert ("bob", tablet_c.device_id) in listed and len(listed) == 3
            assert len(sends) == 2 and sends[0].client_id == sends[1].client_id
            page = await bob.history(dm.id)
            assert [m.id for m in page.messages][-1] == sent.id and len(page.messages) == 2
            assert (await tablet_c.decrypt(sent)).text == f"just then {WORDS[0]}"
            assert (await bob_c.decrypt(sent)).text == f"just then {WORDS[0]}"

            monkeypatch.setattr(alice, "call", call)
            await alice_c.edit(sent.id, f"edited then {WORDS[1]}")
            monkeypatch.undo()
            (_, watch_c) = registered
            assert [e.code for e in refused] == ["devices_changed"] * 2
            edited = await watch.message(sent.id)
            for crypto in (watch_c, tablet_c, bob_c):
                assert (await crypto.decrypt(edited)).text == f"edited then {WORDS[1]}"

            # a send naming devices that are not the members' is refused, typed; one
            # naming none is not checked (a client without the check, as before)
            stale = msgspec.structs.replace(sends[0], client_id="stale")
            with pytest.raises(ApiError) as changed:
                await alice.call(ep.SEND, stale, chat_id=dm.id)
            assert changed.value.code == "devices_changed" and changed.value.status == 409
            unnamed = msgspec.structs.replace(sends[1], client_id="unnamed", devices=None)
            assert (await alice.call(ep.SEND, unnamed, chat_id=dm.id)).encrypted is not None
        finally:
            await tablet.close()
            await watch.close()


async def test_concurrent_sends_and_fetches_keep_the_sessions_whole(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Issue 14: the device's state has its own lock, so several tasks sending at once
    (the console and the TUI do) never encrypt two messages under one Megolm index: the
    reader shows every one, none refused as a replay."""
    async with _alice_and_bob_in_a_dm(server, tmp_path) as (_, _, alice_c, bob_c, dm):
        texts = [f"at once {i}" for i in range(8)]
        sent = await asyncio.gather(
            *(alice_c.send(dm, t) for t in texts), bob_c.receive(), alice_c.receive()
        )
        messages = [m for m in sent if isinstance(m, Message)]
        assert all(m.encrypted is not None for m in messages)
        shown = sorted([(await bob_c.decrypt(m)).text for m in messages])
        assert shown == sorted(texts)
        back = await asyncio.gather(*(bob_c.send(dm, f"back {i}") for i in range(4)))
        assert sorted([(await alice_c.decrypt(m)).text for m in back]) == [
            f"back {i}" for i in range(4)
        ]


async def test_the_console_cache_keeps_ciphertext_and_search_decrypts_it(
    server: ServerProcess, plain: StartPlain, tmp_path: Path
) -> None:
    """Issue 14: the plain console's local cache holds an encrypted message as ciphertext
    only (no planted word anywhere in its data dir), and /search still finds it: the
    cached ciphertext is decrypted in memory (the server has no text to search)."""
    alice, bob = await plain(), await plain()
    alice.send("/auth alice password1")
    await alice.expect("logged in as alice")
    bob.send("/auth bob password1")
    await bob.expect("logged in as bob")
    alice.send(f"/private bob the code word is {WORDS[2]}")
    await bob.expect(WORDS[2])
    bob.send("/private alice a plain looking answer")
    await alice.expect("plain looking answer")
    bob.send(f"/search {WORDS[2]}")
    await bob.expect(f"found for {WORDS[2]!r}")
    hit = await bob.expect(WORDS[2])
    assert "alice" in hit and "@alice" in hit, hit
    bob.send('/search "code word" in:@alice from:alice')
    await bob.expect("found for")
    assert WORDS[2] in await bob.expect("code")
    # bob's console is the second one started: everything it keeps on disk
    home = tmp_path / "client1"
    kept = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert any(p.name.endswith(".sqlite3") for p in home.rglob("*")), "the cache is there"
    assert WORDS[2].encode() not in kept
    assert b"code word" not in kept


async def test_encryption_of_a_direct_chat_is_turned_off_and_on_in_the_console(
    server: ServerProcess, plain: StartPlain
) -> None:
    """Issue 14: /encryption @bob off sends in the clear from this device (no lock, the
    server has the text), on encrypts again; a group's encryption is not the console's
    to change."""
    alice, bob = await plain(), await plain()
    alice.send("/auth alice password1")
    await alice.expect("logged in as alice")
    bob.send("/auth bob password1")
    await bob.expect("logged in as bob")
    alice.send("/encryption @bob")
    assert "is end-to-end encrypted" in await alice.expect("what you send in @bob")
    alice.send("/encryption @bob off")
    await alice.expect("goes in the clear")
    alice.send("/private bob openly controlwordinplaintext")
    assert not (await bob.expect("controlwordinplaintext")).startswith("🔒")
    assert b"controlwordinplaintext" in _stored_bytes(server)
    alice.send("/encryption @bob on")
    await alice.expect("is end-to-end encrypted")
    alice.send(f"/private bob again {WORDS[3]}")
    assert (await bob.expect(WORDS[3])).startswith("🔒 ")
    assert WORDS[3].encode() not in _stored_bytes(server)
    alice.send("/encryption general on")
    await alice.expect("is a group: only one made with /create --encrypted")
