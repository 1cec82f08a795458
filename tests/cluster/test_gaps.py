"""A node that never publishes and one that publishes late: streams elsewhere still get
every event, never a higher id before a lower one (the window repairs from the log).

Issue 13 items 2, 5 and 6, once with Redis and once with NATS: node0 loses
every batch it would publish (as if killed after each commit, before publishing), node1
publishes each batch 300 ms late, node2 is healthy.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from messenger_client.api import tls_context
from messenger_protocol import MessageCreated, MessageEdited, SessionEnded, encode_event
from tests.support.cluster import Cluster
from tests.support.wire import Numbered, SseReader, call, message_event, register

CLUSTER_ARGS = ["--rate-limit-messages", "100000"]
CLUSTER_NODE_ENV = {
    0: {"MESSENGER_TEST_FAULTS": "drop_publish"},
    1: {"MESSENGER_TEST_FAULTS": "delay_publish_ms:300"},
}
MESSAGES = 60
WAIT = 120.0


async def test_lost_and_late_batches_reach_every_stream_in_order(cluster: Cluster) -> None:
    """Issue 13 items 2 and 5: posts through all three nodes reach a stream on each node
    completely, with strictly increasing ids, although node0's batches never go out on the
    bus and node1's go out late."""
    tokens = [(await register(cluster.url(i), f"gap{i}"))["token"] for i in range(3)]
    readers = [SseReader(cluster.url(i), tokens[i]) for i in range(3)]
    for reader in readers:
        await reader.__aenter__()
    try:
        async with httpx.AsyncClient(verify=tls_context(), timeout=30.0) as client:

            async def post(i: int, text: str) -> int:
                resp = await client.post(
                    f"{cluster.url(i)}/api/v1/chats/1/messages",
                    json={"text": text},
                    headers={"Authorization": f"Bearer {tokens[i % 3]}"},
                )
                assert resp.status_code == 200, resp.text
                message_id: int = resp.json()["id"]
                return message_id

            ready = await post(2, "ready")
            for reader in readers:
                await reader.until(message_event(ready), timeout=WAIT)
            gate = asyncio.Semaphore(6)

            async def one(i: int) -> int:
                async with gate:
                    return await post(i, f"g{i}")

            posted = await asyncio.gather(*(one(i) for i in range(MESSAGES)))
            last = await post(0, "last")  # from the silent node: only a repair brings it
            received: list[list[Numbered]] = await asyncio.gather(
                *(r.until(message_event(last), timeout=WAIT) for r in readers)
            )
    finally:
        for reader in readers:
            await reader.close()
    for i, events in enumerate(received):
        ids = [seq for seq, _ in events if seq is not None]
        assert ids == sorted(set(ids)), f"stream on node{i}: an id out of order or twice"
        got = [e.message.id for _, e in events if isinstance(e, MessageCreated)]
        assert sorted(got) == sorted([*posted, last]), f"stream on node{i}: a gap"
    for i in (1, 2):  # they read node0's events from the database
        assert "from the database" in cluster.nodes[i].log(), cluster.logs()


async def test_resume_on_a_lagging_node_with_an_id_from_a_faster_one(cluster: Cluster) -> None:
    """Issue 13 item 5: a client that got event X from node0 (whose batches only reach the
    others through the database) resumes on node2 right away, before node2 has X: node2
    catches up to X first, then gives exactly what follows, with no ``reset`` and no
    repeat of X. A stream opened on node2 without ``Last-Event-ID`` at that moment starts
    after X too (the newest event in the database, not node2's window): it gets only
    what was committed after it opened. So does a login, a registration and a session
    read on node2 then: their ``last_event_id`` is X, and a stream from the login's
    gets only what followed."""
    alice = (await register(cluster.url(0), "fast-a"))["token"]
    bob = (await register(cluster.url(0), "fast-b"))["token"]
    async with httpx.AsyncClient(verify=tls_context(), timeout=30.0) as client:
        headers = {"Authorization": f"Bearer {alice}"}
        async with SseReader(cluster.url(0), bob) as on_fast:
            ahead = await client.post(
                f"{cluster.url(0)}/api/v1/chats/1/messages", json={"text": "ahead"},
                headers=headers,
            )  # fmt: skip
            # on node2 while it is still behind X (it has not opened a stream since)
            login, joined = await asyncio.gather(
                call(cluster.url(2), "POST", "/api/v1/auth/login",
                     json={"login": "fast-b", "password": "password1"}),
                register(cluster.url(2), "fast-c"),
            )  # fmt: skip
            assert login.status_code == 200, login.text
            read = await call(cluster.url(2), "GET", "/api/v1/auth/session", joined["token"])
            events = await on_fast.until(message_event(ahead.json()["id"]))
        last_id = events[-1][0]
        assert last_id is not None
        starts = [login.json()["last_event_id"], joined["last_event_id"]]
        assert [*starts, read.json()["last_event_id"]] == [last_id] * 3
        async with (
            SseReader(cluster.url(2), bob) as fresh,  # first: node2 is still behind X
            SseReader(cluster.url(2), login.json()["token"], last_event_id=starts[0]) as logged,
            SseReader(cluster.url(2), bob, last_event_id=last_id) as on_slow,
        ):
            assert on_slow.status == fresh.status == logged.status == 200
            nxt = await client.post(
                f"{cluster.url(2)}/api/v1/chats/1/messages", json={"text": "next"},
                headers=headers,
            )  # fmt: skip
            got = await on_slow.until(message_event(nxt.json()["id"]))
            got_fresh = await fresh.until(message_event(nxt.json()["id"]))
            got_logged = await logged.until(message_event(nxt.json()["id"]))
    assert [type(e).__name__ for _, e in got] == ["MessageCreated"]  # no reset, no repeat
    assert got[0][0] is not None and got[0][0] > last_id
    assert got_fresh == got  # not X, which was committed before the stream opened
    assert got_logged == got  # nor before the login


