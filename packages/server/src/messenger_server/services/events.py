"""The event log and live delivery: durable events, resume, ephemeral presence.

A durable event is inserted into the log in the same transaction as the change
it reports, and handed to the hub only after that commit, in sequence order, so
a stream never sees an event that could still be rolled back, and ids only grow.

With several nodes, the committed events of one loop turn go to this node's
:class:`~messenger_server.window.EventWindow` at once and to the other nodes as one
bus message; each node's window puts every node's events in seq order (and repairs
what the bus lost from the log).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Iterable
from functools import partial

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    BaseEvent,
    ErrorCode,
    Mentioned,
    MessageCreated,
    MessageEdited,
    MessageUpdated,
    PinChanged,
    Readiness,
    Reset,
    ThreadActivity,
    encode_event,
    event_name,
    sse_frame,
)

from ..bus import Batch, BusEvent, BusMessage, Ephemeral, EventBus, LocalBus
from ..clock import Clock
from ..hub import Hub, HubStream, Subscription
from ..storage import EventHandle, EventRecord, Store, Tx
from ..window import TICK, EventWindow, ended_sessions

__all__ = ["REPLAY_PAGE", "EventService", "StreamInfo", "carried_message"]

log = logging.getLogger(__name__)

REPLAY_PAGE = 500
"""Events read from the log per query while a stream catches up."""
READY_TIMEOUT = 2.0
"""Seconds the database and the bus get to answer ``/readyz``."""
RESUME_WAIT = 2.0
"""Seconds a resume with an id this node has not delivered yet waits for the window."""
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
        node_id: str = "",
        resumed: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.bus: EventBus = LocalBus() if bus is None else bus
        """Carries committed events to the other nodes (nothing with one node)."""
        self.node_id = node_id
        self.boot = secrets.token_hex(6)
        """This run of the node (its bus messages are recognised and passed over)."""
        self.resumed = resumed
        """Told (with the user id) when a stream resumes: its replay delivers what they missed."""
        self.hub = hub
        self.clock = clock
        self.retention = retention
        local = self._local = isinstance(self.bus, LocalBus)
        self.window = EventWindow(
            hub, store, tick=None if local else TICK, connected=lambda: self.bus.connected
        )
        """Puts committed events of every node in seq order for this node's streams."""
        self._outgoing: list[BusEvent] = []
        self._send_handle: asyncio.Handle | None = None
        self._since_prune = 0
        self.streams: dict[int, list[StreamInfo]] = {}
        """Live streams per user id."""
        self.draining = False
        """The node is shutting down: not ready, every stream closed (see :meth:`drain`)."""

    @property
    def published_seq(self) -> int:
        """Newest event handed to the hub; everything up to it is committed."""
        return self.window.watermark

    async def start(self) -> None:
        """Learn the newest sequence number from the log; connect the bus."""
        await self.window.start()
        await self.bus.start(self)

    async def close(self) -> None:
        """Disconnect the bus and stop the window."""
        if self._send_handle is not None:
            self._send_handle.cancel()
            self._send_batch()
        await self.bus.close()
        await self.window.close()

    def drain(self) -> None:
        """The node stops (SIGTERM): ``/readyz`` says so from now on, and every live
        stream ends after the frames queued for it, so its client resumes on another
        node with ``Last-Event-ID``."""
        self.draining = True
        self.hub.close_all()

    async def ready(self) -> Readiness:
        """``/readyz``: this node's database and event bus answer now (else ``unavailable``)."""
        if self.draining:
            raise ApiError(ErrorCode.UNAVAILABLE, "not ready: the node is shutting down")
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await self.store.read(lambda tx: tx.event_max())
        except Exception as exc:
            log.warning("not ready: the database does not answer: %s", exc)
            raise ApiError(
                ErrorCode.UNAVAILABLE, "not ready: the database does not answer"
            ) from None
        kind = self.bus.name.partition("://")[0]
        kind = {"rediss": "redis", "tls": "nats"}.get(kind, kind)
        if not self.bus.connected or not await self.bus.ping():
            raise ApiError(
                ErrorCode.UNAVAILABLE, f"not ready: the {kind} event bus does not answer"
            )
        return Readiness(node=self.node_id, bus=kind)

    def on_bus_message(self, message: BusMessage) -> None:
        """Another node's batch (into the window) or ephemeral frame (straight to the hub)."""
        if message.node == self.node_id and message.boot == self.boot:
            return  # our own, already delivered
        if isinstance(message, Batch):
            self.window.offer(message.events)
            return
        self.hub.publish(message.frame, message.recipients)

    def on_bus_connected(self) -> None:
        """(Re)subscribed: what the bus carried meanwhile is read from the log."""
        self.window.repair_soon()

    def emit(
        self,
        tx: Tx,
        event: BaseEvent,
        *,
        chat_id: int | None = None,
        user_id: int | None = None,
        except_late: tuple[int, Collection[int]] | None = None,
    ) -> EventHandle:
        """Log ``event`` for a chat's members or for one user; it goes out after commit.

        ``except_late`` (a chat's event): ``(message id, the users whose copy of it was
        not delivered when it was posted)``; those members do not get the event (in the
        log: those with a ``deliveries`` row of the message, which every such user has
        by the time a resume replays it). The store numbers it at commit; the SSE frame
        is encoded then, once.
        """
        if (chat_id is None) == (user_id is None):
            raise ValueError("an event goes to exactly one chat or one user")
        if except_late is not None and chat_id is None:
            raise ValueError("only a chat's event leaves out members")
        payload = encode_event(event)
        name = event_name(event)
        carried = carried_message(event)
        late_of = None if except_late is None else except_late[0]
        handle = tx.append_event(
            name, payload, chat_id, user_id, self.clock.now(), carried, late_of
        )
        recipients: list[int] | None
        if user_id is not None:
            recipients = [user_id]
        elif except_late is not None:
            assert chat_id is not None
            late = except_late[1]
            recipients = [u for u in tx.member_ids(chat_id) if u not in late]
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
        frame = sse_frame(handle.payload, handle.name, seq)
        event = BusEvent(seq, frame, recipients, ended_sessions(handle.name, handle.payload))
        self.window.offer((event,))
        self._outgoing.append(event)
        if self._send_handle is None:
            # the after-commit callbacks of one commit run together: one bus message
            self._send_handle = asyncio.get_running_loop().call_soon(self._send_batch)

    def _send_batch(self) -> None:
        self._send_handle = None
        events, self._outgoing = self._outgoing, []
        if events:
            self.bus.publish(Batch(self.node_id, self.boot, events))

    def ephemeral(self, event: BaseEvent, user_ids: Iterable[int] | None) -> None:
        """Send an event that is not logged (no id, never replayed) right away, on every node."""
        frame = sse_frame(encode_event(event), event_name(event), None)
        recipients = None if user_ids is None else list(user_ids)
        self.hub.publish(frame, recipients)
        self.bus.publish(Ephemeral(self.node_id, self.boot, frame, recipients))

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

    async def stream_start(self) -> int:
        """Where a stream without ``Last-Event-ID`` starts: the newest event committed in
        the database now, once this node's window has delivered it (``unavailable`` if it
        cannot get there in time). Not this node's window alone: on a node behind the bus,
        the stream would get events committed before it opened (once the window got them).
        One node (the local bus) reads nothing: its window gets each commit of its own in
        the same turn, so it is never behind (opening 3,000 streams took 20-45 % longer
        with the read on SQLite).
        """
        if self._local:
            return self.published_seq
        newest = await self.store.read(lambda tx: tx.event_max())
        if newest > self.published_seq and not await self.window.wait_for(newest, RESUME_WAIT):
            raise ApiError(ErrorCode.UNAVAILABLE, "the node is behind the event log")
        return newest

    def session_start(self, tx: Tx, *, read: bool = False) -> int:
        """Where a session made in ``tx`` resumes (the ``last_event_id`` of its
        :class:`~messenger_protocol.Session`): the newest event in the database, as for
        :meth:`stream_start`. Not this node's window: on a node behind the bus, a stream
        resumed from it would get events committed before the login (once the window got
        them). On one node too: one statement in the login's unit (5 us on SQLite, against
        180 ms for the argon2 check at the default cost). ``read``: ``tx`` only reads (the
        session is read back), which on one node may see a SQLite group not yet committed,
        so one node gives its window there (never behind with the local bus).
        """
        if read and self._local:
            return self.published_seq
        return tx.event_max()

    async def catch_up(
        self,
        user_id: int,
        after: int,
        send: Callable[[list[bytes]], Awaitable[None]],
        *,
        resume: bool = True,
    ) -> int:
        """Send the logged events after ``after`` that the user may see; the last seq covered.

        Covers everything committed when the resume begins (from the log, with the
        text each event carries now: an edit rewrites them), once this node's window has
        delivered it (``unavailable`` if it cannot get there in time): newer events reach
        the (held) stream through the hub. A client whose ``after`` is older than the
        retained log, or from the future (another database), gets a ``reset`` event.
        ``resume=False``: ``after`` is the :meth:`stream_start` of a new stream (it missed
        nothing of the user's: retention is not told it resumed).
        """
        if resume and self.resumed is not None:
            await self.resumed(user_id)
        upto = self.published_seq
        if not resume:
            return await self._replay(user_id, after, upto, send)
        oldest, newest = await self.store.read(lambda tx: tx.event_bounds())
        if upto < newest:
            # this node's window is behind the log (an id seen on a faster node, a late
            # batch): what was committed before the resume is replayed from the log with
            # the text it has now, never reaches the stream later as the bus carried it
            # (a text edited away meanwhile)
            if not await self.window.wait_for(newest, RESUME_WAIT) and after <= newest:
                raise ApiError(ErrorCode.UNAVAILABLE, "the node is behind the event log")
            upto = self.published_seq
        if after > upto or after < oldest - 1:
            reason = "too far behind" if after < upto else "unknown event id"
            reset = Reset(reason=reason, last_event_id=upto)
            await send([sse_frame(encode_event(reset), event_name(reset), None)])
            return upto
        return await self._replay(user_id, after, upto, send)

    async def _replay(
        self, user_id: int, after: int, upto: int, send: Callable[[list[bytes]], Awaitable[None]]
    ) -> int:
        """Send the user's logged events in ``(after, upto]``, a page at a time; ``upto``."""
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


def carried_message(event: BaseEvent) -> int | None:
    """The message whose text an event carries (the log's ``message_id``): the event leaves
    the log with the message, and an edit rewrites it (a resume replays the current text)."""
    if isinstance(event, MessageCreated | MessageUpdated | MessageEdited | Mentioned):
        return event.message.id
    if isinstance(event, ThreadActivity):
        return event.comment.id
    if isinstance(event, PinChanged) and event.pin is not None:
        return event.pin.message.id
    return None


def _events_after(tx: Tx, *, user_id: int, after: int, upto: int) -> list[EventRecord]:
    return tx.events_after(user_id, after, upto, REPLAY_PAGE)
