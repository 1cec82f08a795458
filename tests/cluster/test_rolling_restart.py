"""A rolling restart under load (issue 13 item 11): each of 3 nodes in turn gets SIGTERM,
drains and exits 0, and starts again, while clients post and read through a round-robin
balancer. No acknowledged message is lost, no stream sees a gap, a duplicate or a
``reset``: the clients see only reconnects (and retry a send whose connection broke, with
the same ``client_id``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from messenger_client.api import tls_context
from messenger_protocol import MessageCreated
from tests.support.balancer import Balancer
from tests.support.cluster import Cluster
from tests.support.load import Poster, check_streams, is_text
from tests.support.postgres import PgDatabase
from tests.support.wire import ResumingReader, register

READERS = 6
POSTERS = 3
GRACE = 10.0
WAIT = 180.0
"""Deadline for the whole run (a loaded 2-core machine; nothing waits on time)."""


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
        async with httpx.AsyncClient(verify=tls_context(), timeout=30.0) as client:
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
    check_streams(store, readers, posters, after=ready, extra={end})
    assert sum(r.reconnects for r in readers) >= 3, "no stream was moved by the restarts"
