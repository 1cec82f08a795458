"""The ordered event window of a node: events go to the streams strictly in seq order.

Seqs are dense and in commit order (the store numbers them at commit), so a node knows
exactly what it is missing. :meth:`EventWindow.offer` takes committed events (its own
batches at once, other nodes' from the bus) and hands seq ``s`` to the hub only after
every seq below it: a stream never sees a higher id before a lower one, whichever node
wrote them. A gap (a batch lost on the bus, a node killed between commit and publish, a
late publish) is repaired from the database after :data:`GAP_WAIT`: the missing range is
read from the event log (a seq with no row there was deleted and is passed over). A
periodic tick reads the newest seq to catch a lost *last* batch; while the bus is down it
ticks faster, so delivery goes on through the database.

With one node (the local bus) batches always arrive in order and repair never fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from messenger_protocol import GENERAL_CHAT_ID, SessionEnded, decode_event, event_name, sse_frame

from .bus import BusEvent
from .hub import Hub
from .storage import Store, Tx
from .storage.retention import retention_queries

__all__ = [
    "GAP_WAIT",
    "REPAIR_PAGE",
    "STORE_LOST",
    "TICK",
    "TICK_DISCONNECTED",
    "EventWindow",
    "ended_sessions",
]

log = logging.getLogger(__name__)

GAP_WAIT = 0.1
"""Seconds a gap may stay open before it is read from the database."""
TICK = 1.0
"""Seconds between checks of the newest seq (a lost last batch shows up here)."""
TICK_DISCONNECTED = 0.1
"""The tick while the bus is down: delivery goes on through the database."""
STORE_LOST = 5.0
"""Seconds without an answer from the database after which a node of several ends its
live streams: it can neither write for their clients nor read what other nodes commit,
so they resume on another node (``/readyz`` fails too; the balancer sends none back)."""
REPAIR_PAGE = 500
"""Events read per repair query."""


_SESSION_ENDED = event_name(SessionEnded(session_id=""))


def ended_sessions(name: str, payload: bytes) -> list[str]:
    """The sessions a logged event ends: a ``session_ended`` event ends its session's
    streams on every node, once it is delivered there (whether by the bus or a repair)."""
    if name != _SESSION_ENDED:
        return []
    event = decode_event(payload)
    return [event.session_id] if isinstance(event, SessionEnded) else []


class EventWindow:
    """Puts committed events in seq order for this node's hub; repairs gaps from the log."""

    def __init__(
        self,
        hub: Hub,
        store: Store,
        *,
        gap_wait: float = GAP_WAIT,
        tick: float | None = None,
        connected: Callable[[], bool] = lambda: True,
    ) -> None:
        self.hub = hub
        self.store = store
        self.gap_wait = gap_wait
        self.tick = tick
        """Seconds between checks of the newest seq (None: no tick, one node)."""
        self._connected = connected
        self.watermark = 0
        """Every seq up to here has gone to the hub (or was deleted)."""
        self._pending: dict[int, BusEvent] = {}
        self._gap_timer: asyncio.TimerHandle | None = None
        self._repair_task: asyncio.Task[None] | None = None
        self._again = False
        self._tick_task: asyncio.Task[None] | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.repairs = 0
        """Repairs run (reads of the event log for missing seqs)."""
        self.repaired = 0
        """Events delivered from the database instead of the bus."""

    async def start(self) -> None:
        """Start at the newest committed seq; start the tick."""
        self.watermark = await self.store.read(lambda tx: tx.event_max())
        if self.tick is not None:
            self._tick_task = asyncio.create_task(self._ticking(), name="event-window-tick")

    async def close(self) -> None:
        """Stop the tick and any repair."""
        if self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None
        for task in (self._tick_task, self._repair_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._tick_task = self._repair_task = None

    def offer(self, events: Iterable[BusEvent]) -> None:
        """Committed events, in any order, from this node or another; delivered in order."""
        watermark, pending = self.watermark, self._pending
        for event in events:
            if event.seq > watermark:
                pending.setdefault(event.seq, event)
        self._drain()
        if self._pending and self._gap_timer is None and self._repair_task is None:
            loop = asyncio.get_running_loop()
            self._gap_timer = loop.call_later(self.gap_wait, self._gap_expired)

    def _drain(self) -> None:
        pending = self._pending
        if not pending:
            return
        seq = self.watermark
        while (event := pending.pop(seq + 1, None)) is not None:
            self._deliver(event)
            seq += 1
        self._advance(seq)

    def _deliver(self, event: BusEvent) -> None:
        self.hub.publish(event.frame, event.recipients)
        if event.end_sessions:
            # after the frame that says so: the hub flushes it before closing
            self.hub.close_sessions(event.end_sessions)

    def _advance(self, seq: int) -> None:
        if seq <= self.watermark:
            return
        self.watermark = seq
        if not self._pending and self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None
        if self._waiters:
            ready = [w for w in self._waiters if w[0] <= seq]
            self._waiters = [w for w in self._waiters if w[0] > seq]
            for _, future in ready:
                if not future.done():
                    future.set_result(None)

    def _gap_expired(self) -> None:
        self._gap_timer = None
        if self._pending:
            self.repair_soon()

    def repair_soon(self) -> None:
        """Read what is missing from the database now (once; again if one is running)."""
        if self._repair_task is not None:
            self._again = True
            return
        self._repair_task = asyncio.create_task(self._repairing(), name="event-window-repair")

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Repair until ``seq`` has gone to the hub, at most ``timeout`` seconds; reached?"""
        if seq <= self.watermark:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, future))
        self.repair_soon()
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            return False
        finally:
            self._waiters = [w for w in self._waiters if w[1] is not future]
        return True

    async def _repairing(self) -> None:
        try:
            while True:
                self._again = False
                try:
                    more = await self._repair_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("event window repair failed: %s", exc)
                    more = False
                if not (more or self._again):
                    break
        finally:
            self._repair_task = None
        if self._pending and self._gap_timer is None:
            loop = asyncio.get_running_loop()
            self._gap_timer = loop.call_later(self.gap_wait, self._gap_expired)

    async def _repair_once(self) -> bool:
        """Deliver ``(watermark, min(newest, watermark + page)]``; True if more is missing."""
        start = self.watermark
        newest, rows = await self.store.read(lambda tx: _missing(tx, start))
        self.repairs += 1
        upto = min(newest, start + REPAIR_PAGE)
        if upto <= self.watermark:
            return False
        from_db = {e.seq: e for e in rows}
        pending = self._pending
        delivered_from_db = 0
        for seq in range(self.watermark + 1, upto + 1):
            event = pending.pop(seq, None)  # the bus's copy wins (same bytes, known recipients)
            if event is None:
                event = from_db.get(seq)
                if event is None:
                    continue  # deleted since (retention, a deleted message)
                delivered_from_db += 1
            self._deliver(event)
        self.repaired += delivered_from_db
        if delivered_from_db:
            log.info("delivered %d event(s) from the database (%d..%d)",
                     delivered_from_db, start + 1, upto)  # fmt: skip
        self._advance(upto)
        self._drain()
        return newest > self.watermark

    async def _ticking(self) -> None:
        assert self.tick is not None
        loop = asyncio.get_running_loop()
        answered = loop.time()  # the database's last answer
        lost = False
        while True:
            await asyncio.sleep(self.tick if self._connected() else TICK_DISCONNECTED)
            try:
                async with asyncio.timeout(STORE_LOST):
                    newest = await self.store.read(lambda tx: tx.event_max())
            except Exception as exc:
                log.warning("event window tick failed: %s", exc)
                if not lost and loop.time() - answered >= STORE_LOST:
                    lost = True
                    log.warning("the database has not answered for %.0f s: ending %d live "
                                "stream(s), to resume on another node", loop.time() - answered,
                                self.hub.stream_count())  # fmt: skip
                    self.hub.close_all()
                continue
            answered = loop.time()
            if lost:
                lost = False
                log.warning("the database answers again")
            if newest > self.watermark:
                # give the bus (or this node's own commit) its chance first
                await asyncio.sleep(self.gap_wait if self._connected() else 0)
                if newest > self.watermark:
                    self.repair_soon()


def _missing(tx: Tx, after: int) -> tuple[int, list[BusEvent]]:
    """The newest seq, and the logged events after ``after`` with their recipients now."""
    newest = tx.event_max()
    if newest <= after:
        return newest, []
    rows = tx.events_range(after, min(newest, after + REPAIR_PAGE), REPAIR_PAGE)
    members: dict[int, list[int]] = {}
    events: list[BusEvent] = []
    for row in rows:
        recipients: list[int] | None
        if row.user_id is not None:
            recipients = [row.user_id]
        elif row.chat_id == GENERAL_CHAT_ID or row.chat_id is None:
            recipients = None
        else:
            chat = row.chat_id
            if chat not in members:
                members[chat] = tx.member_ids(chat)
            recipients = members[chat]
        if row.except_late is not None and row.chat_id is not None:
            late = retention_queries(tx).waiting_users(row.except_late)
            recipients = [u for u in recipients or tx.member_ids(row.chat_id) if u not in late]
        frame = sse_frame(row.payload, row.name, row.seq)
        events.append(BusEvent(row.seq, frame, recipients, ended_sessions(row.name, row.payload)))
    return newest, events
