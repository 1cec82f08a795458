"""Raw-wire helpers for end-to-end tests: JSON calls with httpx and an SSE reader on sockets."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from messenger_client.api import tls_context
from messenger_protocol import Event, MessageCreated, SseEvent, SseParser, decode_event

WAIT = 30.0
"""Deadline for an expected event: generous, so a loaded machine passes. A deadline, not a
pause: waiting ends the moment the event is there, and nothing depends on a quiet spell."""

Numbered = tuple[int | None, Event]
"""An event with its stream id."""


def message_event(message_id: int) -> Callable[[Event], bool]:
    """For :meth:`SseReader.until`: the event that delivers message ``message_id``."""
    return lambda e: isinstance(e, MessageCreated) and e.message.id == message_id


async def call(
    base: str,
    method: str,
    path: str,
    token: str | None = None,
    json: Any = None,
    **kwargs: Any,
) -> httpx.Response:
    """One JSON request; returns the raw response (status is not checked)."""
    headers = dict(kwargs.pop("headers", {}))
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(verify=tls_context(), base_url=base, timeout=WAIT) as client:
        return await client.request(method, path, json=json, headers=headers, **kwargs)


async def register(base: str, login: str, password: str = "password1") -> dict[str, Any]:
    """Register ``login`` and return the session body."""
    resp = await call(
        base, "POST", "/api/v1/auth/register", json={"login": login, "password": password}
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def send(base: str, token: str, text: str, chat_id: int = 1, **extra: Any) -> httpx.Response:
    """Post ``text`` to a chat."""
    return await call(
        base, "POST", f"/api/v1/chats/{chat_id}/messages", token, {"text": text, **extra}
    )


def proxy_v2_header(
    source: tuple[str, int] | None,
    destination: tuple[str, int] = ("127.0.0.1", 8000),
    *,
    tlvs: bytes = b"",
) -> bytes:
    """A PROXY protocol v2 header as HAProxy's ``send-proxy-v2`` writes it: PROXY over
    TCP from ``source`` (IPv4 or IPv6), or LOCAL when ``source`` is None."""
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    if source is None:
        return signature + b"\x20\x00" + len(tlvs).to_bytes(2, "big") + tlvs
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version == 4:
        dst = dst if dst.version == 4 else ipaddress.IPv4Address("127.0.0.1")
        family = b"\x11"
    else:
        dst = dst if dst.version == 6 else ipaddress.IPv6Address("::1")
        family = b"\x21"
    body = src.packed + dst.packed + source[1].to_bytes(2, "big")
    body += destination[1].to_bytes(2, "big") + tlvs
    return signature + b"\x21" + family + len(body).to_bytes(2, "big") + body


async def raw_exchange(base: str, data: bytes, timeout: float = 5.0) -> bytes:
    """Write raw bytes on a new connection and read until the server closes it (or timeout)."""
    parts = urlsplit(base)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        try:
            async with asyncio.timeout(timeout):
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)
    finally:
        writer.close()


class SseReader:
    """An event stream on a raw socket: ``await reader.next()`` gives the next event."""

    def __init__(self, base: str, token: str, last_event_id: int | None = None) -> None:
        self.base = base
        self.token = token
        self.last_event_id = last_event_id
        self.parser = SseParser()
        self.pending: list[SseEvent] = []
        self.status = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> SseReader:
        parts = urlsplit(self.base)
        self._reader, self._writer = await asyncio.open_connection(parts.hostname, parts.port)
        resume = (
            f"Last-Event-ID: {self.last_event_id}\r\n" if self.last_event_id is not None else ""
        )
        self._writer.write(
            f"GET /api/v1/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {self.token}\r\n"
            f"Accept: text/event-stream\r\n{resume}\r\n".encode()
        )
        head = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), 10)
        self.status = int(head.split(b" ", 2)[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def local_port(self) -> int:
        """The port of our end of the connection (what the server sees, unproxied)."""
        assert self._writer is not None
        port: int = self._writer.get_extra_info("sockname")[1]
        return port

    async def close(self) -> None:
        """Drop the connection."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def next_raw(self, timeout: float = WAIT) -> SseEvent:
        """The next SSE event (presence included)."""
        assert self._reader is not None
        async with asyncio.timeout(timeout):
            while not self.pending:
                chunk = await self._reader.read(65536)
                if not chunk:
                    raise ConnectionError("event stream closed")
                self.pending += self.parser.feed(chunk)
        return self.pending.pop(0)

    async def next(
        self, timeout: float = WAIT, *, skip: tuple[str, ...] = ("presence",)
    ) -> tuple[int | None, Event]:
        """The next event with its id, skipping ephemeral kinds in ``skip``."""
        while True:
            raw = await self.next_raw(timeout)
            if raw.event in skip:
                continue
            return (int(raw.id) if raw.id is not None else None), decode_event(raw.data)

    async def until(
        self, last: Callable[[Event], bool], *, timeout: float = WAIT
    ) -> list[Numbered]:
        """Every event (presence skipped) up to and including the first that ``last``
        accepts. To show that something does NOT come, make the sender send a later event
        and wait for that one: everything before it has arrived by then."""
        events: list[Numbered] = []
        async with asyncio.timeout(timeout):
            while True:
                events.append(await self.next(timeout))
                if last(events[-1][1]):
                    return events

    async def take(
        self, count: int, where: Callable[[Event], bool], *, timeout: float = WAIT
    ) -> list[Event]:
        """The first ``count`` events that ``where`` accepts (others are passed over)."""
        found: list[Event] = []
        async with asyncio.timeout(timeout):
            while len(found) < count:
                _, event = await self.next(timeout)
                if where(event):
                    found.append(event)
        return found


