"""What a handler sees and returns: Request, Body, Response, StreamResponse, ResponseStream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from messenger_protocol import ApiError, ErrorCode

__all__ = [
    "Body",
    "Handler",
    "Headers",
    "Request",
    "Response",
    "ResponseStream",
    "StreamResponse",
]


class Headers:
    """Request headers: case-insensitive names, several values per name kept."""

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw  # names are lowercase (the parser lowers them)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        key = name.lower().encode("latin-1")
        for k, v in self._raw:
            if k == key:
                return v.decode("latin-1")
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in arrival order."""
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self._raw if k == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for k, v in self._raw:
            yield k.decode("latin-1"), v.decode("latin-1")

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"


class BodySource(Protocol):
    """The connection side of a :class:`Body` (implemented by the server)."""

    async def next_body_chunk(self) -> bytes | None:
        """The next piece of the request body, or None at its end."""
        ...


class Body:
    """The request body, read on demand (nothing is read unless the handler asks)."""

    __slots__ = ("_cache", "_done", "_received", "_source", "_taken", "length")

    def __init__(
        self, source: BodySource | None, length: int | None, *, whole: bytes | None = None
    ) -> None:
        self._source = source
        self.length = length
        """Content-Length, or None for a chunked body."""
        self._taken: bool | None = None
        if whole is not None:
            # the whole body came with the head: nothing is left to read
            self._done = True
            self._received = len(whole)
            self._cache: bytes | None = whole
            self._taken = False
            return
        self._done = length == 0 or source is None
        self._received = 0
        self._cache = b"" if self._done else None

    @property
    def complete(self) -> bool:
        """The whole body has been received."""
        return self._done

    @property
    def received(self) -> int:
        """Body bytes received so far."""
        return self._received

    @property
    def taken(self) -> bool:
        """A body that came whole with its head (``whole``) was handed out (read, or its
        one chunk); False for every other body."""
        return bool(self._taken)

    async def read(self, limit: int) -> bytes:
        """The whole body; more than ``limit`` bytes is ``too_large`` (413).

        With a Content-Length above ``limit`` it fails before reading anything.
        """
        if self._cache is not None:
            if len(self._cache) > limit:
                raise _too_large(limit)
            if self._taken is False:
                self._taken = True
            return self._cache
        parts = [chunk async for chunk in self.chunks(limit)]
        self._cache = parts[0] if len(parts) == 1 else b"".join(parts)
        return self._cache

    async def chunks(self, limit: int) -> AsyncIterator[bytes]:
        """Stream the body; fails with ``too_large`` as soon as more than ``limit`` arrived."""
        if self.length is not None and self.length > limit:
            raise _too_large(limit)
        if self._done or self._source is None:
            if self._cache:
                if self._taken is False:
                    self._taken = True
                yield self._cache
            return
        while True:
            chunk = await self._source.next_body_chunk()
            if chunk is None:
                self._done = True
                return
            self._received += len(chunk)
            if self._received > limit:
                raise _too_large(limit)
            yield chunk


def _too_large(limit: int) -> ApiError:
    return ApiError(ErrorCode.TOO_LARGE, f"body exceeds {limit} bytes", limit=limit)


@dataclass(slots=True, eq=False)
class Request:
    """One parsed request, handed to the :data:`Handler`."""

    method: str
    """Uppercase method; ``HEAD`` is passed through (the router serves GET routes for it)."""
    path: str
    """The path as sent, not percent-decoded; no query part."""
    query: dict[str, str]
    """The parsed query string (the last value of a repeated name wins)."""
    headers: Headers
    peer: str
    """``ip:port`` of the client."""
    body: Body
    state: dict[str, object] = field(default_factory=dict)
    """Free slot for the app (e.g. the authenticated user)."""
    on_authenticated: Callable[[], None] | None = field(default=None, repr=False)

    def mark_authenticated(self) -> None:
        """Say the bearer token was valid: the connection gets the longer keep-alive timeout."""
        if self.on_authenticated is not None:
            self.on_authenticated()


