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

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import BusHandler, BusMessage, decode_message, encode_message, redact

__all__ = ["RedisBus"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
"""Seconds to wait for a connection (then the next try)."""
START_WAIT = 5.0
"""How long :meth:`RedisBus.start` waits for the first subscription."""
RETRY_MAX = 2.0
"""Longest pause between reconnection attempts."""
QUEUE_MAX = 10_000
"""Messages queued for publishing beyond which new ones are dropped (Redis is down)."""


class RedisBus:
    """:class:`~messenger_server.bus.EventBus` on Redis pub/sub."""

    def __init__(self, url: str, channel: str) -> None:
        self.url = url
        self.channel = f"{channel}:events"
        self.connected = False
        self._client: aioredis.Redis | None = None
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self.dropped = 0
        """Messages not published (Redis unreachable or the queue full)."""

    @property
    def name(self) -> str:
        """The URL without its password."""
        return redact(self.url)

    async def start(self, handler: BusHandler) -> None:
        """Start the subscriber and the publisher; wait up to 5 s for the subscription."""
        self._client = aioredis.Redis.from_url(
            self.url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=None,
            health_check_interval=5,
        )
        self._tasks = [
            asyncio.create_task(self._subscribe(handler), name="redis-bus-sub"),
            asyncio.create_task(self._publish_loop(), name="redis-bus-pub"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_WAIT):
                await self._subscribed.wait()
        if not self.connected:
            log.warning("bus %s not reachable yet; events reach other nodes via the database",
                        self.name)  # fmt: skip

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
        self.connected = False

    async def _subscribe(self, handler: BusHandler) -> None:
        assert self._client is not None
        pause = 0.1
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                # subscribed BEFORE the handler reads the log: nothing falls between
                if not self.connected:
                    log.info("bus %s subscribed to %s", self.name, self.channel)
                self.connected = True
                self._subscribed.set()
                pause = 0.1
                handler.on_bus_connected()
                async for raw in pubsub.listen():
                    if raw.get("type") != "message":
                        continue
                    try:
                        message = decode_message(raw["data"])
                    except msgspec.DecodeError:
                        log.warning("ignoring a message on %s that is not ours", self.channel)
                        continue
                    handler.on_bus_message(message)
                raise ConnectionError("subscription ended")
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning("bus %s lost: %s; retrying", self.name, exc)
                self.connected = False
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX)

    async def _publish_loop(self) -> None:
        assert self._client is not None
        while True:
            data = await self._queue.get()
            try:
                await self._client.publish(self.channel, data)
            except (RedisError, OSError) as exc:
                self.dropped += 1
                log.debug("bus publish failed: %s", exc)
