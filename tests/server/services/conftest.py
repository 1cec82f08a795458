"""A real App (SQLite in tmp_path, the local hub) driven through its services, no HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from messenger_protocol import BaseEvent, Credentials, SseParser, decode_event
from messenger_server.app import App, LiveStream
from messenger_server.config import Settings
from messenger_server.hub import LocalHub
from messenger_server.services import Actor

PASSWORD = "password1"


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.value = now
        self._moved: asyncio.Event | None = None

    def now(self) -> float:
        """The current test time."""
        return self.value

    async def sleep_until(self, when: float) -> None:
        """Wait until the test moves time to ``when``."""
        while self.value < when:
            if self._moved is None:
                self._moved = asyncio.Event()
            await self._moved.wait()

    def advance(self, seconds: float) -> None:
        """Move time forward (waking sleepers that are due)."""
        self.value += seconds
        moved, self._moved = self._moved, None
        if moved is not None:
            moved.set()


class Sink:
    """An event stream that keeps what the hub writes to it."""

    def __init__(self, peer: str = "127.0.0.1:40000") -> None:
        self.peer = peer
        self.chunks: list[bytes] = []
        self.closed = False
        self._parser = SseParser()
        self._seen = 0

    def writelines(self, chunks: Iterable[bytes]) -> None:
        self.chunks.extend(chunks)

    def buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def take(self) -> list[tuple[int | None, BaseEvent]]:
        """Events written since the last call, with their ids."""
        new, self._seen = self.chunks[self._seen :], len(self.chunks)
        out: list[tuple[int | None, BaseEvent]] = []
        for event in self._parser.feed(b"".join(new)):
            out.append((None if event.id is None else int(event.id), decode_event(event.data)))
        return out


async def next_turn() -> None:
    """Let the group commit and the hub's flush (the turn after the commit's) run."""
    for _ in range(4):
        await asyncio.sleep(0)


@dataclass
class Harness:
    """The app and helpers to act as users."""

    app: App
    clock: ManualClock
    hub: LocalHub
    subs: list[LiveStream] = field(default_factory=list)

    async def user(self, login: str, address: str = "127.0.0.1:50000") -> Actor:
        """Register ``login`` and return the actor of that session."""
        session = await self.app.accounts.register(
            Credentials(login=login, password=PASSWORD), address.rpartition(":")[0]
        )
        return await self.app.accounts.authenticate(session.token, address)

    async def device(self, login: str, address: str = "127.0.0.1:50001") -> Actor:
        """Log ``login`` in once more (another client of the same user)."""
        session = await self.app.accounts.login(
            Credentials(login=login, password=PASSWORD), address.rpartition(":")[0]
        )
        return await self.app.accounts.authenticate(session.token, address)

    def stream(self, actor: Actor, peer: str = "127.0.0.1:40000") -> Sink:
        """Attach a live event stream for this session."""
        sink = Sink(peer)
        self.subs.append(self.app.open_stream(actor, sink))
        return sink


def make_app(data_dir: Path, clock: ManualClock, **settings: object) -> tuple[App, LocalHub]:
    """An app on ``data_dir`` with cheap password hashing and no general-chat rate limit."""
    hub = LocalHub()
    settings.setdefault("rate_limit_messages", 1_000_000)
    app = App(Settings(data_dir=data_dir, **settings), clock, hub)  # type: ignore[arg-type]
    app.accounts.hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    return app, hub


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """A started app in ``tmp_path``; closed after the test."""
    clock = ManualClock()
    app, hub = make_app(tmp_path, clock)
    await app.start()
    h = Harness(app, clock, hub)
    try:
        yield h
    finally:
        for sub in h.subs:
            app.close_stream(sub)
        await app.close()
