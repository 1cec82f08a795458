"""Singleton jobs on PostgreSQL: a pass runs on one node at a time (``try_job_lock``)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from messenger_protocol import GENERAL_CHAT_ID, SendMessage
from messenger_server.storage import Tx
from messenger_server.storage.postgres import PostgresStore
from tests.support.postgres import PgDatabase

from .conftest import Harness, ManualClock, make_app


async def test_retention_skips_its_pass_while_another_node_runs_one(
    tmp_path: Path, pg_database: PgDatabase
) -> None:
    """Issue 10 item 5: while another node holds the retention lock, this node's pass
    deletes nothing; the next pass, with the lock free, deletes the expired message."""
    url = pg_database.new_store()
    clock = ManualClock()
    app, hub = make_app(tmp_path, clock, store=url, message_ttl=3600, message_max_age=36000)
    await app.start()
    await app.retention.close()  # the test drives the passes
    other = PostgresStore(url)  # a second node on the same database
    await other.open()
    held, release = threading.Event(), threading.Event()
    try:
        alice = await Harness(app, clock, hub).user("alice")
        message = await app.messages.post(alice, GENERAL_CHAT_ID, SendMessage(text="brief"))
        clock.advance(36000)

        def hold(tx: Tx) -> bool:
            took = tx.try_job_lock("retention")
            held.set()
            release.wait(10)
            return took

        holding = asyncio.ensure_future(other.write(hold))
        assert await asyncio.to_thread(held.wait, 10)
        assert await app.retention.expire() is False
        assert await app.store.read(lambda tx: tx.message(message.id)) is not None
        release.set()
        assert await holding is True
        await app.retention.expire()
        assert await app.store.read(lambda tx: tx.message(message.id)) is None
    finally:
        release.set()
        await other.close()
        await app.close()
