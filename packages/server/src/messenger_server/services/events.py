"""The event log and live delivery: durable events, resume, ephemeral presence.

A durable event is inserted into the log in the same transaction as the change
it reports, and handed to the hub only after that commit, in sequence order, so
a stream never sees an event that could still be rolled back, and ids only grow.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from functools import partial

from messenger_protocol import (
    GENERAL_CHAT_ID,
    BaseEvent,
    MessageCreated,
    MessageEdited,
    MessageUpdated,
    Reset,
    encode_event,
    event_name,
    sse_frame,
)

from ..clock import Clock
from ..hub import EventBus, Hub, HubStream, Subscription
from ..storage import EventHandle, EventRecord, Store, Tx

__all__ = ["REPLAY_PAGE", "EventService", "StreamInfo"]

log = logging.getLogger(__name__)

REPLAY_PAGE = 500
"""Events read from the log per query while a stream catches up."""
_PRUNE_EVERY = 1000


class StreamInfo:
    """A live event stream of a session (for ``/status``)."""

    __slots__ = ("connected_at", "peer", "session_id")

    def __init__(self, session_id: str, peer: str, connected_at: float) -> None:
        self.session_id = session_id
        self.peer = peer
        self.connected_at = connected_at


class EventService:
    """Writes events to the log, publishes them after commit, replays them on resume."""

    def __init__(
        self,
        store: Store,
        hub: Hub,
        clock: Clock,
        retention: int,
        *,
        bus: EventBus | None = None,
        resumed: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.bus: EventBus = hub if bus is None else bus
        """Carries committed events to the streams (of every node); the hub itself here."""
        self.resumed = resumed
        """Told (with the user id) when a stream resumes: its replay delivers what they missed."""
        self.hub = hub
        self.clock = clock
        self.retention = retention
        self.published_seq = 0
        """Newest event handed to the hub; everything up to it is committed."""
        self._since_prune = 0
        self.streams: dict[int, list[StreamInfo]] = {}
        """Live streams per user id."""

    async def start(self) -> None:
        """Learn the newest sequence number from the log."""
        _, newest = await self.store.read(lambda tx: tx.event_bounds())
        self.published_seq = newest

    def emit(
        self, tx: Tx, event: BaseEvent, *, chat_id: int | None = None, user_id: int | None = None
    ) -> EventHandle:
        """Log ``event`` for a chat's members or for one user; it goes out after commit.

        The store numbers it at commit; the SSE frame is encoded then, once.
        """
        if (chat_id is None) == (user_id is None):
            raise ValueError("an event goes to exactly one chat or one user")
        payload = encode_event(event)
        name = event_name(event)
        carried = (
            event.message.id
            if isinstance(event, MessageCreated | MessageUpdated | MessageEdited)
            else None
        )
        handle = tx.append_event(name, payload, chat_id, user_id, self.clock.now(), carried)
        recipients: list[int] | None
        if user_id is not None:
            recipients = [user_id]
        elif chat_id == GENERAL_CHAT_ID:
            recipients = None  # everyone is a member: every stream
        else:
            assert chat_id is not None
            recipients = tx.member_ids(chat_id)
        tx.after_commit(partial(self._publish, handle, recipients))
        self._since_prune += 1
        if self._since_prune >= _PRUNE_EVERY:
            self._since_prune = 0
            pruned = tx.prune_events(self.retention)
            if pruned:
                log.debug("pruned %d old events", pruned)
        return handle

    def _publish(self, handle: EventHandle, recipients: list[int] | None) -> None:
        seq = handle.seq
        self.published_seq = max(self.published_seq, seq)
        self.bus.publish(sse_frame(handle.payload, handle.name, seq), recipients)

    def ephemeral(self, event: BaseEvent, user_ids: Iterable[int] | None) -> None:
        """Send an event that is not logged (no id, never replayed) right away."""
        frame = sse_frame(encode_event(event), event_name(event), None)
        self.bus.publish(frame, user_ids)

    def attach(self, user_id: int, session_id: str, stream: HubStream) -> Subscription:
        """Register a live stream with the hub and remember it for ``/status``."""
        self.streams.setdefault(user_id, []).append(
            StreamInfo(session_id, stream.peer, self.clock.now())
        )
        return self.hub.attach(user_id, session_id, stream)

    def detach(self, sub: Subscription) -> None:
        """Unregister a stream from the hub (idempotent)."""
        infos = self.streams.get(sub.user_id)
        if infos is not None:
            for info in infos:
                if info.session_id == sub.session_id and info.peer == sub.stream.peer:
                    infos.remove(info)
                    break
            if not infos:
                del self.streams[sub.user_id]
        sub.detach()

    async def catch_up(
        self, user_id: int, after: int, send: Callable[[list[bytes]], Awaitable[None]]
    ) -> int:
        """Send the logged events after ``after`` that the user may see; the last seq covered.

        Covers everything up to what has been published so far: newer events reach
        the (held) stream through the hub. A client whose ``after`` is older than the
        retained log, or from the future (another database), gets a ``reset`` event.
        """
        if self.resumed is not None:
            await self.resumed(user_id)
        upto = self.published_seq
        oldest, _ = await self.store.read(lambda tx: tx.event_bounds())
        if after > upto or after < oldest - 1:
            reason = "too far behind" if after < upto else "unknown event id"
            reset = Reset(reason=reason, last_event_id=upto)
            await send([sse_frame(encode_event(reset), event_name(reset), None)])
            return upto
        cursor = after
        while cursor < upto:
            rows = await self.store.read(
                partial(_events_after, user_id=user_id, after=cursor, upto=upto)
            )
            if not rows:
                break
            await send([sse_frame(r.payload, r.name, r.seq) for r in rows])
            cursor = rows[-1].seq
            if len(rows) < REPLAY_PAGE:
                break
        return upto


def _events_after(tx: Tx, *, user_id: int, after: int, upto: int) -> list[EventRecord]:
    return tx.events_after(user_id, after, upto, REPLAY_PAGE)
