"""The ordered event window: seqs reach the hub strictly in order; gaps are read from the log.

Issue 13 item 5 (the window's part): a late or lost batch never lets a higher id out
before a lower one; what the bus lost is read from the database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from messenger_protocol import GENERAL_CHAT_ID, sse_frame
from messenger_server.bus import BusEvent
from messenger_server.storage import SqliteStore, Tx
from messenger_server.window import EventWindow

WAIT = 10.0


class RecordingHub:
    """Records what the window hands on, and wakes a waiter at a count."""

    def __init__(self) -> None:
        self.published: list[tuple[bytes, list[int] | None]] = []
        self.changed = asyncio.Event()

    def publish(self, frame: bytes, user_ids: Iterable[int] | None) -> None:
        self.published.append((frame, None if user_ids is None else list(user_ids)))
        self.changed.set()

    async def wait_count(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.published) < count:
                self.changed.clear()
                await self.changed.wait()

    def seqs(self) -> list[int]:
        return [int(frame.split(b"\n", 1)[0][4:]) for frame, _ in self.published]


def event(seq: int, text: str = "x") -> BusEvent:
    return BusEvent(seq, sse_frame(b'{"t":"' + text.encode() + b'"}', "message", seq), None)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore.in_dir(tmp_path)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def log_events(store: SqliteStore, count: int) -> list[int]:
    """Append ``count`` general-chat events to the log (as another node would)."""

    def unit(tx: Tx) -> list[int]:
        return [
            tx.append_event("message", b'{"n":%d}' % i, GENERAL_CHAT_ID, None, 1.0).seq
            for i in range(count)
        ]

    return await store.write(unit)


def make_window(store: SqliteStore, hub: RecordingHub) -> EventWindow:
    return EventWindow(hub, store, gap_wait=0.05)  # type: ignore[arg-type]


async def test_out_of_order_offers_reach_the_hub_in_seq_order(store: SqliteStore) -> None:
    hub = RecordingHub()
    window = make_window(store, hub)
    await window.start()
    seqs = await log_events(store, 3)
    window.offer([event(seqs[2])])
    window.offer([event(seqs[1])])
    assert hub.published == []  # 3 and 2 wait for 1
    window.offer([event(seqs[0]), event(seqs[1])])  # a duplicate is passed over
    assert hub.seqs() == seqs
    assert window.watermark == seqs[2]
    window.offer([event(seqs[0])])  # already delivered: dropped
    assert hub.seqs() == seqs
    await window.close()


async def test_a_gap_is_read_from_the_log_in_order(store: SqliteStore) -> None:
    """A batch lost on the bus: the events after it wait, the missing ones come from the log."""
    hub = RecordingHub()
    window = make_window(store, hub)
    await window.start()
    seqs = await log_events(store, 4)
    window.offer([event(seqs[3], "bus copy")])  # 1..3 never arrive on the bus
    await hub.wait_count(4)
    assert hub.seqs() == seqs
    frames = [frame for frame, _ in hub.published]
    assert frames[0] == sse_frame(b'{"n":0}', "message", seqs[0])  # read from the log
    assert frames[3] == event(seqs[3], "bus copy").frame  # the bus's copy wins
    assert window.repaired == 3
    await window.close()


async def test_a_deleted_event_is_passed_over(store: SqliteStore, tmp_path: Path) -> None:
    hub = RecordingHub()
    window = make_window(store, hub)
    await window.start()
    seqs = await log_events(store, 3)
    await store.sync()
    with sqlite3.connect(tmp_path / "messenger.db") as db:
        db.execute("DELETE FROM events WHERE seq = ?", (seqs[1],))
    window.offer([event(seqs[0]), event(seqs[2])])
    await hub.wait_count(2)
    assert hub.seqs() == [seqs[0], seqs[2]]
    assert window.watermark == seqs[2]
    await window.close()


async def test_wait_for_repairs_up_to_a_seq_seen_elsewhere(store: SqliteStore) -> None:
    """A client resumes with an id from a faster node: this node catches up first."""
    hub = RecordingHub()
    window = make_window(store, hub)
    await window.start()
    seqs = await log_events(store, 2)
    assert await window.wait_for(seqs[1], WAIT)
    assert hub.seqs() == seqs
    assert not await window.wait_for(seqs[1] + 5, 0.2)  # never committed: not waited for long
    await window.close()
