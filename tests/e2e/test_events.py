"""Live events and gap-free resume with Last-Event-ID (SPEC Wire, F14, F32)."""

from __future__ import annotations

import pytest

from messenger_protocol import MessageCreated, ReadMarker
from tests.support.server import ServerProcess
from tests.support.wire import SseReader, call, message_event, register, send


@pytest.mark.cluster_too
async def test_message_reaches_every_client_of_every_user(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    bob2 = (
        await call(
            server.url, "POST", "/api/v1/auth/login", json={"login": "bob", "password": "password1"}
        )
    ).json()["token"]
    async with (
        SseReader(server.url, alice) as a,
        SseReader(server.url, bob) as b1,
        SseReader(server.url, bob2) as b2,
    ):
        assert a.status == b1.status == b2.status == 200
        sent = (await send(server.url, bob, "hello all")).json()
        for reader in (a, b1, b2):  # the sender's own clients get it too (F14)
            event_id, event = await reader.next()
            assert isinstance(event, MessageCreated)
            assert event.message.id == sent["id"]
            assert event_id is not None


@pytest.mark.cluster_too
async def test_resume_gets_exactly_the_missed_events(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    async with SseReader(server.url, bob) as reader:
        await send(server.url, alice, "before")
        last_id, event = await reader.next()
        assert isinstance(event, MessageCreated)
    missed = [(await send(server.url, alice, f"missed {i}")).json()["id"] for i in range(5)]
    async with SseReader(server.url, bob, last_event_id=last_id) as reader:
        replayed = await reader.until(message_event(missed[-1]))
        await send(server.url, alice, "live")
        live = await reader.next()
    ids = [e.message.id for _, e in replayed if isinstance(e, MessageCreated)]
    assert ids == missed  # no gap, no duplicate of "before"
    seqs = [s for s, _ in replayed if s is not None]
    assert len(seqs) == len(replayed)
    assert last_id is not None
    assert seqs == sorted(seqs) and seqs[0] > last_id
    assert isinstance(live[1], MessageCreated) and live[1].message.text == "live"


@pytest.mark.cluster_too
async def test_resume_across_server_restart(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    async with SseReader(server.url, bob) as reader:
        await send(server.url, alice, "one")
        last_id, _ = await reader.next()
    await send(server.url, alice, "two")
    server.restart()
    async with SseReader(server.url, bob, last_event_id=last_id) as reader:
        events = await reader.until(lambda e: isinstance(e, MessageCreated))
    assert [e.message.text for _, e in events if isinstance(e, MessageCreated)] == ["two"]


@pytest.mark.cluster_too
async def test_read_state_syncs_between_clients(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    bob2 = (
        await call(
            server.url, "POST", "/api/v1/auth/login", json={"login": "bob", "password": "password1"}
        )
    ).json()["token"]
    msg = (await send(server.url, alice, "read me")).json()
    async with SseReader(server.url, bob2) as other:
        resp = await call(server.url, "POST", "/api/v1/chats/1/read", bob, {"up_to": msg["id"]})
        assert resp.status_code == 200
        events = await other.until(lambda e: isinstance(e, ReadMarker))
    markers = [e for _, e in events if isinstance(e, ReadMarker)]
    assert markers and markers[-1].chat_id == 1 and markers[-1].up_to == msg["id"]
    chats = (await call(server.url, "GET", "/api/v1/chats", bob2)).json()["chats"]
    assert next(c for c in chats if c["id"] == 1)["unread"] == 0


@pytest.mark.cluster_too
async def test_events_need_a_valid_token(server: ServerProcess) -> None:
    async with SseReader(server.url, "bogus") as reader:
        assert reader.status == 401
