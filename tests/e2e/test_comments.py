"""Comments form flat threads under any message; participants are notified (F10)."""

from __future__ import annotations

import pytest

from messenger_protocol import MessageCreated, MessageUpdated, ThreadActivity
from tests.support.server import ServerProcess
from tests.support.wire import SseReader, call, message_event, register, send


@pytest.mark.cluster_too
async def test_thread_is_flat_counted_and_notifies_participants(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    carol = (await register(server.url, "carol"))["token"]
    dave = (await register(server.url, "dave"))["token"]
    root = (await send(server.url, alice, "lunch?")).json()
    first = await call(
        server.url, "POST", f"/api/v1/messages/{root['id']}/comments", bob, {"text": "yes"}
    )
    assert first.status_code == 200
    assert first.json()["thread_root"] == root["id"]
    async with (
        SseReader(server.url, alice) as a,
        SseReader(server.url, bob) as b,
        SseReader(server.url, dave) as d,
    ):
        # a comment on a comment attaches to the root
        reply = await call(
            server.url,
            "POST",
            f"/api/v1/messages/{first.json()['id']}/comments",
            carol,
            {"text": "me too"},
        )
        assert reply.json()["thread_root"] == root["id"]
        # a later general message: by the time it arrives, everything about the reply has
        end = (await send(server.url, carol, "end")).json()
        at_end = message_event(end["id"])
        alice_events = [e for _, e in await a.until(at_end)]
        bob_events = [e for _, e in await b.until(at_end)]
        dave_events = [e for _, e in await d.until(at_end)]
    for events in (alice_events, bob_events):  # root author and earlier commenter
        activity = [e for e in events if isinstance(e, ThreadActivity)]
        assert len(activity) == 1 and activity[0].comment.text == "me too"
    assert not any(isinstance(e, ThreadActivity) for e in dave_events)  # not a participant
    assert any(isinstance(e, MessageCreated) and e.message.text == "me too" for e in dave_events)
    updated = [e for e in dave_events if isinstance(e, MessageUpdated)]
    assert updated and updated[-1].message.comment_count == 2
    thread = (await call(server.url, "GET", f"/api/v1/messages/{root['id']}/thread", dave)).json()
    assert thread["root"]["comment_count"] == 2
    assert thread["root"]["last_comment_at"] is not None
    assert [c["text"] for c in thread["comments"]] == ["yes", "me too"]
    # comments are not in the chat history, only their root is (and the later "end")
    page = (await call(server.url, "GET", "/api/v1/chats/1/messages", carol)).json()
    assert [m["text"] for m in page["messages"]] == ["lunch?", "end"]


@pytest.mark.cluster_too
async def test_thread_unread_and_mark_read(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    root = (await send(server.url, alice, "topic")).json()
    c1 = (
        await call(
            server.url, "POST", f"/api/v1/messages/{root['id']}/comments", bob, {"text": "a"}
        )
    ).json()
    await call(server.url, "POST", f"/api/v1/messages/{root['id']}/comments", bob, {"text": "b"})
    thread = (await call(server.url, "GET", f"/api/v1/messages/{root['id']}/thread", alice)).json()
    assert thread["unread"] == 2
    mark = await call(
        server.url, "POST", f"/api/v1/messages/{root['id']}/thread/read", alice, {"up_to": c1["id"]}
    )
    assert mark.status_code == 200
    thread = (await call(server.url, "GET", f"/api/v1/messages/{root['id']}/thread", alice)).json()
    assert thread["unread"] == 1


@pytest.mark.cluster_too
async def test_comment_on_unknown_message_is_refused(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    resp = await call(server.url, "POST", "/api/v1/messages/999/comments", alice, {"text": "hm"})
    assert resp.status_code == 403