class ResumingReader:
    """A user's event stream that resumes whenever it is closed, as a client does.

    Each time the connection ends (closed, reset, refused, or ``503`` from a node that
    is shutting down) it opens a new one with ``Last-Event-ID`` of the last event with
    an id, and counts a reconnect. Unlike the client library it drops nothing: every
    (id, event) of every connection is kept in :attr:`events`, so a test sees a
    duplicate or an id out of order, and any other answer is kept in :attr:`refusals`.
    """

    RECONNECT_PAUSE = 0.05
    """A client's pause before it reconnects (so a cluster with no node up is not spun on)."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token
        self.events: list[Numbered] = []
        self.last_event_id: int | None = None
        self.connections = 0
        """Streams that were answered 200."""
        self.reconnects = 0
        self.refusals: list[int] = []
        """Statuses of answers other than 200 and 503."""
        self._arrived = asyncio.Condition()

    async def seen(self, what: Callable[[Event], bool], *, timeout: float = WAIT) -> None:
        """Wait until an event that ``what`` accepts has arrived (while :meth:`run_until`
        reads in another task)."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: any(what(e) for _, e in self.events))

    async def run_until(self, last: Callable[[Event], bool], *, timeout: float = WAIT) -> None:
        """Read (resuming as needed) until an event that ``last`` accepts."""
        async with asyncio.timeout(timeout):
            while True:
                if self.connections or self.reconnects:
                    await asyncio.sleep(self.RECONNECT_PAUSE)
                try:
                    if await self._one_connection(last):
                        return
                except (OSError, EOFError):
                    pass  # reset or refused: a reconnect, like a close
                self.reconnects += 1

    async def _one_connection(self, last: Callable[[Event], bool]) -> bool:
        async with SseReader(self.base, self.token, self.last_event_id) as reader:
            if reader.status != 200:
                if reader.status != 503:
                    self.refusals.append(reader.status)
                return False
            self.connections += 1
            while True:
                numbered = await reader.next(timeout=3 * 3600)
                self.events.append(numbered)
                if numbered[0] is not None:
                    self.last_event_id = numbered[0]
                async with self._arrived:
                    self._arrived.notify_all()
                if last(numbered[1]):
                    return True
