"""Unread after being away, through the client library, the plain client and ``--json``
(issue 9 items 1 and 4): 25 general-chat messages sent while bob was away, history on
connect 20."""

from __future__ import annotations

import json
from collections.abc import Callable

from messenger_client import Client
from messenger_protocol import GENERAL_CHAT_ID, Message
from tests.client.test_integration import PASSWORD
from tests.support.plain import StartPlain
from tests.support.server import ServerProcess


async def _away(clients: Callable[[], Client], n: int = 25) -> list[Message]:
    """bob exists; then alice and dave post ``n`` general messages (20 an hour each at most)."""
    bob, alice, dave = clients(), clients(), clients()
    await bob.register("bob", PASSWORD)
    await alice.register("alice", PASSWORD)
    await dave.register("dave", PASSWORD)
    return [await (alice if i < 13 else dave).send(GENERAL_CHAT_ID, f"away {i}") for i in range(n)]


async def test_library_history_leaves_unread_and_all_unread_pages_through(
    clients: Callable[[], Client],
) -> None:
    """Issue 9 item 1: the client library's history on connect moves no cursor, and
    ``all_unread`` returns every one of the 25 (paged by the server), oldest first."""
    sent = await _away(clients)
    bob = clients()
    session = await bob.login("bob", PASSWORD)
    page = await bob.history(GENERAL_CHAT_ID, limit=session.history_on_connect)
    assert len(page.messages) == 20
    first = await bob.unread(limit=10)
    assert first.total == 25 and first.chats[0].has_more and len(first.chats[0].messages) == 10
    everything = await bob.all_unread()
    assert everything.total == 25
    assert [m.id for m in everything.chats[0].messages] == [m.id for m in sent]
    assert (await bob.chat(GENERAL_CHAT_ID)).unread == 25  # nothing here marked read


async def test_plain_unread_after_being_away_shows_all_25_then_none(
    plain: StartPlain, clients: Callable[[], Client]
) -> None:
    """Issue 9 item 1: the plain client shows the newest 20, says 25 are unread, a live
    message meanwhile does not hide the 5 it never showed, and /unread prints all of them."""
    sent = await _away(clients)
    bob = clients()
    await bob.login("bob", PASSWORD)
    alice = clients()
    await alice.login("alice", PASSWORD)
    proc = await plain("--login", "bob", "--password", PASSWORD)
    await proc.expect("* 25 unread: general 25 (/unread shows them)")
    proc.send("/status")  # bob's event stream is up once an answer comes back
    await proc.expect("status of bob")
    live = await alice.send(GENERAL_CHAT_ID, "while you read")
    await proc.expect("alice: while you read")
    proc.send("/unread")
    await proc.expect("* 26 unread: general 26")
    await proc.expect("alice: while you read")
    proc.send("/unread")
    await proc.expect("* 0 unread")
    assert await proc.finish() == 0
    after = proc.lines[proc.lines.index("* 26 unread: general 26") + 1 :]
    printed = [line.split()[0] for line in after if line.startswith("[#")]
    assert printed == [f"[#{m.id}" for m in [*sent, live]]
    assert (await bob.unread()).total == 0


async def test_plain_json_unread_after_being_away(
    plain: StartPlain, clients: Callable[[], Client]
) -> None:
    """Issue 9 item 1: the same with ``--json``: an ``unread`` object with per-chat counts,
    then one ``message`` object per unread message."""
    sent = await _away(clients)
    proc = await plain("--json", "--login", "bob", "--password", PASSWORD)
    await proc.expect("25 unread: general 25")
    proc.send("/unread")
    await proc.expect(sent[-1].text)
    proc.send("/unread")
    await proc.expect("0 unread")
    assert await proc.finish() == 0
    objects = [json.loads(line) for line in proc.lines]
    unread = [o for o in objects if o["kind"] == "unread"]
    assert unread[0]["total"] == 25 and unread[0]["after_login"] is True
    assert unread[1]["chats"] == [{"chat_id": GENERAL_CHAT_ID, "chat": "general", "count": 25}]
    assert unread[1]["total"] == 25 and unread[1]["text"] == "25 unread: general 25"
    start = objects.index(unread[1])
    ids = [o["message"]["id"] for o in objects[start:] if o["kind"] == "message"]
    assert ids == [m.id for m in sent]
    assert unread[2]["total"] == 0


async def test_plain_shows_what_the_server_says_on_connect(
    server_factory: Callable[..., ServerProcess], plain_on: Callable[[ServerProcess], StartPlain]
) -> None:
    """Issue 9 item 4: with --history-on-connect 7 the plain client shows 7, not 20."""
    server = server_factory(args=["--history-on-connect", "7"])
    async with Client(server.url) as alice, Client(server.url) as bob:
        await bob.register("bob", PASSWORD)
        await alice.register("alice", PASSWORD)
        sent = [await alice.send(GENERAL_CHAT_ID, f"m{i}") for i in range(10)]
    proc = await plain_on(server)("--login", "bob", "--password", PASSWORD)
    await proc.expect("* 10 unread")
    assert await proc.finish() == 0
    shown = [line.split()[0] for line in proc.lines if line.startswith("[#")]
    assert shown == [f"[#{m.id}" for m in sent[-7:]]
