"""One user on several clients at once (F14)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from messenger_protocol import Event, MessageCreated, ReadMarker, SessionEnded
from tests.support.server import ServerProcess
from tests.support.wire import WAIT, SseReader, call, message_event, register, send


def _read_marker(e: Event) -> bool:
    return isinstance(e, ReadMarker)


async def _login(base: str, login: str) -> str:
    resp = await call(
        base, "POST", "/api/v1/auth/login", json={"login": login, "password": "password1"}
    )
    token: str = resp.json()["token"]
    return token


@pytest.mark.cluster_too
async def test_two_clients_stay_in_sync_and_third_user_is_unaffected(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    alice_laptop = await _login(server.url, "alice")
    bob = (await register(server.url, "bob"))["token"]
    carol = (await register(server.url, "carol"))["token"]
    dm = (await call(server.url, "POST", "/api/v1/direct", bob, {"login": "alice"})).json()["id"]
    async with (
        SseReader(server.url, alice) as phone,
        SseReader(server.url, alice_laptop) as laptop,
        SseReader(server.url, carol) as other,
    ):
        mine = (await send(server.url, alice, "from my phone")).json()
        incoming = (await send(server.url, bob, "private to alice", chat_id=dm)).json()
        for device in (phone, laptop):
            upto = await device.until(message_event(incoming["id"]))
            texts = [e.message.text for _, e in upto if isinstance(e, MessageCreated)]
            assert texts == ["from my phone", "private to alice"]
        await call(
            server.url, "POST", f"/api/v1/chats/{dm}/read", alice_laptop, {"up_to": incoming["id"]}
        )
        markers = [e for _, e in await phone.until(_read_marker) if isinstance(e, ReadMarker)]
        assert [(m.chat_id, m.up_to) for m in markers] == [(dm, incoming["id"])]
        # carol sees nothing of it: everything before bob's later message has arrived by then
        end = (await send(server.url, bob, "later, in general")).json()
        carol_events = [e for _, e in await other.until(message_event(end["id"]))]
    assert all(not isinstance(e, ReadMarker) for e in carol_events)
    carol_got = [e.message.id for e in carol_events if isinstance(e, MessageCreated)]
    assert carol_got == [mine["id"], end["id"]]
    chats = (await call(server.url, "GET", "/api/v1/chats", alice)).json()["chats"]
    assert next(c for c in chats if c["id"] == dm)["unread"] == 0


@pytest.mark.cluster_too
async def test_status_lists_every_connection(server: ServerProcess) -> None:
    """/status lists both streaming sessions, with their address, on whichever node answers
    (on 3 nodes each stream is on another node: a row of live_streams, written just after
    the stream opened, so the test asks until both are there)."""
    alice = (await register(server.url, "alice"))["token"]
    laptop = await _login(server.url, "alice")
    async with SseReader(server.url, alice), SseReader(server.url, laptop):
        async with asyncio.timeout(WAIT):
            while True:
                status = (await call(server.url, "GET", "/api/v1/status", alice)).json()
                streaming = [c for c in status["connections"] if c["streaming"]]
                if len(streaming) == 2:
                    break
                await asyncio.sleep(0.02)
    assert len({c["session_id"] for c in streaming}) == 2
    assert {c["address"].rsplit(":", 1)[0] for c in streaming} == {"127.0.0.1"}


@pytest.mark.cluster_too
async def test_logout_ends_one_session_and_logout_all_ends_every(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    laptop = await _login(server.url, "alice")
    tablet = await _login(server.url, "alice")
    async with SseReader(server.url, laptop) as laptop_events:
        assert (await call(server.url, "POST", "/api/v1/auth/logout", alice)).status_code == 200
        assert (await call(server.url, "GET", "/api/v1/status", alice)).status_code == 401
        assert (await call(server.url, "GET", "/api/v1/status", laptop)).status_code == 200
        assert (
            await call(server.url, "POST", "/api/v1/auth/logout_all", tablet)
        ).status_code == 200
        events = await laptop_events.until(lambda e: isinstance(e, SessionEnded))
    assert any(isinstance(e, SessionEnded) for _, e in events)
    for token in (laptop, tablet):
        assert (await call(server.url, "GET", "/api/v1/status", token)).status_code == 401


@pytest.mark.cluster_too
async def test_a_saved_token_tells_its_session(
    clocked: Callable[..., ServerProcess],
) -> None:
    """Items 7/8 of issue 9: a client resuming from a saved token learns its session id
    and whether it is an admin, as a login would tell it; the token is not echoed."""
    srv = clocked(time.time(), "--admins", "root")
    login = await register(srv.url, "root")
    resp = await call(srv.url, "GET", "/api/v1/auth/session", login["token"])
    assert resp.status_code == 200
    session = resp.json()
    assert session["session_id"] == login["session_id"] and session["token"] == ""
    assert session["user"]["login"] == "root" and session["user"]["is_admin"] is True
    assert session["history_on_connect"] == login["history_on_connect"]
    await call(srv.url, "POST", "/api/v1/auth/logout", login["token"])
    gone = await call(srv.url, "GET", "/api/v1/auth/session", login["token"])
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "unauthorized"
