"""Scheduled messages with 3 nodes (issue 13 item 8): every node runs the scheduler; due
rows are claimed with ``FOR UPDATE SKIP LOCKED`` and posted in the claiming transaction,
so each is posted exactly once, and a cancel racing the send ends ``cancelled`` (nothing
posted) or ``conflict`` (posted once), never both."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from messenger_client.api import tls_context
from messenger_protocol import MessageCreated
from tests.support import postgres
from tests.support.cluster import Cluster
from tests.support.postgres import PgDatabase
from tests.support.wire import SseReader, register, send

T0 = 1_700_000_000.0
AUTHORS = 4
EACH = 25
RACED = 12
WAIT = 120.0


@pytest.mark.parametrize("bus_kind", ["redis"], indirect=True)
async def test_due_together_on_three_nodes_each_is_posted_once(
    bus_kind: str, pg_database: PgDatabase, tmp_path: Path
) -> None:
    """100 messages due at one instant, 3 nodes sending: each posted exactly once and
    delivered once; 12 more cancelled while they fall due: each cancelled xor posted."""
    clock = tmp_path / "clock"
    clock.write_text(repr(T0))
    store = pg_database.new_store()
    cluster = Cluster(
        tmp_path, store, bus_kind, clock_file=clock,
        args=["--rate-limit-messages", "100000"],
    )  # fmt: skip
    await asyncio.to_thread(cluster.start)
    try:
        tokens = [(await register(cluster.url(i), f"sched{i}"))["token"] for i in range(AUTHORS)]
        due = T0 + 60
        async with httpx.AsyncClient(verify=tls_context(), timeout=30.0) as client:

            async def schedule(n: int, text: str) -> int:
                resp = await client.post(
                    f"{cluster.url(n)}/api/v1/scheduled",
                    json={"chat_id": 1, "text": text, "send_at": due},
                    headers={"Authorization": f"Bearer {tokens[n % AUTHORS]}"},
                )
                assert resp.status_code == 200, resp.text
                scheduled_id: int = resp.json()["id"]
                return scheduled_id

            bulk: list[int] = []
            raced: list[int] = []
            for n in range(AUTHORS * EACH + RACED):  # the raced ones spread through the queue
                if n % 9 == 4 and len(raced) < RACED:
                    raced.append(await schedule(len(raced), f"raced {len(raced)}"))
                else:
                    bulk.append(await schedule(len(bulk), f"bulk {len(bulk)}"))
            assert len(bulk) == AUTHORS * EACH
            async with SseReader(cluster.url(2), tokens[0]) as stream:
                hello = (await send(cluster.url(2), tokens[0], "hello")).json()["id"]
                await stream.until(lambda e: isinstance(e, MessageCreated)
                                   and e.message.id == hello)  # fmt: skip

                async def cancel(n: int, scheduled_id: int) -> int:
                    resp = await client.delete(
                        f"{cluster.url(n + 1)}/api/v1/scheduled/{scheduled_id}",
                        headers={"Authorization": f"Bearer {tokens[n % AUTHORS]}"},
                    )
                    assert resp.status_code in (200, 409), resp.text
                    return resp.status_code

                cluster.nodes[0].set_time(due)  # one clock file: every node sees it
                first = await stream.until(
                    lambda e: isinstance(e, MessageCreated) and e.message.text.startswith("bulk")
                )  # sending has begun: some raced ones are sent, some not yet
                answers = await asyncio.gather(*(cancel(n, s) for n, s in enumerate(raced)))
                async with asyncio.timeout(WAIT):
                    while postgres.query(store, "SELECT count(*) FROM scheduled"  # noqa: ASYNC110
                                         " WHERE state = 'pending'")[0][0]:  # fmt: skip
                        await asyncio.sleep(0.1)  # paces the asking: the rows say when
                end = (await send(cluster.url(1), tokens[1], "end")).json()["id"]
                events = await stream.until(
                    lambda e: isinstance(e, MessageCreated) and e.message.id == end, timeout=WAIT
                )
    finally:
        cluster.stop()
    rows = postgres.query(
        store,
        "SELECT s.id, s.state, count(m.id) FROM scheduled s"
        " LEFT JOIN messages m ON m.scheduled_id = s.id GROUP BY s.id, s.state",
    )
    outcome = {row[0]: (row[1], row[2]) for row in rows}
    assert all(outcome[s] == ("sent", 1) for s in bulk), [outcome[s] for s in bulk]
    for scheduled_id, status in zip(raced, answers, strict=True):
        expected = ("cancelled", 0) if status == 200 else ("sent", 1)
        assert outcome[scheduled_id] == expected, (scheduled_id, status, outcome[scheduled_id])
    events = first + events
    delivered = [e.message.text for _, e in events if isinstance(e, MessageCreated)]
    posted = [f"bulk {n}" for n in range(AUTHORS * EACH)]
    posted += [f"raced {n}" for n, status in enumerate(answers) if status == 409]
    assert sorted(t for t in delivered if t != "end") == sorted(posted)  # once each
    ids = [seq for seq, _ in events if seq is not None]
    assert ids == sorted(set(ids))
