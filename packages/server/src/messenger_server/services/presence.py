"""Presence: who is online, told to everyone when a user's first stream opens and their
last one goes, on one node or over several.

The app's event-stream handler tells :class:`PresenceService` of each stream it opens
and closes (the hub knows nothing of presence). Per node it keeps the streams of each
user and tells :class:`~.retention.Visibility` when a user's first stream on this node
opens and the last one goes (its online spans are per node).

* One node (``leased=False``): the node's streams are all there are; a user's first
  stream makes them online, their last one offline.
* Several nodes (``leased=True``, PostgreSQL): each stream is a row of ``live_streams``
  written with the node's lease (``node_leases``), renewed every ``lease / 3`` seconds.
  Opening and closing a stream are write units; the store serializes the cluster's write
  groups, so the count of a user's streams on live nodes that a unit reads is exact, and
  online (0 → 1) and offline (1 → 0) are each told once. A node that dies stops renewing:
  after ``lease`` seconds one node (a singleton pass) drops its rows and tells that its
  users with no stream elsewhere went offline, once. A node that finds its own lease
  taken (it was starved that long) takes it again with its streams.

Presence events are ephemeral (no id, never replayed), as the protocol says. The lease
runs on the node's wall clock, not the services' clock (a test clock moved by an hour
must not make every node look dead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from messenger_protocol import Presence

from ..clock import Clock, SystemClock
from ..loglimit import log_pass_failure
from ..storage import Store, Tx
from ..storage.presence import presence_queries
from .events import EventService, StreamInfo
from .retention import Visibility

__all__ = ["LEASE_JOB", "PresenceService"]

log = logging.getLogger(__name__)

LEASE_JOB = "presence-leases"
"""The singleton pass that drops the streams of nodes whose lease went stale."""


@dataclass(frozen=True, slots=True)
class _Stream:
    user_id: int
    login: str
    session_id: str
    peer: str
    """The client's address."""
    opened_at: float
    """The services' clock (shown by ``/status``)."""


@dataclass(frozen=True, slots=True)
class _Change:
    """A user went online or offline (for everyone), at ``at`` (the services' clock)."""

    user_id: int
    login: str
    online: bool
    at: float


