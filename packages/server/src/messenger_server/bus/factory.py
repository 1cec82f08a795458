"""The composition root's choice of bus (apart from :mod:`messenger_server.bus`, so the
services that use the bus's types never import a bus's client library or database
driver)."""

from __future__ import annotations

import os

from . import TEST_FAULTS_ENV, EventBus, FaultyBus, LocalBus, is_local_bus

__all__ = ["bus_for"]


def bus_for(url: str, channel: str, store: str = "") -> EventBus:
    """The bus a ``--bus`` value names; ``channel`` prefixes its channel or subject;
    ``store`` is the database ``postgres`` notifies on.

    With ``MESSENGER_TEST_FAULTS`` set (tests only) it loses or delays batches.
    """
    bus = _bus_for(url, channel, store)
    faults = os.environ.get(TEST_FAULTS_ENV, "")
    return FaultyBus(bus, faults) if faults and not is_local_bus(url) else bus


def _bus_for(url: str, channel: str, store: str) -> EventBus:
    if is_local_bus(url):
        return LocalBus()
    if url == "postgres":
        if not store:
            raise ValueError("the postgres bus needs a postgresql:// store")
        from .pg_bus import PostgresBus

        return PostgresBus(store, channel)
    if url.startswith(("redis://", "rediss://")):
        from .redis_bus import RedisBus

        return RedisBus(url, channel)
    if url.startswith(("nats://", "tls://")):
        from .nats_bus import NatsBus

        return NatsBus(url, channel)
    raise ValueError(f"unknown bus {url!r}")
