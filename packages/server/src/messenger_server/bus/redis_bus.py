"""The Redis pub/sub bus (redis-py asyncio): at most once, in order per publisher.

One channel, ``<channel>:events``, for every node. A subscriber task reads it and
resubscribes after a lost connection (then the handler repairs from the log); a
publisher task sends the queued messages in order on a second connection. While
Redis is unreachable, publishing drops messages (the other nodes' windows read them
from the database) and the subscriber retries with a growing pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import BusHandler, BusMessage, encode_message, redact
from ._link import BusLink

__all__ = ["RedisBus"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
"""Seconds to wait for a connection (then the next try)."""
QUEUE_MAX = 10_000
"""Messages queued for publishing beyond which new ones are dropped (Redis is down)."""


class RedisBus:
    """:class:`~messenger_server.bus.EventBus` on Redis pub/sub."""

    def __init__(self, url: str, channel: str) -> None:
        self.url = url
        self.channel = f"{channel}:events"
        self._link = BusLink(redact(url), self.channel, (RedisError, OSError))
        self._client: aioredis.Redis | None = None
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0
        """Messages not published (Redis unreachable or the queue full)."""

    @property
    def name(self) -> str:
        """The URL without its password."""
        return redact(self.url)

    @property
    def connected(self) -> bool:
        """Subscribed now."""
        return self._link.connected

    async def start(self, handler: BusHandler) -> None:
        """Start the subscriber and the publisher; wait up to 5 s for the subscription."""
        self._client = aioredis.Redis.from_url(
            self.url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=None,
            health_check_interval=5,
        )
        self._tasks = [
            asyncio.create_task(
                self._link.keep_listening(handler, self._listen, partial(self._received, handler)),
                name="redis-bus-sub",
            ),
            asyncio.create_task(self._publish_loop(), name="redis-bus-pub"),
        ]
        await self._link.wait_started()

    def _received(self, handler: BusHandler, raw: dict[str, Any]) -> None:
        if raw.get("type") == "message":
            self._link.deliver(handler, raw["data"])

    def publish(self, message: BusMessage) -> None:
        """Queue ``message`` for the publisher task."""
        if self._queue.qsize() >= QUEUE_MAX:
            self.dropped += 1
            return
        self._queue.put_nowait(encode_message(message))

    async def ping(self) -> bool:
        """Redis answers PING within a second."""
        if self._client is None:
            return False
        try:
            async with asyncio.timeout(1.0):
                return bool(await self._client.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        """Stop both tasks and disconnect."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._client.aclose()
            self._client = None
        self._link.connected = False

    @contextlib.asynccontextmanager
    async def _listen(self) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        assert self._client is not None
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            yield pubsub.listen()
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _publish_loop(self) -> None:
        assert self._client is not None
        while True:
            data = await self._queue.get()
            try:
                await self._client.publish(self.channel, data)
            except (RedisError, OSError) as exc:
                self.dropped += 1
                log.debug("bus publish failed: %s", exc)
