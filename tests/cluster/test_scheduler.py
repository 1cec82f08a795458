"""Scheduled messages with 3 nodes (issue 13 item 8): every node runs the scheduler; due
rows are claimed with ``FOR UPDATE SKIP LOCKED`` and posted in the claiming transaction,
so each is posted exactly once, and a cancel racing the send ends ``cancelled`` (nothing
posted) or ``conflict`` (posted once), never both.

Node 0 has a clock of its own and sees the messages fall due first. It sends one batch
(committed), claims the next and exits inside it after its 25th due message was posted
(test fault ``exit_mid_schedule:25``), before that batch's commit: its claims and posts
roll back and the two other nodes, given the time meanwhile, post those rows once."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from messenger_client.api import tls_context
from messenger_protocol import MessageCreated
from messenger_server.services.scheduler import SEND_BATCH
from tests.support import postgres
from tests.support.cluster import Cluster
from tests.support.postgres import PgDatabase
from tests.support.wire import SseReader, register, send

T0 = 1_700_000_000.0
AUTHORS = 4
EACH = 25
RACED = 12
WAIT = 120.0
KILL_AFTER = SEND_BATCH + 5
"""Node 0 exits after this many due messages: 5 into its second batch, uncommitted."""


@pytest.mark.parametrize("bus_kind", ["redis"], indirect=True)
async def test_due_together_on_three_nodes_each_is_posted_once(
    bus_kind: str, pg_database: PgDatabase, tmp_path: Path
) -> None:
    """100 messages due at one instant, 3 nodes sending, one killed mid-pass: each posted
    exactly once and delivered once; 12 more cancelled while they fall due: each
    cancelled xor posted."""
    clock = tmp_path / "clock"
    clock.write_text(repr(T0))
    store = pg_database.new_store()
    cluster = Cluster(
        tmp_path, store, bus_kind, clock_file=clock,
        args=["--rate-limit-messages", "100000"],
        node_env={0: {"MESSENGER_TEST_FAULTS": f"exit_mid_schedule:{KILL_AFTER}"}},
    )  # fmt: skip
    doomed = cluster.nodes[0]
    doomed.clock_file = tmp_path / "clock0"  # its own: it alone sees the time first
    doomed.clock_file.write_text(repr(T0))
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
                    resp = await client.delete(  # on nodes 1 and 2: node 0 is going
                        f"{cluster.url(1 + n % 2)}/api/v1/scheduled/{scheduled_id}",
                        headers={"Authorization": f"Bearer {tokens[n % AUTHORS]}"},
                    )
                    assert resp.status_code in (200, 409), resp.text
                    return resp.status_code

                doomed.set_time(due)
                first = await stream.until(
                    lambda e: isinstance(e, MessageCreated) and e.message.text.startswith("bulk")
                )  # node 0's first batch is in: some raced ones are sent, some not yet
                cluster.nodes[1].set_time(due)  # the shared clock file: nodes 1 and 2
                answers = await asyncio.gather(*(cancel(n, s) for n, s in enumerate(raced)))
                code = await asyncio.to_thread(doomed.wait_exit, WAIT)
                assert code == 70, doomed.log()
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
    log = doomed.log_path.read_text(errors="replace")
    assert f"exiting in a scheduler pass after {KILL_AFTER} due messages" in log, log[-3000:]
    committed = re.findall(r"scheduled #\d+ of \S+ sent", log)
    assert len(committed) == SEND_BATCH, log[-3000:]  # its second batch never committed
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
