"""One node cut off from the bus, then the whole bus down: posting goes on, every stream
still gets everything.

Issue 13 item 4, with Redis and with NATS: node2 reaches the bus through one fault proxy,
nodes 0 and 1 through another. While node2 is cut off, its streams get the other nodes'
events from the database and the others get its events the same way; ``/readyz`` on
node2 says 503; after the cut heals it resubscribes and is ready again. Then both proxies
cut (the bus down for every node): no node is ready, posting goes on, the streams get
everything from the database; after the bus comes back, 0 gaps, 0 duplicates.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from messenger_client.api import tls_context
from messenger_protocol import MessageCreated
from tests.support.cluster import BUS_URLS, Cluster, host_port
from tests.support.faultproxy import FaultProxy
from tests.support.postgres import PgDatabase
from tests.support.wire import Numbered, SseReader, message_event, register

WAIT = 60.0


async def wait_ready(base: str, status: int) -> None:
    """Until ``/readyz`` answers ``status``, within the deadline. Readiness has no push
    notification, so it is asked again and again; the pause only paces the asking (the
    outcome never depends on its length)."""
    async with (
        httpx.AsyncClient(verify=tls_context(), timeout=10.0) as client,
        asyncio.timeout(WAIT),
    ):
        while (await client.get(f"{base}/readyz")).status_code != status:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_a_node_cut_off_from_the_bus_misses_nothing(
    bus_kind: str, pg_database: PgDatabase, tmp_path: Path
) -> None:
    """Issue 13 item 4: posting through every node goes on while node2 is cut off from the
    bus, and while the bus is down for all; streams on node0 and node2 get every post, in
    id order, during the cuts and after healing."""
    host, port = host_port(BUS_URLS[bus_kind], 6379 if bus_kind == "redis" else 4222)
    proxy = FaultProxy(bus_kind, host, port)
    others = FaultProxy(bus_kind, host, port)  # nodes 0 and 1
    await proxy.start()
    await others.start()
    cluster = Cluster(
        tmp_path, pg_database.new_store(), bus_kind,
        node_bus={0: others.url, 1: others.url, 2: proxy.url},
        args=["--rate-limit-messages", "100000"],
    )  # fmt: skip
    try:
        await asyncio.to_thread(cluster.start)
        await wait_ready(cluster.url(2), 200)
        tokens = [(await register(cluster.url(i), f"cut{i}"))["token"] for i in range(3)]
        async with (
            httpx.AsyncClient(verify=tls_context(), timeout=30.0) as client,
            SseReader(cluster.url(0), tokens[0]) as on_0,
            SseReader(cluster.url(2), tokens[2]) as on_2,
        ):

            async def post(i: int, text: str) -> int:
                resp = await client.post(
                    f"{cluster.url(i)}/api/v1/chats/1/messages",
                    json={"text": text},
                    headers={"Authorization": f"Bearer {tokens[i % 3]}"},
                )
                assert resp.status_code == 200, resp.text  # posting never stops
                message_id: int = resp.json()["id"]
                return message_id

            async def round_of(label: str) -> list[int]:
                return [await post(i, f"{label} {i}") for i in range(9)]

            async def heard(posted: list[int]) -> list[list[Numbered]]:
                """What each stream got until the last of ``posted``."""
                return [
                    await r.until(message_event(posted[-1]), timeout=WAIT) for r in (on_0, on_2)
                ]

            before = await round_of("before")
            for reader in (on_0, on_2):
                await reader.until(message_event(before[-1]), timeout=WAIT)

            proxy.cut()
            await wait_ready(cluster.url(2), 503)
            during = await round_of("during")
            got_during = await heard(during)

            proxy.heal()
            await wait_ready(cluster.url(2), 200)
            after = await round_of("after")
            got_after = await heard(after)

            proxy.cut()  # the whole bus down
            others.cut()
            for i in range(3):
                await wait_ready(cluster.url(i), 503)
            down = await round_of("bus down")
            got_down = await heard(down)

            proxy.heal()
            others.heal()
            for i in range(3):
                await wait_ready(cluster.url(i), 200)
            back = await round_of("bus back")
            got_back = await heard(back)
    finally:
        cluster.stop()
        await proxy.close()
        await others.close()
    posted = during + after + down + back
    for i, name in enumerate(("node0", "node2")):
        events = got_during[i] + got_after[i] + got_down[i] + got_back[i]
        ids = [seq for seq, _ in events if seq is not None]
        assert ids == sorted(set(ids)), f"stream on {name}: an id out of order or twice"
        got = [e.message.id for _, e in events if isinstance(e, MessageCreated)]
        assert sorted(got) == sorted(posted), f"stream on {name}: a gap"
    # every node really went through a proxy, and came back twice
    assert proxy.accepted >= 3 and others.accepted >= 4
