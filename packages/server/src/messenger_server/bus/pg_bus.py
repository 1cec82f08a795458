"""The PostgreSQL bus (``--bus postgres``): LISTEN/NOTIFY on the store's own database.

For a small cluster with no Redis or NATS. One channel, ``<channel>:events``. A message
that fits in a NOTIFY payload (PostgreSQL allows under 8000 bytes; msgpack, base64) goes
as it is; a bigger batch goes as a doorbell (an empty payload): every node's window then
reads the events from the log, as it does for any gap. A listener task on its own
connection (LISTEN needs a direct session, not one behind a transaction pooler)
re-listens after a lost connection, then the handler repairs from the log; a publisher
task sends the queued notifications in order on a second connection. While PostgreSQL is
unreachable nothing is published (nothing is committed then either).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

import psycopg
from psycopg import sql

from . import Batch, BusHandler, BusMessage, encode_message
from ._link import BusLink

__all__ = ["NOTIFY_MAX", "PostgresBus"]

log = logging.getLogger(__name__)

NOTIFY_MAX = 7900
"""Largest payload sent (PostgreSQL refuses 8000 bytes and more); bigger batches ring."""
DOORBELL = ""
"""The payload of a batch too big to carry: read the log."""
CONNECT_TIMEOUT = 2
"""Seconds to wait for a connection (then the next try)."""
QUEUE_MAX = 10_000
"""Notifications queued beyond which new ones are dropped (PostgreSQL is down)."""


class PostgresBus:
    """:class:`~messenger_server.bus.EventBus` on PostgreSQL LISTEN/NOTIFY."""

    def __init__(self, store_url: str, channel: str) -> None:
        self.store_url = store_url
        self.channel = f"{channel}:events"
        if len(self.channel.encode()) > 63:  # PostgreSQL's identifier limit
            raise ValueError(f"bus channel {channel!r} is too long for PostgreSQL (56 bytes)")
        self.name = "postgres"
        self._link = BusLink(self.name, self.channel, (psycopg.Error, OSError))
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._sender: psycopg.AsyncConnection[object] | None = None
        self.dropped = 0
        """Notifications not sent (PostgreSQL unreachable or the queue full)."""
        self.rung = 0
        """Batches sent as a doorbell (too big for a payload)."""

    @property
    def connected(self) -> bool:
        """Listening now."""
        return self._link.connected

    async def start(self, handler: BusHandler) -> None:
        """Start the listener and the publisher; wait up to 5 s for the LISTEN."""
        self._tasks = [
            asyncio.create_task(
                self._link.keep_listening(handler, self._listen, partial(self._received, handler)),
                name="pg-bus-listen",
            ),
            asyncio.create_task(self._publish_loop(), name="pg-bus-notify"),
        ]
        await self._link.wait_started()

    def publish(self, message: BusMessage) -> None:
        """Queue ``message`` (or, for a batch too big, a doorbell) for the publisher."""
        if self._queue.qsize() >= QUEUE_MAX:
            self.dropped += 1
            return
        payload = base64.b64encode(encode_message(message)).decode("ascii")
        if len(payload) > NOTIFY_MAX:
            if not isinstance(message, Batch):
                self.dropped += 1  # a presence frame this big: best effort, as always
                return
            self.rung += 1
            payload = DOORBELL
        self._queue.put_nowait(payload)

    async def ping(self) -> bool:
        """The publishing connection answers within a second."""
        try:
            async with asyncio.timeout(1.0):
                if self._sender is None or self._sender.closed or self._sender.broken:
                    self._sender = await self._connect()
                await self._sender.execute("SELECT 1")
        except (psycopg.Error, OSError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        """Stop both tasks and disconnect."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._sender is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._sender.close()
            self._sender = None
        self._link.connected = False

    async def _connect(self) -> psycopg.AsyncConnection[object]:
        conn: psycopg.AsyncConnection[object] = await psycopg.AsyncConnection.connect(
            self.store_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
        )
        return conn

    @contextlib.asynccontextmanager
    async def _listen(self) -> AsyncIterator[AsyncIterator[psycopg.Notify]]:
        conn = await self._connect()
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            yield conn.notifies()
        finally:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    def _received(self, handler: BusHandler, notify: psycopg.Notify) -> None:
        if notify.payload == DOORBELL:
            handler.on_bus_connected()  # "read the log": the same repair as after a gap
            return
        try:
            data = base64.b64decode(notify.payload, validate=True)
        except binascii.Error:
            log.warning("ignoring a notification on the bus channel that is not ours")
            return
        self._link.deliver(handler, data)

    async def _publish_loop(self) -> None:
        while True:
            payload = await self._queue.get()
            try:
                if self._sender is None or self._sender.closed or self._sender.broken:
                    self._sender = await self._connect()
                await self._sender.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))
            except (psycopg.Error, OSError) as exc:
                self.dropped += 1
                log.debug("bus notify failed: %s", exc)