class PresenceService:
    """Live streams per user, on this node and (with leases) over the cluster."""

    def __init__(
        self,
        store: Store,
        events: EventService,
        clock: Clock,
        visibility: Visibility,
        *,
        node: str,
        leased: bool = False,
        lease: float = 15.0,
        lease_clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.visibility = visibility
        self.node = node
        self.leased = leased
        """Streams are rows with this node's lease (several nodes), not only in memory."""
        self.lease = lease
        self.lease_clock: Clock = SystemClock() if lease_clock is None else lease_clock
        self.boot = secrets.token_hex(6)
        self._streams: dict[str, _Stream] = {}
        self._local: dict[int, int] = {}
        """Streams per user on this node."""
        self._online: set[int] = set()
        """Users online in the cluster, as the last lease pass and this node's units saw."""
        self.last_seen: dict[int, float] = {}
        """When users went offline (or came online) since start, newer than the stored time."""
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # --- what the rest asks ---------------------------------------------------------

    def online_user_ids(self) -> set[int]:
        """Users with a live stream (on any node with a fresh lease)."""
        return set(self._online) if self.leased else set(self._local)

    def is_online(self, user_id: int) -> bool:
        """The user has a live stream."""
        return user_id in (self._online if self.leased else self._local)

    def streams_elsewhere(self, tx: Tx, user_id: int) -> list[StreamInfo]:
        """The user's live streams on the other nodes with a fresh lease, oldest first
        (none on one node: this node's streams are all there are)."""
        if not self.leased:
            return []
        rows = presence_queries(tx).streams_of(user_id, self._fresh_since())
        return [StreamInfo(r.session_id, r.peer, r.connected_at) for r in rows
                if r.node != self.node]  # fmt: skip

    # --- life -----------------------------------------------------------------------

    async def start(self) -> None:
        """With leases: forget what an earlier run of this node left (its users go offline
        unless they are online elsewhere), take the lease, start renewing it."""
        if not self.leased:
            return
        now = self.lease_clock.now()
        changes = await self.store.write(partial(self._take_over, now=now))
        self._tell(changes)
        self._task = asyncio.create_task(self._renew_forever(), name="presence-lease")

    async def close(self) -> None:
        """Stop renewing; with leases, give the lease back with every stream of this node
        (their users go offline now unless online elsewhere, not a lease later)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if not self.leased:
            seen = dict(self.last_seen)
            if seen:
                await self.store.write(partial(_save_seen, seen))
            return
        if self.leased:
            try:
                changes = await self.store.write(self._give_back)
            except Exception as exc:
                log_pass_failure(log, "could not give the node lease back", exc,
                                 self.store.unavailable)  # fmt: skip
            else:
                self._tell(changes)

    # --- streams --------------------------------------------------------------------

    def opened(self, user_id: int, login: str, session_id: str, peer: str) -> str:
        """A live stream of the user from ``peer`` (the client's address) opened on this
        node: its id (for :meth:`closed`). Online is told (to everyone) if it is the user's
        first stream."""
        stream_id = secrets.token_hex(8)
        now = self.clock.now()
        self._streams[stream_id] = _Stream(user_id, login, session_id, peer, now)
        count = self._local.get(user_id, 0) + 1
        self._local[user_id] = count
        if count == 1:
            self.visibility.came_online(user_id)
        if not self.leased:
            if count == 1:
                self._tell([_Change(user_id, login, True, now)])
            return stream_id
        self._in_background(self._write_open(stream_id, self._streams[stream_id]))
        return stream_id

    def closed(self, stream_id: str) -> None:
        """The stream went (idempotent). Offline is told if it was the user's last one."""
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        user_id = stream.user_id
        count = self._local.get(user_id, 0) - 1
        if count > 0:
            self._local[user_id] = count
        else:
            self._local.pop(user_id, None)
            self.visibility.went_offline(user_id)
        if not self.leased:
            if count <= 0:
                now = self.clock.now()
                self._tell([_Change(user_id, stream.login, False, now)])
                self._in_background(self._save_last_seen(user_id, now))
            return
        self._in_background(self._write_close(stream_id, stream))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        if self._closing:
            work.close()
            return  # close() gives the lease back with every stream
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_open(self, stream_id: str, stream: _Stream) -> None:
        # written even when it closed meanwhile: its close unit comes after this one
        try:
            changes = await self.store.write(partial(self._open_unit, stream_id, stream))
        except Exception as exc:
            log_pass_failure(log, "could not record a live stream", exc, self.store.unavailable)
            return
        self._tell(changes)

    async def _write_close(self, stream_id: str, stream: _Stream) -> None:
        try:
            changes = await self.store.write(partial(self._close_unit, stream_id, stream))
        except Exception as exc:
            log_pass_failure(log, "could not record a stream's end", exc, self.store.unavailable)
            return
        self._tell(changes)

    async def _save_last_seen(self, user_id: int, at: float) -> None:
        try:
            await self.store.write(lambda tx: tx.set_last_seen(user_id, at))
        except Exception as exc:
            log_pass_failure(log, "could not save last_seen", exc, self.store.unavailable)

    # --- the units (several nodes) -----------------------------------------------------

    def _fresh_since(self) -> float:
        return self.lease_clock.now() - self.lease

    def _open_unit(self, stream_id: str, stream: _Stream, tx: Tx) -> list[_Change]:
        queries = presence_queries(tx)
        queries.add_stream(self.node, stream_id, stream.user_id, stream.session_id,
                           stream.opened_at, stream.peer)  # fmt: skip
        if queries.live_streams_of(stream.user_id, self._fresh_since()) != 1:
            return []
        return [_Change(stream.user_id, stream.login, True, self.clock.now())]

    def _close_unit(self, stream_id: str, stream: _Stream, tx: Tx) -> list[_Change]:
        queries = presence_queries(tx)
        queries.remove_stream(self.node, stream_id)
        if queries.live_streams_of(stream.user_id, self._fresh_since()):
            return []
        now = self.clock.now()
        tx.set_last_seen(stream.user_id, now)
        return [_Change(stream.user_id, stream.login, False, now)]

    def _offline(self, tx: Tx, user_ids: list[int]) -> list[_Change]:
        """Those of ``user_ids`` left without a stream on a live node went offline now."""
        now = self.clock.now()
        changes = []
        for user_id in presence_queries(tx).users_without_streams(user_ids, self._fresh_since()):
            record = tx.user_by_id(user_id)
            if record is None:
                continue
            tx.set_last_seen(user_id, now)
            changes.append(_Change(user_id, record.login, False, now))
        return changes

    def _take_over(self, tx: Tx, *, now: float) -> list[_Change]:
        queries = presence_queries(tx)
        gone = queries.drop_node(self.node)
        queries.take_lease(self.node, self.boot, now)
        return self._offline(tx, gone)

    def _give_back(self, tx: Tx) -> list[_Change]:
        return self._offline(tx, presence_queries(tx).drop_node(self.node))

    def _renew_unit(self, tx: Tx) -> tuple[list[_Change], set[int]]:
        """Renew the lease (take it again with this node's streams if it was dropped), drop
        the nodes whose lease went stale (one node at a time), read who is online."""
        queries = presence_queries(tx)
        now = self.lease_clock.now()
        changes: list[_Change] = []
        if not queries.renew_lease(self.node, self.boot, now):
            log.warning("node lease of %s was taken as stale; taking it again", self.node)
            queries.drop_node(self.node)
            queries.take_lease(self.node, self.boot, now)
            fresh = now - self.lease
            for stream_id, stream in self._streams.items():
                queries.add_stream(self.node, stream_id, stream.user_id, stream.session_id,
                                   stream.opened_at, stream.peer)  # fmt: skip
                if queries.live_streams_of(stream.user_id, fresh) == 1:
                    changes.append(_Change(stream.user_id, stream.login, True, self.clock.now()))
        if tx.try_job_lock(LEASE_JOB):
            for node in queries.stale_nodes(now - self.lease):
                gone = queries.drop_node(node)
                self.visibility.node_gone(tx, node)
                log.info("node %s stopped renewing its lease: %d user(s) had streams there",
                         node, len(gone))  # fmt: skip
                changes += self._offline(tx, gone)
        return changes, queries.online_users(now - self.lease)

    async def _renew_forever(self) -> None:
        every = max(0.05, min(1.0, self.lease / 3))
        while True:
            await asyncio.sleep(every)
            try:
                changes, online = await self.store.write(self._renew_unit)
            except Exception as exc:
                log_pass_failure(log, "could not renew the node lease", exc, self.store.unavailable)
                continue
            self._online = online | set(self._local)
            self._tell(changes)

    # --- telling --------------------------------------------------------------------

    def _tell(self, changes: list[_Change]) -> None:
        for change in changes:
            self.last_seen[change.user_id] = change.at
            if self.leased:
                if change.online:
                    self._online.add(change.user_id)
                else:
                    self._online.discard(change.user_id)
            event = Presence(
                login=change.login,
                online=change.online,
                last_seen=None if change.online else change.at,
            )
            self.events.ephemeral(event, None)


def _save_seen(seen: dict[int, float], tx: Tx) -> None:
    for user_id, at in seen.items():
        tx.set_last_seen(user_id, at)
