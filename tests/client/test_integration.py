"""The client library and the plain console client against the real server process."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from messenger_client import Client, ConnectionState, EventStream
from messenger_protocol import GENERAL_CHAT_ID, ApiError, ErrorCode, Message, MessageCreated
from tests.support.plain import StartPlain
from tests.support.server import ServerProcess

# Runs once the server's routing layer exists (it is being written alongside).

TIMEOUT = 15.0
PASSWORD = "password1"


# --- the library --------------------------------------------------------------


async def next_message(stream: EventStream) -> Message:
    """The message of the next ``message`` event (other items skipped)."""
    async with asyncio.timeout(TIMEOUT):
        async for item in stream:
            if isinstance(item, MessageCreated):
                return item.message
    raise AssertionError("stream ended")


async def wait_connected(stream: EventStream) -> None:
    async with asyncio.timeout(TIMEOUT):
        async for item in stream:
            if isinstance(item, ConnectionState) and item.state == "connected":
                return


async def test_message_reaches_the_other_user_and_the_sender(
    clients: Callable[[], Client],
) -> None:
    alice, bob = clients(), clients()
    await alice.register("alice", PASSWORD)
    bob_session = await bob.register("bob", PASSWORD)
    bob_stream = bob.events(bob_session.last_event_id)
    alice_stream = alice.events(alice.session.last_event_id if alice.session else None)
    try:
        await wait_connected(bob_stream)
        await wait_connected(alice_stream)
        sent = await alice.send(GENERAL_CHAT_ID, "hello bob")
        got = await next_message(bob_stream)
        own = await next_message(alice_stream)
    finally:
        await bob_stream.aclose()
        await alice_stream.aclose()
    assert got.id == own.id == sent.id
    assert got.text == "hello bob" and got.author == "alice"
    assert bob_stream.last_event_id is not None


async def test_send_with_the_same_client_id_stores_once(clients: Callable[[], Client]) -> None:
    alice = clients()
    await alice.register("alice", PASSWORD)
    first = await alice.send(GENERAL_CHAT_ID, "once", client_id="retry-1")
    second = await alice.send(GENERAL_CHAT_ID, "once", client_id="retry-1")
    assert first.id == second.id
    page = await alice.history(GENERAL_CHAT_ID)
    assert [m.text for m in page.messages].count("once") == 1


async def test_server_errors_keep_their_codes(clients: Callable[[], Client]) -> None:
    alice, other = clients(), clients()
    await alice.register("alice", PASSWORD)
    with pytest.raises(ApiError) as taken:
        await other.register("alice", PASSWORD)
    assert taken.value.code == ErrorCode.CONFLICT
    with pytest.raises(ApiError) as wrong:
        await other.login("alice", "wrong-password")
    assert wrong.value.code == ErrorCode.UNAUTHORIZED
    with pytest.raises(ApiError) as missing:
        await alice.open_direct("nobody")
    assert missing.value.code == ErrorCode.NOT_FOUND


async def test_stream_survives_a_server_restart_without_gap_or_duplicate(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    alice, bob = clients(), clients()
    await alice.register("alice", PASSWORD)
    session = await bob.register("bob", PASSWORD)
    stream = bob.events(session.last_event_id, backoff_base=0.05, backoff_cap=0.5)
    texts: list[str] = []
    states: list[str] = []
    try:
        await wait_connected(stream)
        await alice.send(GENERAL_CHAT_ID, "before")
        texts.append((await next_message(stream)).text)
        await asyncio.to_thread(server.restart)
        await alice.send(GENERAL_CHAT_ID, "after 1", retries=2)
        await alice.send(GENERAL_CHAT_ID, "after 2", retries=2)
        async with asyncio.timeout(TIMEOUT):
            async for item in stream:
                if isinstance(item, ConnectionState):
                    states.append(item.state)
                elif isinstance(item, MessageCreated):
                    texts.append(item.message.text)
                    if item.message.text == "after 2":
                        break
    finally:
        await stream.aclose()
    assert texts == ["before", "after 1", "after 2"]
    assert "offline" in states and states[-1] == "connected"


async def test_upload_then_download(clients: Callable[[], Client], tmp_path: Path) -> None:
    alice, bob = clients(), clients()
    await alice.register("alice", PASSWORD)
    await bob.register("bob", PASSWORD)
    data = os.urandom(300_000)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    attachment = await alice.upload(source)
    assert attachment.size == len(data)
    message = await alice.send(GENERAL_CHAT_ID, "a file", attachments=[attachment.id])
    assert [a.id for a in message.attachments] == [attachment.id]
    saved = await bob.download(attachment.id, tmp_path / "copy.bin")
    assert saved.read_bytes() == data


# --- the plain console client -------------------------------------------------------


async def test_plain_register_send_and_receive_live(plain: StartPlain) -> None:
    alice = await plain()
    bob = await plain()
    alice.send(f"/auth alice {PASSWORD}")
    await alice.expect("logged in as alice")
    bob.send(f"/auth bob {PASSWORD}")
    await bob.expect("logged in as bob")
    bob.send("/status")  # an answer proves bob's session is up before alice sends
    await bob.expect("status of bob")
    alice.send("hello from alice")
    mine = await alice.expect("alice: hello from alice")
    assert mine.startswith("[#") and " general " in mine
    theirs = await bob.expect("alice: hello from alice")
    assert theirs == mine
    assert await alice.finish() == 0
    assert sum("hello from alice" in line for line in alice.lines) == 1  # printed once
    assert await bob.finish() == 0


async def test_plain_shows_history_on_login(
    plain: StartPlain, clients: Callable[[], Client]
) -> None:
    """Issue 9 item 1: the history on connect shows the newest 20 and marks nothing read."""
    alice, dave = clients(), clients()
    await alice.register("alice", PASSWORD)
    await dave.register("dave", PASSWORD)
    carol = clients()
    await carol.register("carol", PASSWORD)
    # Two authors: one user may post only 20 an hour to the general chat.
    sent = [await (alice if i < 13 else dave).send(GENERAL_CHAT_ID, f"old {i}") for i in range(25)]
    proc = await plain("--login", "carol", "--password", PASSWORD)
    await proc.expect("dave: old 24")
    await proc.expect("* 25 unread: general 25 (/unread shows them)")
    assert await proc.finish() == 0
    shown = [line for line in proc.lines if ": old " in line]
    assert len(shown) == 20  # the last N of the general chat
    assert shown[0].startswith(f"[#{sent[5].id} general ")
    unread = await carol.unread()
    assert unread.total == 25 and unread.chats[0].chat.id == GENERAL_CHAT_ID  # still unread


async def test_plain_private_message(plain: StartPlain) -> None:
    alice = await plain()
    bob = await plain()
    bob.send(f"/auth bob {PASSWORD}")
    await bob.expect("logged in as bob")
    alice.send(f"/auth alice {PASSWORD}")
    await alice.expect("logged in as alice")
    bob.send("/status")
    await bob.expect("status of bob")
    alice.send("/private bob psst")
    await alice.expect("alice: psst")
    line = await bob.expect("alice: psst")
    assert " general " not in line and "@alice" in line
    assert await alice.finish() == 0
    assert await bob.finish() == 0


async def test_plain_text_follows_the_chat_the_client_says_you_are_in(plain: StartPlain) -> None:
    """Issue 9 item 5: after /private bob, plain text goes to @bob as the client says;
    /send goes back to general, and plain text follows it there."""
    alice = await plain()
    bob = await plain()
    bob.send(f"/auth bob {PASSWORD}")
    await bob.expect("logged in as bob")
    alice.send(f"/auth alice {PASSWORD}")
    await alice.expect("logged in as alice")
    bob.send("/status")
    await bob.expect("status of bob")
    alice.send("/private bob psst")
    await alice.expect("you are now in @bob: plain text goes there; /send <text> goes back")
    alice.send("still just for you")
    line = await bob.expect("alice: still just for you")
    assert " @alice " in line and " general " not in line
    alice.send("/send hello all")
    await alice.expect("you are now in general: plain text goes there")
    alice.send("and plain text too")
    line = await bob.expect("alice: and plain text too")
    assert " general " in line
    assert await alice.finish() == 0
    assert await bob.finish() == 0
    assert not any("you are now in" in line for line in bob.lines)  # bob did not move
    assert "* new private chat @alice; /private alice <text> writes there" in bob.lines
    assert not any("new private chat" in line for line in alice.lines)  # she opened it


async def test_plain_errors_show_their_code_and_eof_exits_0(plain: StartPlain) -> None:
    proc = await plain()
    proc.send("/send too early")
    await proc.expect("error unauthorized")
    proc.send(f"/auth alice {PASSWORD}")
    await proc.expect("logged in as alice")
    proc.send(f"/auth alice {PASSWORD}")
    await proc.expect("error conflict")
    proc.send("/private nobody hi")
    await proc.expect("error not_found")
    proc.send("/bogus")
    await proc.expect("error usage: unknown command /bogus")
    proc.send("/thread abc")
    await proc.expect("usage: /thread <message-id>")
    assert await proc.finish() == 0
    assert not any("Traceback" in line for line in proc.lines)


async def test_plain_exit_command(plain: StartPlain) -> None:
    proc = await plain()
    proc.send("/exit")
    proc.send("/help")  # never runs
    assert await proc.finish() == 0
    assert proc.lines == ["* bye"]


async def test_plain_json_lines(plain: StartPlain) -> None:
    proc = await plain("--json")
    proc.send(f"/auth alice {PASSWORD}")
    proc.send("/send in json")
    proc.send("/private nobody x")
    await proc.expect('"in json"')
    await proc.expect('"error"')
    assert await proc.finish() == 0
    objects = [json.loads(line) for line in proc.lines]
    message = next(o["message"] for o in objects if o["kind"] == "message")
    assert message["text"] == "in json" and message["author"] == "alice"
    assert {"id", "chat_id", "created_at"} <= message.keys()
    error = next(o for o in objects if o["kind"] == "error")
    assert error["code"] == "not_found"


async def test_plain_thread_and_history_repeat_what_was_shown(plain: StartPlain) -> None:
    proc = await plain()
    proc.send(f"/auth alice {PASSWORD}")
    proc.send("root message")
    line = await proc.expect("alice: root message")
    root_id = line.split()[0].removeprefix("[#")
    proc.send(f"/comment {root_id} a comment")
    await proc.expect(f"↳#{root_id}] alice: a comment")
    proc.send(f"/thread {root_id}")
    await proc.expect("alice: root message (1 comment)")  # issue 9 item 12: not "1 comments"
    await proc.expect("alice: a comment")
    proc.send("/history")
    await proc.expect("alice: root message")
    assert await proc.finish() == 0


async def test_plain_marks_what_it_printed_as_read(
    plain: StartPlain, clients: Callable[[], Client]
) -> None:
    """Issue 9 item 1: /unread prints every unread message per chat and marks them read."""
    alice = clients()
    await alice.register("alice", PASSWORD)
    bob = clients()
    await bob.register("bob", PASSWORD)
    await alice.send(GENERAL_CHAT_ID, "in general")
    direct = await alice.open_direct("bob")
    await alice.send(direct.id, "just for bob")
    proc = await plain("--login", "bob", "--password", PASSWORD)
    await proc.expect("* 2 unread: general 1, @alice 1 (/unread shows them)")
    proc.send("/unread")
    await proc.expect("* 2 unread: general 1, @alice 1")
    await proc.expect("alice: in general")
    await proc.expect("alice: just for bob")
    proc.send("/unread")
    await proc.expect("* 0 unread")
    assert await proc.finish() == 0
    assert (await bob.unread()).total == 0


async def test_plain_prints_a_join_decision_once_on_the_deciding_device(
    plain: StartPlain, clients: Callable[[], Client]
) -> None:
    """Issue 9 item 12: ``/approve`` printed two lines on the device that decided, the
    command's answer and the join decision event; ``/reject`` too. One line each."""
    alice = await plain()
    alice.send(f"/auth alice {PASSWORD}")
    await alice.expect("logged in as alice")
    alice.send("/create team")
    await alice.expect("created team")
    bob, carol = clients(), clients()
    await bob.register("bob", PASSWORD)
    await carol.register("carol", PASSWORD)
    await bob.join("team", None)
    await alice.expect("bob asks to join team")
    await carol.join("team", None)
    await alice.expect("carol asks to join team")
    alice.send("/approve team bob")
    await alice.expect("approved: bob is now in team")
    alice.send("/reject team carol")
    await alice.expect("rejected carol's request to join team")
    # the decisions' events come before this message on alice's stream
    await bob.send(GENERAL_CHAT_ID, "after the decisions")
    await alice.expect("bob: after the decisions")
    assert await alice.finish() == 0
    assert [line for line in alice.lines if "bob is now in team" in line or "bob's" in line] == [
        "* approved: bob is now in team"
    ]
    assert [line for line in alice.lines if "carol's" in line] == [
        "* rejected carol's request to join team"
    ]
