"""Singleton jobs on PostgreSQL: a pass runs on one node at a time (``try_job_lock``)."""

from __future__ import annotations

from pathlib import Path

import psycopg

from messenger_protocol import GENERAL_CHAT_ID, SendMessage
from messenger_server.storage.postgres import JOB_LOCK_SPACE
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
    try:
        alice = await Harness(app, clock, hub).user("alice")
        message = await app.messages.post(alice, GENERAL_CHAT_ID, SendMessage(text="brief"))
        clock.advance(36000)
        # Another node's pass holds the lock in its open transaction. It is a bare
        # connection here: two stores' write groups on one schema take turns, so a second
        # store's group could not stay open while this node's pass runs.
        with psycopg.connect(url) as other_node:
            other_node.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema() || ':' || %s))",
                (JOB_LOCK_SPACE, "retention"),
            )
            assert await app.retention.expire() is False
            assert await app.store.read(lambda tx: tx.message(message.id)) is not None
            other_node.rollback()  # the other node's pass ends
        await app.retention.expire()
        assert await app.store.read(lambda tx: tx.message(message.id)) is None
    finally:
        await app.close()
