"""``--bus postgres``: LISTEN/NOTIFY on the store's database, no Redis or NATS (issue 13).

A batch that fits a notification travels in it; a bigger one (a long message of wide
characters) rings the doorbell and every node reads it from the log. Either way each
stream on any node gets every message it may see, once, in id order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from messenger_client.api import tls_context
from messenger_protocol import MessageCreated, Readiness, decode
from tests.support.cluster import Cluster
from tests.support.postgres import PgDatabase
from tests.support.wire import SseReader, call, message_event, register

MESSAGES = 60
WIDE = "ж" * 4000
"""The longest message text, 8000 bytes in UTF-8: its batch cannot be a notification."""


async def test_nodes_on_the_postgres_bus_deliver_everything_once_in_order(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    cluster = Cluster(tmp_path, pg_database.new_store(), "postgres",
                      args=["--rate-limit-messages", "100000"])  # fmt: skip
    await asyncio.to_thread(cluster.start)
    try:
        for i, node in enumerate(cluster.nodes):
            resp = await call(node.url, "GET", "/readyz")
            assert resp.status_code == 200, resp.text
            assert decode(Readiness, resp.content) == Readiness(node=f"node{i}", bus="postgres")
        tokens = [(await register(cluster.url(i), f"pgbus{i}"))["token"] for i in range(3)]
        readers = [SseReader(cluster.url(i), tokens[i]) for i in range(3)]
        for reader in readers:
            await reader.__aenter__()
        try:
            async with httpx.AsyncClient(verify=tls_context(), timeout=30.0) as client:

                async def post(i: int, text: str) -> int:
                    resp = await client.post(
                        f"{cluster.url(i)}/api/v1/chats/1/messages", json={"text": text},
                        headers={"Authorization": f"Bearer {tokens[i % 3]}"},
                    )  # fmt: skip
                    assert resp.status_code == 200, resp.text
                    message_id: int = resp.json()["id"]
                    return message_id

                ready = await post(0, "ready")
                for reader in readers:
                    await reader.until(message_event(ready))
                posted = await asyncio.gather(
                    *(post(i, WIDE if i % 20 == 7 else f"m{i}") for i in range(MESSAGES))
                )
                end = await post(1, "end")
                received = [await r.until(message_event(end), timeout=120.0) for r in readers]
        finally:
            for reader in readers:
                await reader.close()
    finally:
        cluster.stop()
    for i, events in enumerate(received):
        ids = [seq for seq, _ in events if seq is not None]
        assert ids == sorted(set(ids)), f"stream on node{i}: an id twice or out of order"
        got = [e.message.id for _, e in events if isinstance(e, MessageCreated)]
        assert sorted(got) == sorted([*posted, end]), f"stream on node{i}: a gap or a duplicate"
        assert sum(1 for _, e in events if isinstance(e, MessageCreated)
                   and e.message.text == WIDE) == 3  # fmt: skip