async def test_a_logout_on_the_silent_node_still_ends_the_streams_elsewhere(
    cluster: Cluster,
) -> None:
    """Issue 13 item 6: ``session_ended`` is a logged event, so a logout answered by node0,
    which publishes nothing on the bus, still ends the session's streams on node1 and
    node2 (they read the event from the log), right after its frame; the user's other
    session hears of it and keeps its stream; the token is refused on every node."""
    await register(cluster.url(0), "quitter")
    sessions = [
        (await call(cluster.url(0), "POST", "/api/v1/auth/login",
                    json={"login": "quitter", "password": "password1"})).json()
        for _ in range(2)
    ]  # fmt: skip
    token, other = sessions[0]["token"], sessions[1]["token"]
    async with (
        SseReader(cluster.url(1), token) as on_b,
        SseReader(cluster.url(2), token) as on_c,
        SseReader(cluster.url(2), other) as stays,
    ):
        hello = (await call(cluster.url(2), "POST", "/api/v1/chats/1/messages", other,
                            {"text": "hello"})).json()["id"]  # fmt: skip
        for reader in (on_b, on_c, stays):  # every stream is live
            await reader.until(message_event(hello))
        assert (await call(cluster.url(0), "POST", "/api/v1/auth/logout", token)).status_code == 200
        for i in range(3):
            refused = await call(cluster.url(i), "GET", "/api/v1/auth/session", token)
            assert refused.status_code == 401, refused.text
        for reader in (on_b, on_c):
            ended = await reader.until(lambda e: isinstance(e, SessionEnded), timeout=WAIT)
            assert ended[-1][0] is not None, "a logged event: it has an id"
            with pytest.raises(ConnectionError):
                while True:
                    await reader.next_raw()
        told = await stays.until(lambda e: isinstance(e, SessionEnded), timeout=WAIT)
        assert told[-1][1] == SessionEnded(session_id=sessions[0]["session_id"])
        after = (await call(cluster.url(1), "POST", "/api/v1/chats/1/messages", other,
                            {"text": "still here"})).json()["id"]  # fmt: skip
        await stays.until(message_event(after))


async def test_a_resume_on_a_node_behind_a_late_batch_replays_no_text_edited_away(
    cluster: Cluster,
) -> None:
    """Issue 12 item 7 on a cluster: a message posted and edited on node1 (whose batches
    come 300 ms late) before bob's offline device resumes on node2, which has not got
    them yet: the resume gives the message with the text it has now, then the edit; the
    late batch does not bring the text edited away."""
    alice = (await register(cluster.url(1), "late-a"))["token"]
    tablet = await register(cluster.url(2), "late-b")
    offline_at = tablet["last_event_id"]
    headers = {"Authorization": f"Bearer {alice}"}
    async with httpx.AsyncClient(verify=tls_context(), timeout=30.0) as client:
        posted = await client.post(
            f"{cluster.url(1)}/api/v1/chats/1/messages", json={"text": "the code is 4711"},
            headers=headers,
        )  # fmt: skip
        assert posted.status_code == 200, posted.text
        mid = posted.json()["id"]
        edited = await client.post(
            f"{cluster.url(1)}/api/v1/messages/{mid}/edit", json={"text": "on paper"},
            headers=headers,
        )  # fmt: skip
        assert edited.status_code == 200, edited.text
        async with SseReader(cluster.url(2), tablet["token"], last_event_id=offline_at) as r:
            got = await r.until(lambda e: isinstance(e, MessageEdited) and e.message.id == mid)
    assert [e.message.text for _, e in got if isinstance(e, MessageCreated)] == ["on paper"]
    assert b"4711" not in b"".join(encode_event(e) for _, e in got)
