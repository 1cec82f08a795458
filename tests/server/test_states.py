"""The transition tables, and the storage guard that keeps every path to them."""

from __future__ import annotations

from pathlib import Path

import pytest

from messenger_server.states import COMPLAINT, SCHEDULED, Transitions, allowed, sources
from messenger_server.storage import SqliteStore, Tx
from messenger_server.storage.moderation import moderation_queries
from messenger_server.storage.scheduler import scheduled_queries


@pytest.mark.parametrize("table", [SCHEDULED, COMPLAINT], ids=["scheduled", "complaint"])
def test_every_target_is_a_state_and_final_states_stay(table: Transitions) -> None:
    for targets in table.values():
        assert targets <= table.keys()
    finals = [s for s, targets in table.items() if not targets]
    assert finals and all(not allowed(table, f, t) for f in finals for t in table)


def test_a_scheduled_message_leaves_pending_once() -> None:
    assert sources(SCHEDULED, "sent") == ("pending",)
    assert allowed(SCHEDULED, "pending", "cancelled")
    assert not allowed(SCHEDULED, "sent", "cancelled")
    assert sources(SCHEDULED, "pending") == ()


async def test_storage_moves_a_row_only_as_the_table_allows(tmp_path: Path) -> None:
    store = SqliteStore.in_dir(tmp_path)
    await store.open()
    try:

        def setup(tx: Tx) -> tuple[int, int]:
            author = tx.insert_user("alice", "x", 0.0, False)
            target = tx.insert_user("bob", "x", 0.0, False)
            assert author is not None and target is not None
            scheduled_id = scheduled_queries(tx).insert(author, 1, "hi", 10.0, 0.0)
            complaint_id = moderation_queries(tx).insert_complaint(
                author, target, "spam", None, 0.0, counted=True
            )
            return scheduled_id, complaint_id

        scheduled_id, complaint_id = await store.write(setup)

        def race(tx: Tx) -> list[bool]:
            queries = scheduled_queries(tx)
            # the scheduler sends it, then its author's cancel arrives: refused
            return [queries.move(scheduled_id, "sent"), queries.move(scheduled_id, "cancelled")]

        assert await store.write(race) == [True, False]
        item = await store.read(lambda tx: scheduled_queries(tx).get(scheduled_id))
        assert item is not None and item.state == "sent"
        with pytest.raises(ValueError, match="pending"):
            await store.write(lambda tx: scheduled_queries(tx).move(scheduled_id, "pending"))

        def dismiss_twice(tx: Tx) -> list[bool]:
            queries = moderation_queries(tx)
            return [queries.dismiss_complaint(complaint_id, "root", 1.0) for _ in range(2)]

        assert await store.write(dismiss_twice) == [True, False]
    finally:
        await store.close()
