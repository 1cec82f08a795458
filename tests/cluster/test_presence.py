"""Presence over several nodes: live streams are rows with their node's lease.

Issue 13 item 9, once with Redis and once with NATS. The nodes here renew a 3 s lease
(``--node-lease 5``) so a killed node's users go offline 5 s after its last renewal.
Node 0 writes its online spans (who got a message live, for disappearing messages)
0.3 s late (test fault ``delay_spans_ms``); the clocked test comes last.
"""

from __future__ import annotations

import asyncio
import contextlib

from messenger_protocol import MessageCreated, MessageDeleted, Presence, limits
from tests.support.cluster import Cluster
from tests.support.wire import WAIT, SseReader, call, register, send

CLUSTER_ARGS = ["--node-lease", "5"]
CLUSTER_NODE_ENV = {0: {"MESSENGER_TEST_FAULTS": "delay_spans_ms:300"}}
CLUSTER_CLOCK = True
T0 = 1_700_000_000.0


async def presence_of(reader: SseReader, login: str, online: bool) -> list[Presence]:
    """Every presence event up to and including ``login`` going ``online``."""
    seen: list[Presence] = []
    async with asyncio.timeout(WAIT):
        while True:
            _, event = await reader.next(skip=())
            if isinstance(event, Presence):
                seen.append(event)
                if event.login == login and event.online is online:
                    return seen


async def test_two_devices_on_two_nodes_and_one_offline_after_the_lease(cluster: Cluster) -> None:
    """Issue 13 item 9: alice's phone streams through node 0, her laptop through node 1.
    She is online once; the phone going is no offline (the laptop is still there); node 1
    killed: one offline event, after its lease, told by a node that is still up."""
    watcher = (await register(cluster.url(2), "eve"))["token"]
    phone = (await register(cluster.url(0), "alice"))["token"]
    laptop = (await call(cluster.url(1), "POST", "/api/v1/auth/login", None,
                         {"login": "alice", "password": "password1"})).json()["token"]  # fmt: skip
    marks = [(await register(cluster.url(0), f"mark{i}"))["token"] for i in range(2)]
    async with SseReader(cluster.url(2), watcher) as eve:
        on_phone = await SseReader(cluster.url(0), phone).__aenter__()  # closed below
        seen = await presence_of(eve, "alice", True)
        assert [p for p in seen if p.login == "alice"] == [Presence(login="alice", online=True)]
        async with SseReader(cluster.url(1), laptop), contextlib.AsyncExitStack() as stack:
            # a barrier: node 0 writes its presence units in order, so once mark0 is
            # told online, the laptop's stream (opened before) is written too
            await stack.enter_async_context(SseReader(cluster.url(1), marks[0]))
            seen = await presence_of(eve, "mark0", True)
            assert not [p for p in seen if p.login == "alice"], "the second device: no event"
            answer = await call(cluster.url(0), "GET", "/api/v1/users/alice", watcher)
            assert answer.json()["online"] is True
            await on_phone.close()  # the phone goes; the laptop on node 1 stays
            await stack.enter_async_context(SseReader(cluster.url(0), marks[1]))
            seen = await presence_of(eve, "mark1", True)
            assert not [p for p in seen if p.login == "alice"], "alice is still on her laptop"
            cluster.nodes[1].kill()  # with the laptop's stream (and mark0's) on it
            seen = await presence_of(eve, "alice", False)
        gone = [p for p in seen if p.login == "alice"]
        assert len(gone) == 1 and gone[0].last_seen is not None
        assert {p.login for p in seen if not p.online} <= {"alice", "mark0"}
        # once more a barrier: a stream opened after the offline is told after it
        async with SseReader(cluster.url(0), marks[1]), SseReader(cluster.url(2), phone):
            seen = await presence_of(eve, "alice", True)
        assert not [p for p in seen if p.login == "alice" and not p.online], "told once"


async def test_a_reader_is_online_for_a_post_on_another_node_once_the_stream_is_open(
    cluster: Cluster,
) -> None:
    """The online-span window: carol's stream opens on node 0, whose span writes are 0.3 s
    late, and alice posts on node 2 the moment it is open. Carol was online
    (the span is committed before the stream's head goes out), so the message disappears
    for her an hour after it was posted; counted offline, she would keep it until an
    hour after she next read it. (Node 1 was killed by the test before.)"""
    cluster.set_time(T0)
    alice = (await register(cluster.url(2), "alice2"))["token"]
    carol = (await register(cluster.url(0), "carol2"))["token"]
    async with SseReader(cluster.url(0), carol) as carol_events:
        message = (await send(cluster.url(2), alice, "gone in an hour")).json()
        _, created = await carol_events.next()
        assert isinstance(created, MessageCreated) and created.message.id == message["id"]
        cluster.set_time(T0 + limits.MESSAGE_TTL_SECONDS)
        _, gone = await carol_events.next()
        assert gone == MessageDeleted(chat_id=1, message_id=message["id"])
