"""One node cut off from PostgreSQL (issue 13 item 4, its last slice), with Redis.

Node 1 reaches the database through a fault proxy, node 0 directly. Cut off, node 1
answers every write ``503`` (nothing acknowledged), ``/readyz`` says 503, and after
``STORE_LOST`` seconds without an answer it ends its live streams; their clients resume
on node 0 with ``Last-Event-ID`` and miss nothing of what node 0 accepted meanwhile.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from messenger_protocol import MessageCreated
from tests.cluster.test_bus_outage import wait_ready
from tests.support.cluster import Cluster, require_bus
from tests.support.faultproxy import FaultProxy
from tests.support.postgres import PgDatabase
from tests.support.wire import WAIT, SseReader, call, message_event, register, send


async def test_a_node_cut_off_from_postgres_acknowledges_nothing_and_its_clients_move(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    require_bus("redis")
    store = pg_database.new_store()
    proxy = FaultProxy("postgresql", "127.0.0.1", 5432)
    await proxy.start()
    through_proxy = store.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/", 1)
    assert through_proxy != store
    cluster = Cluster(tmp_path, store, "redis", size=2, node_store={1: through_proxy})
    try:
        await asyncio.to_thread(cluster.start)  # the proxy runs on this loop
        alice = (await register(cluster.url(0), "alice"))["token"]
        bob = (await register(cluster.url(1), "bob"))["token"]
        async with SseReader(cluster.url(1), alice) as on_1:
            before = (await send(cluster.url(1), bob, "before")).json()["id"]
            last_id = (await on_1.until(message_event(before), timeout=WAIT))[-1][0]
            proxy.cut()
            refused = await send(cluster.url(1), bob, "never stored")
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "unavailable"
            await wait_ready(cluster.url(1), 503)
            during = [(await send(cluster.url(0), alice, f"during {i}")).json()["id"]
                      for i in range(3)]  # fmt: skip
            with pytest.raises(ConnectionError):  # node 1 ends the stream
                while True:
                    await on_1.next_raw()
        async with SseReader(cluster.url(0), alice, last_event_id=last_id) as on_0:
            got = await on_0.until(message_event(during[-1]), timeout=WAIT)
        texts = [e.message.text for _, e in got if isinstance(e, MessageCreated)]
        assert texts == ["during 0", "during 1", "during 2"]  # all of them, nothing refused
        proxy.heal()
        await wait_ready(cluster.url(1), 200)
        page = await call(cluster.url(1), "GET", "/api/v1/chats/1/messages", bob)
        stored = [m["text"] for m in page.json()["messages"]]
        assert stored == ["before", "during 0", "during 1", "during 2"]
    finally:
        cluster.stop()
        await proxy.close()
