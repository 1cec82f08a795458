"""EventStream against a small SSE server on a real socket: drops, resume, no dup, no gap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from messenger_client import Client, ConnectionState, EventStream
from messenger_protocol import (
    ApiError,
    ErrorCode,
    Message,
    MessageCreated,
    Presence,
    encode,
    encode_event,
    sse_comment,
    sse_frame,
)

TIMEOUT = 10.0


def frame(event_id: int | None, text: str = "") -> bytes:
    """An SSE frame of a message event whose text defaults to its id."""
    message = Message(
        id=event_id or 0, chat_id=1, author="alice", text=text or str(event_id), created_at=1.0
    )
    return sse_frame(encode_event(MessageCreated(message=message)), "message", event_id)


Handler = Callable[[asyncio.StreamWriter, dict[str, str], asyncio.Event], Awaitable[None]]
"""Answers one connection: ``(writer, request headers, set when the server stops)``."""


class FakeEventServer:
    """Serves one scripted handler per connection and records each request's headers."""

    def __init__(self, handlers: list[Handler]) -> None:
        self.handlers = handlers
        self.requests: list[dict[str, str]] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.stopped = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> None:
        self.stopped.clear()
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        self.stopped.set()
        for writer in self._writers:
            writer.transport.abort()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = {}
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        self.requests.append(headers)
        handler = self.handlers[min(len(self.requests), len(self.handlers)) - 1]
        try:
            await handler(writer, headers, self.stopped)
        finally:
            self._writers.discard(writer)
            writer.close()


def stream_head(chunked: bool = False) -> bytes:
    framing = b"Transfer-Encoding: chunked\r\n" if chunked else b"Connection: close\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + framing + b"\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def serve_frames(*frames: bytes, then: str = "close") -> Handler:
    """Send the frames; then close cleanly, abort mid-frame, or hold the stream open."""

    async def handler(
        writer: asyncio.StreamWriter, headers: dict[str, str], stopped: asyncio.Event
    ) -> None:
        writer.write(stream_head() + b"".join(frames))
        await writer.drain()
        if then == "abort":
            writer.write(frame(999)[:20])  # half a frame, then the connection dies
            await writer.drain()
            writer.transport.abort()
        elif then == "hold":
            await stopped.wait()

    return handler


def error_answer(status: int, code: ErrorCode, message: str) -> Handler:
    async def handler(
        writer: asyncio.StreamWriter, headers: dict[str, str], stopped: asyncio.Event
    ) -> None:
        body = encode(ApiError(code, message).body())
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (status, len(body), body)
        )
        await writer.drain()

    return handler


async def collect_ids(stream: EventStream, until: int) -> tuple[list[int], list[ConnectionState]]:
    ids: list[int] = []
    states: list[ConnectionState] = []
    async with asyncio.timeout(TIMEOUT):
        async for item in stream:
            if isinstance(item, ConnectionState):
                states.append(item)
            elif isinstance(item, MessageCreated):
                ids.append(item.message.id)
                if item.message.id >= until:
                    break
    return ids, states


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client("http://127.0.0.1:1", token="t0ken") as c:
        yield c


async def test_drop_mid_stream_resumes_with_last_event_id(client: Client) -> None:
    server = FakeEventServer(
        [
            serve_frames(frame(1), sse_comment("heartbeat"), frame(2), frame(3), then="abort"),
            # The resumed stream repeats 3 (a server bug): the client drops it.
            serve_frames(frame(3), frame(4), frame(5), then="hold"),
        ]
    )
    await server.start()
    client.base_url = server.url
    client._http = client._new_http()
    stream = client.events(backoff_base=0.01)
    try:
        ids, states = await collect_ids(stream, until=5)
    finally:
        await stream.aclose()
        await server.stop()
    assert ids == [1, 2, 3, 4, 5]  # no gap, no duplicate, no half frame
    assert stream.last_event_id == 5
    assert "last-event-id" not in server.requests[0]
    assert server.requests[1]["last-event-id"] == "3"
    assert server.requests[0]["authorization"] == "Bearer t0ken"
    names = [s.state for s in states]
    assert names == [
        "connecting",
        "connected",
        "offline",
        "reconnecting",
        "connecting",
        "connected",
    ]
    assert states[3].attempt == 1 and 0 < states[3].in_seconds <= 0.01


