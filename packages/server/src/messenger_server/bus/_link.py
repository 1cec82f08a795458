"""The subscriber side every bus shares: connected state, the first-subscription wait,
reconnecting with a growing pause, and decoding what arrives.

:class:`BusLink` is used by the Redis, NATS and PostgreSQL buses alike. Each tells it
when it is subscribed (:meth:`BusLink.up`: the handler then repairs from the log, so the
subscription always comes BEFORE that read and nothing falls between) and when it lost
the connection (:meth:`BusLink.down`). Redis and PostgreSQL reconnect through
:meth:`BusLink.keep_listening`; nats-py reconnects by itself and calls up/down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

import msgspec

from . import BusHandler, decode_message

__all__ = ["RETRY_MAX", "START_WAIT", "BusLink"]

log = logging.getLogger(__name__)

T = TypeVar("T")

START_WAIT = 5.0
"""How long a bus's ``start`` waits for the first subscription."""
RETRY_MIN = 0.1
"""First pause before reconnecting."""
RETRY_MAX = 2.0
"""Longest pause between reconnection attempts."""


class BusLink:
    """Whether a bus is subscribed now, and what it does on the way up and down."""

    def __init__(self, name: str, where: str, errors: tuple[type[BaseException], ...]) -> None:
        self.name = name
        """The bus (without a password), for the log."""
        self.where = where
        """The channel or subject it listens on."""
        self.errors = errors
        """What the driver raises when the connection fails."""
        self.connected = False
        self._subscribed = asyncio.Event()

    async def wait_started(self) -> None:
        """Wait up to :data:`START_WAIT` for the first subscription (then go on without)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_WAIT):
                await self._subscribed.wait()
        if not self.connected:
            log.warning("bus %s not reachable yet; events reach other nodes via the database",
                        self.name)  # fmt: skip

    def up(self, handler: BusHandler) -> None:
        """Subscribed (again): the handler reads from the log what the bus carried meanwhile."""
        if not self.connected:
            log.info("bus %s subscribed to %s", self.name, self.where)
        self.connected = True
        self._subscribed.set()
        handler.on_bus_connected()

    def down(self, why: object) -> None:
        """The connection is gone (said once, not per retry)."""
        if self.connected:
            log.warning("bus %s lost: %s; retrying", self.name, why)
        self.connected = False

    def deliver(self, handler: BusHandler, data: bytes) -> None:
        """Decode one bus message and hand it over (something not ours is passed over)."""
        try:
            message = decode_message(data)
        except msgspec.DecodeError:
            log.warning("ignoring a message on %s that is not ours", self.where)
            return
        handler.on_bus_message(message)

    async def keep_listening(
        self,
        handler: BusHandler,
        listen: Callable[[], AbstractAsyncContextManager[AsyncIterator[T]]],
        received: Callable[[T], None],
    ) -> None:
        """Forever: subscribe (``listen`` yields what arrives once subscribed), hand each
        item to ``received``; after a failure pause (growing up to :data:`RETRY_MAX`) and
        subscribe again."""
        pause = RETRY_MIN
        while True:
            try:
                async with listen() as items:
                    self.up(handler)
                    pause = RETRY_MIN
                    async for item in items:
                        received(item)
                raise ConnectionError("subscription ended")
            except self.errors as exc:
                self.down(exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX)
