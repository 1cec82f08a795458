"""Disappearing messages (F8) against the real server, its clock moved by the test:
each recipient keeps a message for an hour after it reached them (also on the 3-node
cluster, but with ``message_ttl`` 0).

On a cluster a reader's online span is committed before their stream's response head
goes out, so a message posted on any node once the stream is open reaches them online;
the tests that need that post on another node than the reader's stream."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from messenger_protocol import MessageCreated, MessageDeleted
from tests.support import db
from tests.support.server import ServerProcess
from tests.support.wire import SseReader, call, register, send

T0 = 1_700_000_000.0
TTL = 3600


async def _ids(srv: ServerProcess, token: str, chat_id: int = 1) -> list[int]:
    page = await call(srv.url, "GET", f"/api/v1/chats/{chat_id}/messages", token)
    assert page.status_code == 200, page.text
    return [m["id"] for m in page.json()["messages"]]


async def _unread(srv: ServerProcess, token: str, chat_id: int = 1) -> int:
    chats = (await call(srv.url, "GET", "/api/v1/chats", token)).json()["chats"]
    unread: int = {c["id"]: c["unread"] for c in chats}[chat_id]
    one = (await call(srv.url, "GET", f"/api/v1/chats/{chat_id}", token)).json()
    assert one["unread"] == unread
    return unread


@pytest.mark.cluster_too
async def test_offline_recipient_gets_it_after_two_hours_then_it_disappears_an_hour_later(
    clocked: Callable[..., ServerProcess],
) -> None:
    srv = clocked(T0)
    alice_session = await register(srv.url, "alice")
    assert alice_session["message_ttl"] == TTL  # clients can fade what is about to go
    alice = alice_session["token"]
    bob = (await register(srv.url, "bob"))["token"]  # never connected a stream: offline
    carol = (await register(srv.url, "carol"))["token"]  # online, but never reads it
    head = await call(srv.url, "HEAD", "/api/v1/events", bob)  # the stream's head only:
    assert head.status_code == 200  # no stream, so bob stays offline
    carol_node, other = srv.url, srv.url  # on the cluster: two nodes (module docstring)
    async with (
        SseReader(srv.url, alice) as alice_events,
        SseReader(carol_node, carol) as carol_events,
    ):
        message = (await send(other, alice, "self-destructs")).json()
        _, created = await alice_events.next()
        assert isinstance(created, MessageCreated)
        await carol_events.next()
        srv.set_time(T0 + TTL - 1)
        assert await _ids(srv, alice) == [message["id"]]
        assert await _unread(srv, carol) == 1
        srv.set_time(T0 + TTL)
        _, gone = await alice_events.next()
        assert gone == MessageDeleted(chat_id=1, message_id=message["id"])
        assert await _ids(srv, alice) == []
        _, gone = await carol_events.next()
        assert gone == MessageDeleted(chat_id=1, message_id=message["id"])
        assert await _unread(srv, carol) == 0  # what disappeared is not unread any more
        assert await _unread(srv, bob) == 1  # bob still has it coming
    # bob was away: after two hours it is still there for him
    srv.set_time(T0 + 2 * TTL)
    page = await call(srv.url, "GET", "/api/v1/chats/1/messages", bob)
    [fetched] = page.json()["messages"]
    assert fetched["id"] == message["id"]
    assert fetched["expires_at"] == T0 + 3 * TTL  # an hour from now, when bob got it
    async with SseReader(srv.url, bob) as bob_events:
        srv.set_time(T0 + 3 * TTL - 1)
        assert await _ids(srv, bob) == [message["id"]]
        srv.set_time(T0 + 3 * TTL)
        _, gone = await bob_events.next()
        assert gone == MessageDeleted(chat_id=1, message_id=message["id"])
    assert await _ids(srv, bob) == []
    # gone from the server for everyone
    lookup = await call(srv.url, "GET", f"/api/v1/messages/{message['id']}", alice)
    assert lookup.status_code in (403, 404)


@pytest.mark.cluster_too
async def test_unfetched_message_is_deleted_at_the_maximum_age(
    clocked: Callable[..., ServerProcess],
) -> None:
    srv = clocked(T0, "--message-max-age", str(5 * TTL))
    alice = (await register(srv.url, "alice"))["token"]
    await register(srv.url, "bob")  # never comes back
    message = (await send(srv.url, alice, "nobody reads this")).json()
    async with SseReader(srv.url, alice) as events:
        srv.set_time(T0 + 5 * TTL)
        ids = set()
        while message["id"] not in ids:
            _, event = await events.next()
            assert isinstance(event, MessageDeleted)
            ids.add(event.message_id)
    assert db.count(srv, "messages") == 0  # gone from the database, not only from view
    assert db.events_mentioning(srv, "nobody reads this") == 0  # nor from the event log


async def test_ttl_zero_keeps_messages(
    clocked: Callable[..., ServerProcess],
) -> None:
    """Not on the cluster: ``--message-ttl`` is a node's flag and the one e2e cluster runs
    with the default (the retention leader reads its own setting; a cluster for this one
    test would cost three node starts)."""
    srv = clocked(T0, "--message-ttl", "0")
    alice = (await register(srv.url, "alice"))["token"]
    message = (await send(srv.url, alice, "forever")).json()
    # 20 days: far past any message lifetime, within the 30-day session idle timeout.
    srv.set_time(T0 + 480 * TTL)
    assert await _ids(srv, alice) == [message["id"]]


@pytest.mark.cluster_too
async def test_reconnecting_client_gets_it_by_replay_and_keeps_it_an_hour(
    clocked: Callable[..., ServerProcess],
) -> None:
    srv = clocked(T0)
    alice = (await register(srv.url, "alice"))["token"]
    bob = await register(srv.url, "bob")
    message = (await send(srv.url, alice, "while bob was away")).json()
    srv.set_time(T0 + 2 * TTL)
    async with SseReader(srv.url, bob["token"], last_event_id=bob["last_event_id"]) as events:
        _, created = await events.next()
        assert isinstance(created, MessageCreated) and created.message.id == message["id"]
        srv.set_time(T0 + 3 * TTL - 1)
        assert await _ids(srv, bob["token"]) == [message["id"]]
        srv.set_time(T0 + 3 * TTL)
        while True:
            _, event = await events.next()
            if isinstance(event, MessageDeleted):
                break
        assert event.message_id == message["id"]


@pytest.mark.cluster_too
async def test_chat_list_unread_leaves_out_what_disappeared_in_every_chat(
    clocked: Callable[..., ServerProcess],
) -> None:
    """Issue 11: /chats counts what disappeared for the reader in all its chats at once
    (one query): the general chat and a private one lose what expired, a message that
    came later stays unread, and each count matches the chat's own /chats/{id}."""
    srv = clocked(T0)
    alice = (await register(srv.url, "alice"))["token"]
    carol = (await register(srv.url, "carol"))["token"]
    dm = (await call(srv.url, "POST", "/api/v1/direct", alice, {"login": "carol"})).json()["id"]
    carol_node, other = srv.url, srv.url  # on the cluster: two nodes (module docstring)
    async with SseReader(carol_node, carol) as carol_events:
        for chat_id in (1, dm, dm):
            assert (await send(other, alice, "soon gone", chat_id)).status_code == 200
            await carol_events.next()
        srv.set_time(T0 + TTL - 1)
        later = (await send(srv.url, alice, "stays", dm)).json()
        await carol_events.next()
        assert (await _unread(srv, carol, 1), await _unread(srv, carol, dm)) == (1, 3)
        srv.set_time(T0 + TTL)
        for _ in range(3):
            _, gone = await carol_events.next()
            assert isinstance(gone, MessageDeleted) and gone.message_id != later["id"]
        assert (await _unread(srv, carol, 1), await _unread(srv, carol, dm)) == (0, 1)