async def test_broken_chunked_stream_and_server_restart(client: Client) -> None:
    async def chunked_then_die(
        writer: asyncio.StreamWriter, headers: dict[str, str], stopped: asyncio.Event
    ) -> None:
        writer.write(stream_head(chunked=True) + chunk(frame(10)) + chunk(frame(11)[:15]))
        await writer.drain()
        writer.transport.abort()

    first = FakeEventServer([chunked_then_die])
    await first.start()
    client.base_url = first.url
    client._http = client._new_http()
    stream = client.events(last_event_id=9, backoff_base=0.05)
    got: list[int] = []
    states: list[str] = []
    second: FakeEventServer | None = None
    try:
        async with asyncio.timeout(TIMEOUT):
            async for item in stream:
                if isinstance(item, ConnectionState):
                    states.append(item.state)
                    if item.state == "offline" and second is None:
                        # The server restarts on the same port while the client waits.
                        await first.stop()
                        second = FakeEventServer([serve_frames(frame(11), frame(12), then="hold")])
                        await second.start(first.port)
                    continue
                assert isinstance(item, MessageCreated)
                got.append(item.message.id)
                if item.message.id == 12:
                    break
    finally:
        await stream.aclose()
        if second is not None:
            await second.stop()
    assert got == [10, 11, 12]
    assert first.requests[0]["last-event-id"] == "9"
    assert second is not None and second.requests[0]["last-event-id"] == "10"
    assert states.count("connected") == 2


async def test_refused_connections_back_off_then_connect(client: Client) -> None:
    server = FakeEventServer([serve_frames(frame(1), then="hold")])
    await server.start()
    await server.stop()  # nobody listens on the port for a while
    client.base_url = server.url
    client._http = client._new_http()
    stream = client.events(backoff_base=0.01, backoff_cap=0.02)
    delays: list[float] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            async for item in stream:
                if isinstance(item, ConnectionState) and item.state == "reconnecting":
                    delays.append(item.in_seconds)
                    if len(delays) == 3:
                        await server.start(server.port)
                elif isinstance(item, MessageCreated):
                    break
    finally:
        await stream.aclose()
        await server.stop()
    assert len(delays) >= 3
    assert all(0 < d <= 0.02 for d in delays)


async def test_unauthorized_ends_the_stream(client: Client) -> None:
    server = FakeEventServer([error_answer(401, ErrorCode.UNAUTHORIZED, "session ended")])
    await server.start()
    client.base_url = server.url
    client._http = client._new_http()
    stream = client.events(backoff_base=0.01)
    seen: list[object] = []
    try:
        with pytest.raises(ApiError) as caught:
            async with asyncio.timeout(TIMEOUT):
                async for item in stream:
                    seen.append(item)
    finally:
        await stream.aclose()
        await server.stop()
    assert caught.value.code == ErrorCode.UNAUTHORIZED
    assert len(server.requests) == 1
    assert seen == [ConnectionState("connecting")]


async def test_server_errors_are_retried(client: Client) -> None:
    server = FakeEventServer(
        [
            error_answer(503, ErrorCode.UNAVAILABLE, "shutting down"),
            serve_frames(frame(7), then="hold"),
        ]
    )
    await server.start()
    client.base_url = server.url
    client._http = client._new_http()
    stream = client.events(backoff_base=0.01)
    try:
        ids, states = await collect_ids(stream, until=7)
    finally:
        await stream.aclose()
        await server.stop()
    assert ids == [7]
    offline = [s for s in states if s.state == "offline"]
    assert len(offline) == 1 and "unavailable" in offline[0].error


async def test_events_without_id_and_unknown_types_pass_safely(client: Client) -> None:
    presence = sse_frame(encode_event(Presence(login="bob", online=True)), "presence")
    unknown = b'id: 2\nevent: future\ndata: {"type":"future_thing"}\n\n'
    server = FakeEventServer([serve_frames(frame(1), presence, unknown, frame(3), then="hold")])
    await server.start()
    client.base_url = server.url
    client._http = client._new_http()
    stream = client.events()
    items: list[object] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            async for item in stream:
                if isinstance(item, ConnectionState):
                    continue
                items.append(item)
                if isinstance(item, MessageCreated) and item.message.id == 3:
                    break
    finally:
        await stream.aclose()
        await server.stop()
    assert [type(i).__name__ for i in items] == ["MessageCreated", "Presence", "MessageCreated"]
    assert stream.last_event_id == 3  # the unreadable event still moved the resume point


def test_backoff_grows_and_is_capped() -> None:
    stream = EventStream(Client(), backoff_base=0.25, backoff_cap=10.0)
    assert 0.125 <= stream.backoff(1) <= 0.25
    assert 0.5 <= stream.backoff(3) <= 1.0
    for attempt in (7, 20, 1000):
        assert 5.0 <= stream.backoff(attempt) <= 10.0
