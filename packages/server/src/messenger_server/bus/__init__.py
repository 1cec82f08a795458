"""The event bus: committed events (and ephemeral frames) from one node to every other.

One bus message per committed batch: the writing node hands its batch to its own
:class:`~messenger_server.window.EventWindow` at once and publishes it here after the
commit; every other node's window puts it in order. The event log in the database is
the record, so a bus may lose or delay a message: the windows repair gaps from the log.

``local`` (the default) is one node: :class:`LocalBus` carries nothing. ``redis://…``
(:mod:`.redis_bus`, pub/sub), ``nats://…`` (:mod:`.nats_bus`, core NATS) and
``postgres`` (:mod:`.pg_bus`, LISTEN/NOTIFY on the store's database) connect nodes that
share one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import NoReturn, Protocol

import msgspec

__all__ = [
    "BUS_SCHEMES",
    "OTHER_FAULTS",
    "TEST_FAULTS_ENV",
    "Batch",
    "BusEvent",
    "BusHandler",
    "BusMessage",
    "Ephemeral",
    "EventBus",
    "FaultyBus",
    "LocalBus",
    "decode_message",
    "encode_message",
    "is_local_bus",
    "redact",
    "test_fault",
]

log = logging.getLogger(__name__)

BUS_SCHEMES = ("redis://", "rediss://", "nats://", "tls://")
"""How a ``--bus`` URL other than ``local`` and ``postgres`` begins."""


class BusEvent(msgspec.Struct, frozen=True):
    """One committed event: its seq, its encoded SSE frame, its recipients (None: all),
    and the sessions whose streams end once it is delivered (``session_ended``)."""

    seq: int
    frame: bytes
    recipients: list[int] | None
    end_sessions: list[str] = []


class Batch(msgspec.Struct, frozen=True, tag="batch"):
    """The events of one commit of one node, in seq order."""

    node: str
    boot: str
    events: list[BusEvent]


class Ephemeral(msgspec.Struct, frozen=True, tag="ephemeral"):
    """A frame without an id (presence, typing): best effort, never repaired."""

    node: str
    boot: str
    frame: bytes
    recipients: list[int] | None


BusMessage = Batch | Ephemeral

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Batch | Ephemeral] = msgspec.msgpack.Decoder(BusMessage)


def encode_message(message: BusMessage) -> bytes:
    """The bytes a bus carries."""
    return _encoder.encode(message)


def decode_message(data: bytes) -> BusMessage:
    """A bus message from its bytes (``msgspec.DecodeError`` if they are not one)."""
    return _decoder.decode(data)


class BusHandler(Protocol):
    """What a bus hands its messages to (the node's event service)."""

    def on_bus_message(self, message: BusMessage) -> None:
        """A message from another node."""
        ...

    def on_bus_connected(self) -> None:
        """(Re)subscribed: what was published meanwhile is lost, repair from the log."""
        ...


class EventBus(Protocol):
    """Carries bus messages between the nodes of one cluster."""

    @property
    def name(self) -> str:
        """``local``, or the URL without its password (for logs and ``/readyz``)."""
        ...

    @property
    def connected(self) -> bool:
        """Subscribed now (always True for the local bus)."""
        ...

    async def start(self, handler: BusHandler) -> None:
        """Connect and subscribe (waits a little for the first subscription)."""
        ...

    def publish(self, message: BusMessage) -> None:
        """Send ``message`` to every other node, in publish order; never blocks."""
        ...

    async def ping(self) -> bool:
        """The bus answers now."""
        ...

    async def close(self) -> None:
        """Disconnect."""
        ...


class LocalBus:
    """One node: nothing to carry (the node's window gets its own batches directly)."""

    name = "local"
    connected = True

    async def start(self, handler: BusHandler) -> None:
        """Nothing to connect."""

    def publish(self, message: BusMessage) -> None:
        """No other node."""

    async def ping(self) -> bool:
        """Always reachable."""
        return True

    async def close(self) -> None:
        """Nothing to close."""


def redact(url: str) -> str:
    """A bus URL without its password (for logs)."""
    scheme, sep, rest = url.partition("://")
    auth, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user = auth.split(":", 1)[0] if ":" in auth else ""
    return f"{scheme}://{user}:***@{host}"


TEST_FAULTS_ENV = "MESSENGER_TEST_FAULTS"
"""Test-only faults of this node's bus, comma-separated: ``drop_publish`` (never publish
anything: a node killed between commit and publish, every time),
``delay_publish_ms:N`` (publish each batch N ms late) and ``exit_before_publish:N``
(the process exits at once in place of publishing its Nth batch: killed after a commit,
before the event went out and before the write was answered). ``exit_mid_retention:N``
(the process exits inside a retention pass, after its Nth deletion and before its commit)
is the retention service's, ``exit_mid_schedule:N`` (the process exits inside a scheduler
pass, after its Nth due message was posted and before that batch's commit) the
scheduler's, ``delay_spans_ms:N`` (write each change of the online spans
N ms late: a busy database) the disappearing messages', ``delay_blob_delete_ms:N`` (a
clean-up deletes the blobs it holds for deletion N ms later) the file service's; the bus
passes them over."""

OTHER_FAULTS = (
    "exit_mid_retention",
    "exit_mid_schedule",
    "delay_spans_ms",
    "delay_blob_delete_ms",
)
"""Test faults of :data:`TEST_FAULTS_ENV` that are not the bus's."""


def test_fault(name: str) -> int:
    """The number given to the test fault ``name`` in :data:`TEST_FAULTS_ENV` (0: none)."""
    for fault in os.environ.get(TEST_FAULTS_ENV, "").split(","):
        key, _, value = fault.strip().partition(":")
        if key == name and value.isdigit():
            return int(value)
    return 0


def exit_for_test_fault(what: str) -> NoReturn:
    """End the process at once as a test fault asks (exit code 70, no clean-up: a node
    killed there), after a warning line saying ``what`` it was doing."""
    log.warning("test fault: exiting %s", what)
    logging.shutdown()
    os._exit(70)


class FaultyBus:
    """A bus that loses this node's messages or delays its batches (tests only, see
    TEST_FAULTS_ENV)."""

    def __init__(self, inner: EventBus, faults: str) -> None:
        self.inner = inner
        self.drop = False
        self.delay = 0.0
        self.exit_at = 0
        self.batches = 0
        for fault in (f.strip() for f in faults.split(",") if f.strip()):
            name, _, value = fault.partition(":")
            if name == "drop_publish":
                self.drop = True
            elif name == "delay_publish_ms" and value.isdigit():
                self.delay = int(value) / 1000
            elif name == "exit_before_publish" and value.isdigit():
                self.exit_at = int(value)
            elif name in OTHER_FAULTS:
                continue
            else:
                raise ValueError(f"unknown test fault {fault!r}")
        log.warning("test faults on the bus: %s", faults)

    @property
    def name(self) -> str:
        """The inner bus's name."""
        return self.inner.name

    @property
    def connected(self) -> bool:
        """The inner bus's state."""
        return self.inner.connected

    async def start(self, handler: BusHandler) -> None:
        """Start the inner bus."""
        await self.inner.start(handler)

    def publish(self, message: BusMessage) -> None:
        """Drop anything or delay a batch as configured."""
        if self.drop:
            return
        if isinstance(message, Batch) and self.exit_at:
            self.batches += 1
            if self.batches == self.exit_at:
                exit_for_test_fault(f"before publishing batch {self.batches}")
        if isinstance(message, Batch) and self.delay:
            asyncio.get_running_loop().call_later(self.delay, self.inner.publish, message)
            return
        self.inner.publish(message)

    async def ping(self) -> bool:
        """The inner bus's answer."""
        return await self.inner.ping()

    async def close(self) -> None:
        """Close the inner bus."""
        await self.inner.close()


def is_local_bus(url: str) -> bool:
    """The ``--bus`` value means one node."""
    return url in ("", "local")
