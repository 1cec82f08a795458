"""``/status`` (F7) and presence (F18)."""

from __future__ import annotations

import pytest

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    CreateChat,
    CreateLink,
    Credentials,
    JoinChat,
    OpenDirect,
    Presence,
    SendMessage,
)

from .conftest import Harness, next_turn


async def test_status_shows_connections_counts_chats_and_logins(harness: Harness) -> None:
    alice = await harness.user("alice", "10.0.0.1:5000")
    bob = await harness.user("bob")
    carol = await harness.user("carol")
    with pytest.raises(ApiError):
        await harness.app.accounts.login(
            Credentials(login="alice", password="bad-guess"), "10.9.9.9"
        )
    phone = await harness.device("alice", "10.0.0.2:6000")
    harness.stream(phone, "10.0.0.2:6001")
    dm = await harness.app.chats.open_direct(alice, OpenDirect(login="bob"))
    await harness.app.messages.post(alice, dm.id, SendMessage(text="one"))
    await harness.app.messages.post(alice, dm.id, SendMessage(text="two"))
    await harness.app.messages.post(bob, dm.id, SendMessage(text="back"))
    await harness.app.messages.post(alice, GENERAL_CHAT_ID, SendMessage(text="public"))
    team = await harness.app.chats.create(alice, CreateChat(name="team"))
    link = await harness.app.chats.create_link(alice, team.id, CreateLink())
    await harness.app.chats.join(carol, JoinChat(name="team", key=link.key))
    status = await harness.app.status.status(alice)
    assert status.user.login == "alice" and status.user.online
    assert (status.private_sent, status.private_received) == (2, 1)
    connections = {(c.address, c.streaming, c.current) for c in status.connections}
    assert connections == {("10.0.0.1:5000", False, True), ("10.0.0.2:6001", True, False)}
    assert [o.chat.name for o in status.owned_chats] == ["team"]
    assert [k.key for k in status.owned_chats[0].links] == [link.key]
    assert [r.login for r in status.owned_chats[0].pending_requests] == ["carol"]
    assert {c.name for c in status.member_chats} == {"general", "@bob", "team"}
    logins = [(x.address, x.success) for x in status.logins]
    assert logins == [("10.0.0.2", True), ("10.9.9.9", False), ("10.0.0.1", True)]


async def test_a_client_with_its_stream_is_one_connection(harness: Harness) -> None:
    """Issue 9 item 12: the status screen listed each client twice (its request and its
    event stream); a session that streams is one row, marked current and live."""
    alice = await harness.user("alice", "10.0.0.1:5000")
    harness.stream(alice, "10.0.0.1:5001")
    status = await harness.app.status.status(alice)
    rows = [(c.session_id, c.address, c.streaming, c.current) for c in status.connections]
    assert rows == [(alice.session_id, "10.0.0.1:5001", True, True)]


async def test_login_history_keeps_the_last_twenty(harness: Harness) -> None:
    await harness.user("alice")
    for i in range(25):
        harness.clock.advance(1)
        await harness.app.accounts.login(Credentials(login="alice", password="password1"), f"ip{i}")
    alice = await harness.device("alice")
    logins = (await harness.app.status.status(alice)).logins
    assert len(logins) == 20
    assert logins[1].address == "ip24"
    assert [x.at for x in logins] == sorted((x.at for x in logins), reverse=True)


async def test_presence_online_offline_and_last_seen(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    watcher = harness.stream(bob)
    await next_turn()
    watcher.take()  # bob's own presence
    first = harness.stream(alice, "127.0.0.1:1")
    second = harness.stream(alice, "127.0.0.1:2")
    await next_turn()
    assert [(e.login, e.online) for _, e in watcher.take() if isinstance(e, Presence)] == [
        ("alice", True)
    ]  # the second device changes nothing
    harness.clock.advance(100)
    subs = [s for s in harness.subs if s.stream in (first, second)]
    harness.app.close_stream(subs[0])
    await next_turn()
    assert [e for _, e in watcher.take() if isinstance(e, Presence)] == []
    harness.app.close_stream(subs[1])
    await next_turn()
    gone = [e for _, e in watcher.take() if isinstance(e, Presence)]
    assert [(e.login, e.online, e.last_seen) for e in gone] == [
        ("alice", False, harness.clock.now())
    ]
    user = await harness.app.accounts.user("alice")
    assert not user.online and user.last_seen == harness.clock.now()
    assert (await harness.app.accounts.user("bob")).online
