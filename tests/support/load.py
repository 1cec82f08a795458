"""Load for cluster tests, and the invariant checker over what the clients got.

:class:`Poster` posts one message after another, each retried with its ``client_id``
until answered (as the client's outbox does). :func:`check_streams` checks
:class:`~tests.support.wire.ResumingReader` streams against the database: ids strictly
increase across reconnects (no duplicate), no ``reset``, and the set of messages each got
is exactly what was stored (no gap), which is every acknowledged message, each once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet

import httpx

from messenger_client.api import tls_context
from messenger_protocol import Event, MessageCreated, Reset
from tests.support import postgres
from tests.support.wire import ResumingReader

__all__ = ["WAIT", "Poster", "check_streams", "is_text"]

WAIT = 180.0
"""Deadline for a whole run (a loaded 2-core machine; nothing waits on time)."""


def is_text(text: str) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, MessageCreated) and e.message.text == text


class Poster:
    """Posts to the general chat through the balancer, one message after another, each
    retried with its ``client_id`` until answered, as the client's outbox does."""

    def __init__(self, base: str, token: str, name: str) -> None:
        self.base = base
        self.token = token
        self.name = name
        self.acked: list[int] = []
        self.retries = 0
        self.refusals: list[str] = []
        self.stop = False
        self.progress = asyncio.Condition()

    async def post(self, client: httpx.AsyncClient, text: str) -> int:
        body = {"text": text, "client_id": uuid.uuid4().hex}
        while True:
            try:
                resp = await client.post(
                    f"{self.base}/api/v1/chats/1/messages", json=body,
                    headers={"Authorization": f"Bearer {self.token}"},
                )  # fmt: skip
            except httpx.TransportError:
                self.retries += 1  # the connection broke: the same send again
                continue
            if resp.status_code != 200:
                self.refusals.append(resp.text)
                raise AssertionError(f"{self.name}: {resp.status_code} {resp.text}")
            message_id: int = resp.json()["id"]
            return message_id

    async def run(self) -> None:
        async with httpx.AsyncClient(verify=tls_context(), timeout=30.0) as client:
            n = 0
            while not self.stop:
                self.acked.append(await self.post(client, f"{self.name}-{n}"))
                n += 1
                async with self.progress:
                    self.progress.notify_all()

    async def wait_for_more(self, count: int) -> None:
        """Until ``count`` more sends than now are answered."""
        target = len(self.acked) + count
        async with asyncio.timeout(WAIT), self.progress:
            await self.progress.wait_for(lambda: len(self.acked) >= target)


def check_streams(
    store: str,
    readers: Sequence[ResumingReader],
    posters: Iterable[Poster],
    *,
    after: int,
    extra: AbstractSet[int] = frozenset(),
) -> set[int]:
    """The invariants over general-chat messages with ids above ``after`` (every reader
    may see them all): each acknowledged message is stored once; each reader got exactly
    the stored ones, each once, with strictly increasing event ids and no reset. The
    stored ids."""
    posters = list(posters)
    acked = {m for p in posters for m in p.acked}
    assert len(acked) == sum(len(p.acked) for p in posters), "a send answered twice"
    stored = {
        row[0] for row in postgres.query(store, "SELECT id FROM messages WHERE id > %s", [after])
    }
    assert stored == acked | extra, "an acknowledged message is not stored, or one twice"
    for i, reader in enumerate(readers):
        ids = [seq for seq, _ in reader.events if seq is not None]
        assert ids == sorted(set(ids)), f"reader {i}: an id twice or out of order"
        assert not [e for _, e in reader.events if isinstance(e, Reset)], f"reader {i}: reset"
        got = [e.message.id for _, e in reader.events if isinstance(e, MessageCreated)]
        assert len(got) == len(set(got)), f"reader {i}: a message twice"
        assert {m for m in got if m > after} == stored, f"reader {i}: a gap"
        assert reader.refusals == [], f"reader {i}: {reader.refusals}"
    return stored
