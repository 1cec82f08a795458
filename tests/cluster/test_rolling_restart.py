"""A rolling restart under load (issue 13 item 11): each of 3 nodes in turn gets SIGTERM,
drains and exits 0, and starts again, while clients post and read through a round-robin
balancer. No acknowledged message is lost, no stream sees a gap, a duplicate or a
``reset``: the clients see only reconnects (and retry a send whose connection broke, with
the same ``client_id``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from messenger_protocol import Event, MessageCreated, Reset
from tests.support import postgres
from tests.support.balancer import Balancer
from tests.support.cluster import Cluster
from tests.support.postgres import PgDatabase
from tests.support.wire import ResumingReader, register

READERS = 6
POSTERS = 3
GRACE = 10.0
WAIT = 180.0
"""Deadline for the whole run (a loaded 2-core machine; nothing waits on time)."""


def is_text(text: str) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, MessageCreated) and e.message.text == text


class Poster:
    """Posts to the general chat through the balancer, one message after another, each
    retried with its ``client_id`` until answered, as the client's outbox does."""

    def __init__(self, base: str, token: str, name: str) -> None:
        self.base = base
        self.token = token
        self.name = name
        self.acked: list[int] = []
        self.retries = 0
        self.refusals: list[str] = []
        self.stop = False
        self.progress = asyncio.Condition()

    async def post(self, client: httpx.AsyncClient, text: str) -> int:
        body = {"text": text, "client_id": uuid.uuid4().hex}
        while True:
            try:
                resp = await client.post(
                    f"{self.base}/api/v1/chats/1/messages", json=body,
                    headers={"Authorization": f"Bearer {self.token}"},
                )  # fmt: skip
            except httpx.TransportError:
                self.retries += 1  # the connection broke: the same send again
                continue
            if resp.status_code != 200:
                self.refusals.append(resp.text)
                raise AssertionError(f"{self.name}: {resp.status_code} {resp.text}")
            message_id: int = resp.json()["id"]
            return message_id

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=30.0) as client:
            n = 0
            while not self.stop:
                self.acked.append(await self.post(client, f"{self.name}-{n}"))
                n += 1
                async with self.progress:
                    self.progress.notify_all()

    async def wait_for_more(self, count: int) -> None:
        """Until ``count`` more sends than now are answered."""
        target = len(self.acked) + count
        async with asyncio.timeout(WAIT), self.progress:
            await self.progress.wait_for(lambda: len(self.acked) >= target)


@pytest.mark.parametrize("bus_kind", ["redis"], indirect=True)
async def test_a_rolling_restart_under_load_loses_nothing(
    bus_kind: str, pg_database: PgDatabase, tmp_path: Path
) -> None:
    """Issue 13 item 11: SIGTERM each node in turn under a steady post load; each exits 0
    within the grace and comes back; every acknowledged message is stored once and reaches
    every stream once, in id order, with no reset."""
    store = pg_database.new_store()
    cluster = Cluster(
        tmp_path, store, bus_kind,
        args=["--rate-limit-messages", "1000000", "--shutdown-grace", str(GRACE)],
    )  # fmt: skip
    await asyncio.to_thread(cluster.start)
    balancer = Balancer([("127.0.0.1", node.port) for node in cluster.nodes])
    await balancer.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        tokens = [(await register(balancer.url, f"roll{i}"))["token"] for i in range(READERS)]
        readers = [ResumingReader(balancer.url, token) for token in tokens]
        tasks += [asyncio.create_task(r.run_until(is_text("end"), timeout=WAIT)) for r in readers]
        async with httpx.AsyncClient(timeout=30.0) as client:
            start = Poster(balancer.url, tokens[0], "start")
            ready = await start.post(client, "ready")
            for reader in readers:  # every stream is live
                await reader.seen(lambda e: isinstance(e, MessageCreated) and e.message.id
                                  == ready, timeout=WAIT)  # fmt: skip
            posters = [Poster(balancer.url, tokens[i], f"p{i}") for i in range(POSTERS)]
            tasks += [asyncio.create_task(p.run()) for p in posters]
            for poster in posters:
                await poster.wait_for_more(5)
            exits: list[tuple[int | None, float]] = []
            for i, node in enumerate(cluster.nodes):
                assert balancer.live(i) > 0, f"node{i} serves nobody: nothing to drain"
                began = time.monotonic()
                code = await asyncio.to_thread(node.stop, GRACE + 20)
                exits.append((code, time.monotonic() - began))
                for poster in posters:  # posting goes on while the node is away
                    await poster.wait_for_more(5)
                await asyncio.to_thread(node.start)
                for poster in posters:
                    await poster.wait_for_more(5)
            for poster in posters:
                poster.stop = True
            await asyncio.gather(*tasks[READERS:])
            end = await start.post(client, "end")
            await asyncio.gather(*tasks[:READERS])
    finally:
        for task in tasks:
            task.cancel()
        await balancer.close()
        cluster.stop()
    assert [code for code, _ in exits] == [0, 0, 0], cluster.logs()
    assert all(took < GRACE + 5 for _, took in exits), exits
    acked = {m for p in posters for m in p.acked}
    assert len(acked) == sum(len(p.acked) for p in posters)  # each send answered once
    stored = {
        row[0] for row in postgres.query(store, "SELECT id FROM messages WHERE id > %s", [ready])
    }
    assert stored == acked | {end}, "an acknowledged message is not stored, or one twice"
    for i, reader in enumerate(readers):
        ids = [seq for seq, _ in reader.events if seq is not None]
        assert ids == sorted(set(ids)), f"reader {i}: an id twice or out of order"
        assert not [e for _, e in reader.events if isinstance(e, Reset)], f"reader {i}: reset"
        got = [e.message.id for _, e in reader.events if isinstance(e, MessageCreated)]
        assert len(got) == len(set(got)), f"reader {i}: a message twice"
        assert {m for m in got if m > ready} == stored, f"reader {i}: a gap"
        assert reader.refusals == [], f"reader {i}: {reader.refusals}"
    assert sum(r.reconnects for r in readers) >= 3, "no stream was moved by the restarts"
