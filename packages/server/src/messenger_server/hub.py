"""The event hub: fans pre-encoded SSE frames out to live event streams.

A frame is encoded once by the app and the same bytes go to every recipient.
:meth:`LocalHub.publish` writes nothing itself: it appends the frame to each
recipient's pending list and schedules one flush per event-loop turn, which
hands each connection all its frames as one buffer (write coalescing, SPEC §7):
the frames of a flush are joined once, and every stream that got all of them is
written that same ``bytes`` (streams that got the same part, a chat's members,
share one joined part too). A frame for every stream (the general chat, a
heartbeat) queues nothing per stream while all the flush's frames are for every
stream: the flush writes their one joined buffer to each; the first targeted
frame, attach, hold or close before the flush queues them per stream as above.
The flush runs one turn after the publish, so the answers to the sends that made
the frames go out first and their next sends can join the next flush. Under load
flushes are at least ``flush_interval`` apart (1 ms in the server); and when
frames come as fast as the hub can write them (a flush began within as long after
the previous one ended as that one took, or had to wait), the next flush waits as
long again as this one took (a write syscall per stream: ~8 ms of CPU for 1,000
streams), up to :data:`MAX_BUSY_GAP`: so each write syscall carries the frames of
more sends and a saturated hub spends at most about half its time writing. At a
low rate a frame still goes out within two turns.
A stream whose unsent bytes pass the limit is cut; the client reconnects with
``Last-Event-ID`` and catches up from the event log.

:class:`Hub` (this node's streams) is the interface; its types name no
implementation. Committed events reach it through the node's
:class:`~messenger_server.window.EventWindow`, in seq order, whichever node wrote
them (:mod:`messenger_server.bus` carries them between nodes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Protocol

from messenger_protocol import limits, sse_comment

__all__ = [
    "BUSY_FLUSH_INTERVAL",
    "MAX_BUSY_GAP",
    "Hub",
    "HubStream",
    "LocalHub",
    "LocalSubscription",
    "Subscription",
    "frame_id",
]

log = logging.getLogger(__name__)

BUSY_FLUSH_INTERVAL = 0.001
"""Seconds the server's hub leaves between flushes under load: more frames per write
syscall, at most a millisecond more latency, none when frames come slower than that."""

MAX_BUSY_GAP = 0.005
"""The longest a busy hub (one with a ``flush_interval``) lets frames gather after a
flush, however long that flush took: the latency a saturated fan-out adds at most."""


class HubStream(Protocol):
    """What the hub needs of a stream (:class:`messenger_server.http.ResponseStream` fits)."""

    peer: str

    def writelines(self, chunks: Iterable[bytes]) -> None: ...
    def buffer_size(self) -> int: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...
    def close(self) -> None: ...


class Subscription(Protocol):
    """One live event stream of a user, as a hub holds it."""

    @property
    def user_id(self) -> int:
        """Whose stream it is."""
        ...

    @property
    def session_id(self) -> str:
        """The session that opened it."""
        ...

    @property
    def stream(self) -> HubStream:
        """Where its frames go."""
        ...

    def hold(self) -> None:
        """Buffer live frames instead of writing them (while the backlog is replayed)."""
        ...

    def release(self, after_seq: int) -> None:
        """Queue the held frames newer than ``after_seq`` (and those without an id); go live."""
        ...

    def detach(self) -> None:
        """Stop receiving frames (idempotent)."""
        ...


class LocalSubscription:
    """One event stream attached to a :class:`LocalHub`."""

    __slots__ = ("_held", "_held_bytes", "_hub", "_pending", "attached", "session_id", "stream",
                 "user_id")  # fmt: skip

    def __init__(self, hub: LocalHub, user_id: int, session_id: str, stream: HubStream) -> None:
        self._hub = hub
        self.user_id = user_id
        self.session_id = session_id
        self.stream = stream
        self._pending: list[bytes] = []
        self._held: list[bytes] | None = None
        self._held_bytes = 0
        self.attached = True

    def hold(self) -> None:
        """Buffer live frames instead of writing them (while the app replays the backlog)."""
        if self._held is None:
            self._hub._spread()  # what came before the hold goes out, not held
            self._held = []
            self._held_bytes = 0
            self._hub._holding.add(self)

    def release(self, after_seq: int) -> None:
        """Queue the held frames newer than ``after_seq`` (and those without an id); go live."""
        held, self._held = self._held, None
        self._hub._holding.discard(self)
        if not held or not self.attached:
            return
        for frame in held:
            seq = frame_id(frame)
            if seq is None or seq > after_seq:
                self._hub._queue(self, frame)
        if self._hub._overflowed:
            self._hub._cut_overflowed()

    def detach(self) -> None:
        """Stop receiving frames (idempotent)."""
        if self.attached:
            self.attached = False
            self._hub._remove(self)

    def __repr__(self) -> str:
        return f"<LocalSubscription user={self.user_id} session={self.session_id[:8]}>"


class Hub(Protocol):
    """The live event streams of this node (presence is told by the stream handler, not
    by the hub: :mod:`messenger_server.services.presence`)."""

    def publish(self, frame: bytes, user_ids: Iterable[int] | None) -> None:
        """Send ``frame`` to every stream of ``user_ids`` on this node (None: every stream)."""
        ...

    def attach(self, user_id: int, session_id: str, stream: HubStream) -> Subscription:
        """Register a live stream of ``user_id``."""
        ...

    def close_sessions(self, session_ids: Iterable[str]) -> None:
        """End the streams of these sessions after what is queued for them (logout)."""
        ...

    def close_all(self) -> None:
        """End every stream after what is queued for it (the node is shutting down)."""
        ...

    def online_user_ids(self) -> set[int]:
        """Users with at least one attached stream."""
        ...

    def stream_count(self) -> int:
        """Attached streams."""
        ...


def frame_id(frame: bytes) -> int | None:
    """The SSE id of a frame made by ``messenger_protocol.sse_frame``, None if it has none."""
    if not frame.startswith(b"id: "):
        return None
    end = frame.find(b"\n", 4)
    try:
        return int(frame[4:end])
    except ValueError:
        return None


class LocalHub:
    """The in-process hub: one coalesced write per stream per event-loop turn."""

    def __init__(
        self,
        max_queue_bytes: int = limits.EVENT_QUEUE_MAX_BYTES,
        flush_interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self.max_queue_bytes = max_queue_bytes
        self.flush_interval = flush_interval
        """A flush comes at least this long after the previous one began, and when busy
        as long after it ended as it took, up to :data:`MAX_BUSY_GAP` (0: every turn)."""
        self._clock = clock
        self._cpu_clock = cpu_clock
        """What a flush costs is read from this (the writes' CPU, not a busy machine's
        preemptions)."""
        self._next_flush = 0.0
        """No flush before this (``clock`` seconds)."""
        self._last_end = float("-inf")
        self._last_cost = 0.0
        self._waited = False
        """The scheduled flush waits for the busy gap."""
        self._by_user: dict[int, list[LocalSubscription]] = {}
        self._all: dict[LocalSubscription, None] = {}  # insertion-ordered set
        self._dirty: list[LocalSubscription] = []
        self._frames: list[bytes] = []
        """Every frame fanned out since the last flush, in order."""
        self._queued_apart = False
        """A frame was queued to one stream outside a fan-out since the last flush."""
        self._to_all: list[bytes] = []
        """Frames for every attached stream, queued to none yet: each was fanned out to
        every stream while no stream had a frame of its own or was held (see
        :meth:`_spread`)."""
        self._holding: set[LocalSubscription] = set()
        self._flush_handle: asyncio.Handle | None = None
        self._overflowed: list[LocalSubscription] = []
        self._heartbeat: asyncio.TimerHandle | None = None
        self.frames_published = 0
        self.deliveries = 0
        self.cut_streams = 0

    def attach(self, user_id: int, session_id: str, stream: HubStream) -> LocalSubscription:
        """Register a live stream of ``user_id``."""
        self._spread()  # the frames so far are not for it
        sub = LocalSubscription(self, user_id, session_id, stream)
        self._all[sub] = None
        subs = self._by_user.get(user_id)
        if subs is None:
            self._by_user[user_id] = [sub]
        else:
            subs.append(sub)
        return sub

    def start_heartbeats(self, interval: float, frame: bytes = sse_comment()) -> None:
        """Write ``frame`` to every attached stream every ``interval`` seconds.

        One timer for all streams, instead of one per stream: keeps idle streams cheap
        and lets dead peers show up (a write to them fails).
        """
        self.stop_heartbeats()
        loop = asyncio.get_running_loop()
        self._heartbeat = loop.call_later(interval, self._beat, interval, frame)

    def stop_heartbeats(self) -> None:
        """Stop :meth:`start_heartbeats`."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    def _beat(self, interval: float, frame: bytes) -> None:
        self._heartbeat = asyncio.get_running_loop().call_later(
            interval, self._beat, interval, frame
        )
        if self._all:
            self._to_everyone(frame)

    def publish(self, frame: bytes, user_ids: Iterable[int] | None) -> None:
        """Queue ``frame`` for the streams of ``user_ids`` (None: all); flushed this turn."""
        self.frames_published += 1
        if user_ids is None:
            if self._all:
                self._to_everyone(frame)
            return
        self._spread()
        by_user = self._by_user
        targets = [sub for uid in set(user_ids) if uid in by_user for sub in by_user[uid]]
        self._fan_out(frame, targets)

    def _to_everyone(self, frame: bytes) -> None:
        # no per-stream step while every stream gets every frame of this flush
        if self._to_all or not (self._dirty or self._holding):
            if not self._to_all:
                self._frames = []  # no stream has a frame queued: none of these counts
                self._queued_apart = False
            self._to_all.append(frame)
            if self._flush_handle is None:
                self._schedule_flush()
            return
        self._fan_out(frame, self._all)

    def _spread(self) -> None:
        """Queue the frames held back for every stream to each, as a fan-out would have
        (before anything that gives some streams other frames than the rest)."""
        to_all = self._to_all
        if not to_all:
            return
        self._to_all = []
        self._frames.extend(to_all)
        dirty = self._dirty
        for sub in self._all:  # none has a frame queued (else they would not be held back)
            sub._pending = list(to_all)
            dirty.append(sub)

    def _fan_out(self, frame: bytes, targets: Collection[LocalSubscription]) -> None:
        # the per-recipient step, inlined: it runs once per delivery (SPEC §7 fan-out)
        if targets:  # (a frame for no stream here would keep every stream off the shared bytes)
            self._frames.append(frame)
        dirty = self._dirty
        for sub in targets:
            if sub._held is not None:
                self._hold(sub, frame)
                continue
            pending = sub._pending
            if not pending:
                dirty.append(sub)
            pending.append(frame)
        if self._flush_handle is None and dirty:
            self._schedule_flush()
        if self._overflowed:
            self._cut_overflowed()

    def _cut_overflowed(self) -> None:
        overflowed, self._overflowed = self._overflowed, []
        for sub in overflowed:
            if sub.attached:
                self._cut(sub, "fell behind while catching up")

    def _queue(self, sub: LocalSubscription, frame: bytes) -> None:
        if sub._held is not None:
            self._hold(sub, frame)
            return
        pending = sub._pending
        if not pending:
            self._dirty.append(sub)
            if self._flush_handle is None:
                self._schedule_flush()
        pending.append(frame)
        self._queued_apart = True

    def _schedule_flush(self) -> None:
        loop = asyncio.get_running_loop()
        if self.flush_interval:
            wait = self._next_flush - self._clock()
            if wait > 0:  # busy: the last flush was just now, let more frames gather
                self._waited = True
                self._flush_handle = loop.call_later(wait, self._flush)
                return
        self._flush_handle = loop.call_soon(self._flush_next_turn)

    def _flush_next_turn(self) -> None:
        # a commit publishes its events before it wakes the requests that made them:
        # one more turn lets their answers go out first, so the senders' next messages
        # arrive while this flush writes and the next flush carries them together
        self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _hold(self, sub: LocalSubscription, frame: bytes) -> None:
        held = sub._held
        assert held is not None
        held.append(frame)
        sub._held_bytes += len(frame)
        if sub._held_bytes > self.max_queue_bytes:
            # cut after the publish loop: it may be iterating the set we would change
            sub._held = None
            self._holding.discard(sub)
            self._overflowed.append(sub)

    def _flush(self) -> None:
        self._flush_handle = None
        if not self.flush_interval:
            self._write_out()
            return
        start, cpu = self._clock(), self._cpu_clock()
        self._write_out()
        end, cost = self._clock(), min(self._cpu_clock() - cpu, MAX_BUSY_GAP)
        busy = self._waited or start - self._last_end < self._last_cost
        self._waited = False
        self._last_end, self._last_cost = end, cost
        # busy: the writes' own time again (a syscall per stream), more frames per write
        self._next_flush = max(start + self.flush_interval, end + cost if busy else 0.0)

    def _write_out(self) -> None:
        if self._to_all:
            self._flush_to_all()
            return
        dirty, self._dirty = self._dirty, []
        every, self._frames = self._frames, []
        # a stream with as many frames as were fanned out got each of them (a fan-out
        # gives a stream a frame at most once), in order: unless one was queued apart
        whole = -1 if self._queued_apart else len(every)
        self._queued_apart = False
        everything: bytes | None = None
        limit = self.max_queue_bytes
        delivered = 0
        # streams that got the same frames (a chat's members) share one joined buffer;
        # each entry keeps its frames alive, so no id in a key is reused in this flush
        joined: dict[tuple[int, ...], tuple[bytes, list[bytes]]] = {}
        for sub in dirty:
            frames, sub._pending = sub._pending, []
            if not sub.attached:
                continue
            if len(frames) == whole:
                if everything is None:
                    everything = b"".join(every)
                data = everything
            elif len(frames) == 1:
                data = frames[0]
            else:
                key = tuple(map(id, frames))
                entry = joined.get(key)
                if entry is None:
                    entry = joined[key] = (b"".join(frames), frames)
                data = entry[0]
            stream = sub.stream
            stream.writelines((data,))  # a closing stream drops them
            delivered += len(frames)
            if stream.buffer_size() > limit:
                self._cut(sub, "is not reading its events")
        self.deliveries += delivered

    def _flush_to_all(self) -> None:
        frames, self._to_all = self._to_all, []
        data = b"".join(frames)
        limit = self.max_queue_bytes
        full: list[LocalSubscription] = []
        subs = tuple(self._all)
        for sub in subs:
            stream = sub.stream
            stream.writelines((data,))  # a closing stream drops them
            if stream.buffer_size() > limit:
                full.append(sub)
        self.deliveries += len(frames) * len(subs)
        for sub in full:
            self._cut(sub, "is not reading its events")

    def _cut(self, sub: LocalSubscription, why: str) -> None:
        log.info("cutting event stream of user %d at %s: %s", sub.user_id, sub.stream.peer, why)
        self.cut_streams += 1
        sub.stream.abort()
        sub.detach()

    def close_sessions(self, session_ids: Iterable[str]) -> None:
        """Flush what is queued for these sessions' streams, then close them."""
        wanted = set(session_ids)
        self._close([s for s in self._all if s.session_id in wanted])

    def close_all(self) -> None:
        """Flush what is queued for every stream, then close them all (shutdown drain):
        each client reconnects, elsewhere, with the id of the last frame it got."""
        self._close(list(self._all))

    def _close(self, subs: list[LocalSubscription]) -> None:
        self._spread()
        for sub in subs:
            frames, sub._pending = sub._pending, []
            if frames and not sub.stream.is_closing():
                sub.stream.writelines(frames)
            sub.detach()
            sub.stream.close()

    def online_user_ids(self) -> set[int]:
        """Users with at least one attached stream."""
        return set(self._by_user)

    def stream_count(self) -> int:
        """Attached streams."""
        return len(self._all)

    def _remove(self, sub: LocalSubscription) -> None:
        self._all.pop(sub, None)
        sub._pending = []
        sub._held = None
        self._holding.discard(sub)
        subs = self._by_user.get(sub.user_id)
        if subs is None:
            return
        try:
            subs.remove(sub)
        except ValueError:
            return
        if not subs:
            del self._by_user[sub.user_id]
