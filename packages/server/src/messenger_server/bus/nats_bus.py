"""The NATS bus (nats-py, core NATS): at most once, in order per publisher.

One subject, ``<channel>.events``, for every node. nats-py reconnects by itself and
resubscribes; each (re)connection tells the handler, which repairs from the log.
While NATS is unreachable nats-py buffers a little of what is published and the
rest is dropped (the other nodes' windows read it from the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from . import BusHandler, BusMessage, encode_message, redact
from ._link import BusLink

__all__ = ["NatsBus"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2
"""Seconds to wait for a connection (then the next try)."""
RETRY_WAIT = 0.5
"""Pause between reconnection attempts."""


class NatsBus:
    """:class:`~messenger_server.bus.EventBus` on core NATS."""

    def __init__(self, url: str, channel: str) -> None:
        self.url = url
        self.subject = f"{channel}.events"
        self._link = BusLink(redact(url), self.subject, (NatsError, OSError))
        self._nc: Client | None = None
        self._handler: BusHandler | None = None
        self._task: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._closing = False
        self.dropped = 0
        """Messages not published (NATS unreachable)."""

    @property
    def name(self) -> str:
        """The URL without its password."""
        return redact(self.url)

    @property
    def connected(self) -> bool:
        """Subscribed now."""
        return self._link.connected

    async def start(self, handler: BusHandler) -> None:
        """Connect (retrying in the background); wait up to 5 s for the subscription."""
        self._handler = handler
        self._task = asyncio.create_task(self._connect(), name="nats-bus-connect")
        await self._link.wait_started()

    async def _connect(self) -> None:
        while True:
            try:
                nc = await nats.connect(
                    self.url,
                    name="messenger",
                    connect_timeout=CONNECT_TIMEOUT,
                    reconnect_time_wait=RETRY_WAIT,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    no_echo=True,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                )
                await nc.subscribe(self.subject, cb=self._on_msg)
                await nc.flush()
            except (NatsError, OSError, TimeoutError) as exc:
                log.debug("bus %s: %s; retrying", self.name, exc)
                await asyncio.sleep(RETRY_WAIT)
                continue
            self._nc = nc
            self._publisher = asyncio.create_task(self._publish_loop(nc), name="nats-bus-pub")
            await self._reconnected()
            return

    async def _on_msg(self, msg: Msg) -> None:
        if self._handler is not None:
            self._link.deliver(self._handler, msg.data)

    async def _disconnected(self) -> None:
        if self._closing:
            self._link.connected = False
        else:
            self._link.down("disconnected")

    async def _reconnected(self) -> None:
        if self._handler is not None:
            self._link.up(self._handler)

    async def _error(self, exc: Exception) -> None:
        log.debug("bus %s: %s", self.name, exc)

    def publish(self, message: BusMessage) -> None:
        """Queue ``message`` for the publisher task (it sends in order)."""
        if self._nc is None:
            self.dropped += 1
            return
        self._queue.put_nowait(encode_message(message))

    async def _publish_loop(self, nc: Client) -> None:
        while True:
            data = await self._queue.get()
            try:
                await nc.publish(self.subject, data)
            except (NatsError, OSError) as exc:
                self.dropped += 1
                log.debug("bus publish failed: %s", exc)

    async def ping(self) -> bool:
        """NATS answers a flush (PING/PONG) within a second."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            return False
        try:
            await nc.flush(timeout=1)
        except (NatsError, OSError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        """Disconnect."""
        self._closing = True
        for task in (self._task, self._publisher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._publisher = None
        if self._nc is not None:
            with contextlib.suppress(NatsError, OSError):
                await self._nc.close()
            self._nc = None
        self._link.connected = False