@dataclass(slots=True)
class Response:
    """A complete response; Content-Length, Date and Server are added by the transport."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


class ResponseStream:
    """The open body of a :class:`StreamResponse`, handed to its producer.

    Writes go straight to the transport (no await per write); the producer
    checks :meth:`buffer_size` and awaits :meth:`drain` or calls :meth:`abort`
    for flow control. A producer of a close-delimited stream may hand the stream
    over with :meth:`keep_open` and return: an idle stream then costs no task.
    """

    __slots__ = ("_closed", "_closer", "_counter", "_drain", "_on_close", "_transport",
                 "_waiter", "kept", "peer")  # fmt: skip

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        peer: str,
        drain: Callable[[], Awaitable[None]],
        counter: Callable[[bytes], bytes] | None = None,
        closer: Callable[[], None] | None = None,
    ) -> None:
        self.peer = peer
        self._transport = transport
        self._drain = drain
        self._counter = counter  # Content-Length framing checks each piece
        self._closer = closer  # how the server closes it (None: the transport's close)
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._on_close: Callable[[], None] | None = None
        self.kept = False
        """Handed over by :meth:`keep_open`: it outlives its producer."""

    def write(self, data: bytes) -> None:
        """Queue bytes for the peer (dropped silently once the connection is closing)."""
        if self._transport.is_closing():
            return
        if self._counter is not None:
            data = self._counter(data)
        self._transport.write(data)

    def writelines(self, chunks: Iterable[bytes]) -> None:
        """Queue several pieces at once: one transport call for all of them."""
        if self._transport.is_closing():
            return
        if self._counter is not None:
            chunks = [self._counter(chunk) for chunk in chunks]
        self._transport.writelines(chunks)

    def buffer_size(self) -> int:
        """Bytes queued in the transport and not yet sent."""
        return self._transport.get_write_buffer_size()

    async def drain(self) -> None:
        """Wait until the transport's buffer is low again (raises if the peer is gone)."""
        await self._drain()

    def abort(self) -> None:
        """Drop the connection now, unsent bytes included (a consumer that fell behind)."""
        self._transport.abort()

    def close(self) -> None:
        """End the stream after the queued bytes are sent (e.g. on logout)."""
        if self._closer is not None:
            self._closer()
        else:
            self._transport.close()

    def is_closing(self) -> bool:
        """The connection is closed or closing; writes are dropped."""
        return self._closed or self._transport.is_closing()

    async def wait_closed(self) -> None:
        """Return when the peer goes away or the connection is closed."""
        if self._closed:
            return
        if self._waiter is None or self._waiter.cancelled():
            # no shield (it costs two callbacks and a future per idle stream): a cancelled
            # waiter is simply replaced on the next call
            self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    def keep_open(self, on_close: Callable[[], None]) -> None:
        """Keep the stream open once the producer returns; ``on_close`` runs once when it
        ends (the peer left, or it was closed or aborted), at once if it already has.

        Whoever holds the stream (the event hub) writes to it from then on; nothing
        waits on it, so an idle stream costs no task, coroutine or future. Only a
        close-delimited stream (no ``content_length``) can be kept.
        """
        if self._counter is not None or self._closer is None:
            raise RuntimeError("only a close-delimited stream can be kept open")
        if self._closed:
            on_close()
            return
        self._on_close = on_close
        self.kept = True

    def mark_closed(self) -> None:
        """Called by the server when the connection ends."""
        self._closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()


@dataclass(slots=True)
class StreamResponse:
    """A response whose body a producer writes after the head is sent.

    With ``content_length`` the connection can be kept alive; without it the
    body ends when the connection closes (event streams). If the peer goes away
    first, the producer task is cancelled. ``abandoned`` is called instead of the
    producer when it never runs (a ``HEAD`` request, the peer gone before the head).
    """

    producer: Callable[[ResponseStream], Awaitable[None]]
    status: int = 200
    content_type: str = "application/octet-stream"
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_length: int | None = None
    abandoned: Callable[[], None] | None = None


Handler = Callable[[Request], Awaitable[Response | StreamResponse]]
"""The application: one request in, one response out."""
