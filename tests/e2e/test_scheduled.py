"""Scheduled messages (F11) against the real server, its clock moved by the test (also
on the 3-node cluster, where the scheduler of any node may post it, but across a restart)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from messenger_protocol import MessageCreated, ScheduledUpdated
from tests.support.server import ServerProcess
from tests.support.wire import SseReader, call, message_event, register, send

T0 = 1_700_000_000.0


def _clocked(clocked: Callable[..., ServerProcess]) -> ServerProcess:
    return clocked(T0, "--scheduled-max-pending", "3")


async def _schedule(
    srv: ServerProcess, token: str, text: str, at: float, chat_id: int = 1
) -> httpx.Response:
    return await call(
        srv.url,
        "POST",
        "/api/v1/scheduled",
        token,
        {"chat_id": chat_id, "text": text, "send_at": at},
    )


async def _texts(srv: ServerProcess, token: str) -> list[str]:
    page = (await call(srv.url, "GET", "/api/v1/chats/1/messages", token)).json()
    return [m["text"] for m in page["messages"]]


@pytest.mark.cluster_too
async def test_delivered_on_time_while_the_author_is_offline_cancelled_never(
    clocked: Callable[..., ServerProcess],
) -> None:
    srv = _clocked(clocked)
    alice = await register(srv.url, "alice")
    bob = (await register(srv.url, "bob"))["token"]
    kept = (await _schedule(srv, alice["token"], "on time", T0 + 600)).json()
    dropped = (await _schedule(srv, alice["token"], "never", T0 + 600)).json()
    assert kept["state"] == "pending"
    cancelled = await call(srv.url, "DELETE", f"/api/v1/scheduled/{dropped['id']}", alice["token"])
    assert cancelled.json()["state"] == "cancelled"
    again = await call(srv.url, "DELETE", f"/api/v1/scheduled/{dropped['id']}", alice["token"])
    assert again.status_code == 409 and "cancelled" in again.json()["error"]["message"]
    listed = (await call(srv.url, "GET", "/api/v1/scheduled", alice["token"])).json()
    assert [(s["text"], s["state"]) for s in listed["scheduled"]] == [
        ("on time", "pending"),
        ("never", "cancelled"),
    ]
    # the author logs out: nothing of hers is connected when it goes out
    await call(srv.url, "POST", "/api/v1/auth/logout", alice["token"])
    async with SseReader(srv.url, bob) as bob_events:
        srv.set_time(T0 + 599)
        srv.set_time(T0 + 600)
        _, event = await bob_events.next()
        assert isinstance(event, MessageCreated)
        assert event.message.text == "on time" and event.message.author == "alice"
        assert event.message.scheduled_id == kept["id"]
        assert event.message.created_at == T0 + 600
        # the cancelled one never comes: nothing arrives before bob's own later message
        later = (await send(srv.url, bob, "later")).json()
        rest = await bob_events.until(message_event(later["id"]))
        assert [e.message.text for _, e in rest if isinstance(e, MessageCreated)] == ["later"]
    assert await _texts(srv, bob) == ["on time", "later"]
    # the author learns which message it became, on her next login
    login = await call(
        srv.url, "POST", "/api/v1/auth/login", json={"login": "alice", "password": "password1"}
    )
    token = login.json()["token"]
    listed = (await call(srv.url, "GET", "/api/v1/scheduled", token)).json()["scheduled"]
    sent = next(s for s in listed if s["id"] == kept["id"])
    assert sent["state"] == "sent" and sent["message_id"] == event.message.id
    sent_again = await call(srv.url, "DELETE", f"/api/v1/scheduled/{kept['id']}", token)
    assert sent_again.status_code == 409


@pytest.mark.cluster_too
async def test_author_streams_get_scheduled_updates(
    clocked: Callable[..., ServerProcess],
) -> None:
    srv = _clocked(clocked)
    alice = (await register(srv.url, "alice"))["token"]
    async with SseReader(srv.url, alice) as events:
        item = (await _schedule(srv, alice, "soon", T0 + 60)).json()
        _, created = await events.next()
        assert isinstance(created, ScheduledUpdated) and created.scheduled.state == "pending"
        srv.set_time(T0 + 60)
        seen = [await events.next(), await events.next()]
        kinds = {type(e).__name__: e for _, e in seen}
        message = kinds["MessageCreated"]
        update = kinds["ScheduledUpdated"]
        assert isinstance(message, MessageCreated) and isinstance(update, ScheduledUpdated)
        assert update.scheduled.id == item["id"] and update.scheduled.state == "sent"
        assert update.scheduled.message_id == message.message.id


@pytest.mark.cluster_too
async def test_due_ones_go_out_right_after_a_restart(
    clocked: Callable[..., ServerProcess],
) -> None:
    srv = _clocked(clocked)
    alice = await register(srv.url, "alice")
    bob = await register(srv.url, "bob")
    await _schedule(srv, alice["token"], "while down", T0 + 1200)
    srv.stop()
    srv.set_time(T0 + 3600)
    srv.start()
    async with SseReader(srv.url, bob["token"], last_event_id=bob["last_event_id"]) as events:
        _, event = await events.next()
        assert isinstance(event, MessageCreated) and event.message.text == "while down"


@pytest.mark.cluster_too
async def test_limits_and_failures(
    clocked: Callable[..., ServerProcess],
) -> None:
    srv = _clocked(clocked)
    alice = (await register(srv.url, "alice"))["token"]
    owner = (await register(srv.url, "owner"))["token"]
    past = await _schedule(srv, alice, "late", T0 - 3600)
    assert past.status_code == 400
    far = await _schedule(srv, alice, "far", T0 + 366 * 24 * 3600)
    assert far.status_code == 400
    pending = [await _schedule(srv, alice, f"p{i}", T0 + 100 + i) for i in range(3)]
    assert [p.status_code for p in pending] == [200] * 3
    assert (await _schedule(srv, alice, "one too many", T0 + 200)).status_code == 413
    # not a member: refused at once; removed before it went out: failed with the reason
    group = (await call(srv.url, "POST", "/api/v1/chats", owner, {"name": "team"})).json()
    assert (await _schedule(srv, alice, "x", T0 + 10, group["id"])).status_code == 403
    await call(srv.url, "POST", f"/api/v1/chats/{group['id']}/members", owner, {"login": "alice"})
    await call(srv.url, "DELETE", f"/api/v1/scheduled/{pending[0].json()['id']}", alice)  # room
    item = (await _schedule(srv, alice, "to the team", T0 + 500, group["id"])).json()
    await call(srv.url, "DELETE", f"/api/v1/chats/{group['id']}/members/alice", owner)
    async with SseReader(srv.url, alice) as events:
        srv.set_time(T0 + 500)
        while True:
            _, event = await events.next(skip=("presence", "message"))
            if isinstance(event, ScheduledUpdated) and event.scheduled.id == item["id"]:
                break
    assert event.scheduled.state == "failed"
    assert "not a member" in (event.scheduled.failure or "")
