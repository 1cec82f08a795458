"""Nodes killed (SIGKILL) with work in flight: nothing acknowledged is lost, nothing is
delivered twice or out of order (issue 13 items 2 and 3).

Each test builds its own cluster: a node dies in it.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from messenger_client.api import tls_context
from messenger_protocol import MessageCreated
from tests.support import postgres
from tests.support.balancer import Balancer
from tests.support.cluster import Cluster
from tests.support.load import WAIT, Poster, check_streams, is_text
from tests.support.postgres import PgDatabase
from tests.support.wire import ResumingReader, SseReader, call, message_event, register

FAST = ["--rate-limit-messages", "1000000"]


@pytest.mark.parametrize("bus_kind", ["nats"], indirect=True)
async def test_killed_after_commit_before_publish(
    bus_kind: str, pg_database: PgDatabase, tmp_path: Path
) -> None:
    """Issue 13 item 2: node0 exits right after committing a send, before publishing it
    and before answering. The streams on node1 and node2 still get the message (their
    windows read it from the log), once and in order; the sender, unanswered, retries with
    the same ``client_id`` on node1 and gets the same message: exactly one is stored."""
    store = pg_database.new_store()
    cluster = Cluster(tmp_path, store, bus_kind, args=FAST,
                      node_env={0: {"MESSENGER_TEST_FAULTS": "exit_before_publish:1"}})  # fmt: skip
    await asyncio.to_thread(cluster.start)
    try:
        # registered through node1: node0's first batch is the send below
        tokens = [(await register(cluster.url(1), f"k{i}"))["token"] for i in range(3)]
        async with (
            SseReader(cluster.url(1), tokens[1]) as on_b,
            SseReader(cluster.url(2), tokens[2]) as on_c,
        ):
            hello = (await call(cluster.url(2), "POST", "/api/v1/chats/1/messages", tokens[0],
                                {"text": "hello"})).json()["id"]  # fmt: skip
            for reader in (on_b, on_c):
                await reader.until(message_event(hello))
            body = {"text": "the last words", "client_id": uuid.uuid4().hex}
            with pytest.raises(httpx.TransportError):  # node0 died before answering
                await call(cluster.url(0), "POST", "/api/v1/chats/1/messages", tokens[0], body)
            assert await asyncio.to_thread(cluster.nodes[0].wait_exit, 30) == 70
            got = [await reader.until(is_text("the last words"), timeout=WAIT)
                   for reader in (on_b, on_c)]  # fmt: skip
            retry = await call(cluster.url(1), "POST", "/api/v1/chats/1/messages", tokens[0], body)
            assert retry.status_code == 200, retry.text
            after = (await call(cluster.url(2), "POST", "/api/v1/chats/1/messages", tokens[0],
                                {"text": "after"})).json()["id"]  # fmt: skip
            for reader, first in zip((on_b, on_c), got, strict=True):
                events = first + await reader.until(message_event(after))
                ids = [seq for seq, _ in events if seq is not None]
                assert ids == sorted(set(ids)), "an id twice or out of order"
                texts = [e.message.text for _, e in events if isinstance(e, MessageCreated)]
                assert texts == ["the last words", "after"], "the retry posted nothing new"
        last = first[-1][1]
        assert isinstance(last, MessageCreated) and last.message.id == retry.json()["id"]
        rows = postgres.query(store, "SELECT count(*) FROM messages WHERE text = %s",
                              ["the last words"])  # fmt: skip
        assert rows == [(1,)]
    finally:
        cluster.stop()


@pytest.mark.parametrize("bus_kind", ["redis"], indirect=True)
async def test_a_node_killed_with_live_streams_under_load(
    bus_kind: str, pg_database: PgDatabase, tmp_path: Path
) -> None:
    """Issue 13 item 3: 6 streams and 6 posters through the balancer (as fast as the
    machine posts, ~200 messages/s on a quiet one); node1 is SIGKILLed mid-run. Its streams
    resume on the other nodes: no gap, no duplicate, no ``reset``; every acknowledged
    message is stored once (a send cut by the kill is retried with its ``client_id``)."""
    store = pg_database.new_store()
    cluster = Cluster(tmp_path, store, bus_kind, args=FAST)
    await asyncio.to_thread(cluster.start)
    balancer = Balancer([("127.0.0.1", node.port) for node in cluster.nodes])
    await balancer.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        tokens = [(await register(balancer.url, f"kill{i}"))["token"] for i in range(6)]
        readers = [ResumingReader(balancer.url, token) for token in tokens]
        tasks += [asyncio.create_task(r.run_until(is_text("end"), timeout=WAIT)) for r in readers]
        async with httpx.AsyncClient(verify=tls_context(), timeout=30.0) as client:
            start = Poster(balancer.url, tokens[0], "start")
            ready = await start.post(client, "ready")
            for reader in readers:
                await reader.seen(lambda e: isinstance(e, MessageCreated) and e.message.id
                                  == ready, timeout=WAIT)  # fmt: skip
            assert balancer.live(1) > 0, "node1 serves no stream: nothing to kill"
            posters = [Poster(balancer.url, tokens[i], f"p{i}") for i in range(6)]
            tasks += [asyncio.create_task(p.run()) for p in posters]
            for poster in posters:
                await poster.wait_for_more(20)
            await asyncio.to_thread(cluster.nodes[1].kill)
            balancer.down(1)  # the kernel's resets, and no new connection goes there
            for poster in posters:  # posting goes on through the two left
                await poster.wait_for_more(20)
            for poster in posters:
                poster.stop = True
            await asyncio.gather(*tasks[len(readers) :])
            end = await start.post(client, "end")
            await asyncio.gather(*tasks[: len(readers)])
    finally:
        for task in tasks:
            task.cancel()
        await balancer.close()
        cluster.stop()
    stored = check_streams(store, readers, posters, after=ready, extra={end})
    assert len(stored) >= 240
    assert sum(r.reconnects for r in readers) >= 1, "no stream was on the killed node"
