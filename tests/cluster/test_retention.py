"""Disappearing messages with the retention leader killed mid-pass (issue 13 item 8).

A pass is one transaction under the ``retention`` job lock. Node 0 runs the first pass
alone and exits inside it after its 10th deletion (test fault ``exit_mid_retention:10``),
before the commit: nothing of it stays. The two nodes started next finish the work, one
pass at a time: every message is deleted exactly once and each recipient is told once.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from messenger_protocol import MessageCreated, MessageDeleted
from tests.support import postgres
from tests.support.cluster import Cluster
from tests.support.postgres import PgDatabase
from tests.support.wire import SseReader, message_event, register, send

T0 = 1_700_000_000.0
TTL = 60
COUNT = 30
KILL_AFTER = 10
WAIT = 60.0


def _count(store: str, sql: str) -> int:
    return int(postgres.query(store, sql)[0][0])


@pytest.mark.parametrize("bus_kind", ["redis"], indirect=True)
async def test_leader_killed_mid_pass_the_next_one_deletes_each_once(
    bus_kind: str, pg_database: PgDatabase, tmp_path: Path
) -> None:
    clock = tmp_path / "clock"
    clock.write_text(repr(T0))
    store = pg_database.new_store()
    cluster = Cluster(
        tmp_path, store, bus_kind, clock_file=clock,
        args=["--message-ttl", str(TTL), "--message-max-age", "3600",
              "--rate-limit-messages", "1000"],
        node_env={0: {"MESSENGER_TEST_FAULTS": f"exit_mid_retention:{KILL_AFTER}"}},
    )  # fmt: skip
    leader = cluster.nodes[0]
    await asyncio.to_thread(leader.start)  # alone: the first pass is its own
    try:
        alice = (await register(leader.url, "alice"))["token"]
        bob = (await register(leader.url, "bob"))["token"]
        async with SseReader(leader.url, alice), SseReader(leader.url, bob) as bob_events:
            ids = [(await send(leader.url, alice, f"gone {n}")).json()["id"] for n in range(COUNT)]
            seen = await bob_events.until(message_event(ids[-1]))  # both online: delivered
        resume_from = seen[-1][0]
        assert [e.message.id for _, e in seen if isinstance(e, MessageCreated)] == ids
        leader.set_time(T0 + TTL + 1)
        assert await asyncio.to_thread(leader.wait_exit, WAIT) == 70, leader.log()
        # the killed pass rolled back: nothing deleted, nothing told
        assert _count(store, "SELECT count(*) FROM messages") == COUNT
        assert _count(store, "SELECT count(*) FROM events WHERE name = 'message_deleted'") == 0
        await asyncio.gather(*(asyncio.to_thread(n.start) for n in cluster.nodes[1:]))
        async with asyncio.timeout(WAIT):
            while _count(store, "SELECT count(*) FROM messages"):  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # paces the asking: the rows say when
        async with SseReader(cluster.url(1), bob, last_event_id=resume_from) as again:
            end = (await send(cluster.url(2), alice, "end")).json()["id"]
            after = await again.until(message_event(end), timeout=WAIT)
    finally:
        cluster.stop()
    told = [e.message_id for _, e in after if isinstance(e, MessageDeleted)]
    assert sorted(told) == ids  # bob is told of each deletion once
    logged = postgres.query(store, "SELECT payload FROM events WHERE name = 'message_deleted'")
    deleted = sorted(json.loads(bytes(p))["message_id"] for (p,) in logged)
    assert deleted == ids  # one chat-wide deletion per message in the log
    left = postgres.query(store, "SELECT message_id FROM expiring")
    assert left == [(end,)]  # nothing left of the pass's work (only "end" is to expire)
