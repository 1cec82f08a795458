"""An HttpServer on a free port with a tiny handler, and a raw-socket client for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from messenger_server.http import Handler, HttpLimits, HttpServer
from tests.support.wire import WAIT as DEADLINE


@dataclass
class RawResponse:
    """One response read off the wire."""

    status: int
    headers: dict[str, str]
    body: bytes


class RawClient:
    """A TCP connection on which tests write exact bytes and read responses one by one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        """Write bytes as they are."""
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = DEADLINE, head_only: bool = False) -> RawResponse:
        """Read the next response (Content-Length framed, or up to EOF without one)."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            if head_only or status == 100:
                return RawResponse(status, headers, b"")
            if "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            else:
                body = await self.reader.read()
            return RawResponse(status, headers, body)

    async def closed_by_server(self, timeout: float = DEADLINE) -> bool:
        """True once the server closed the connection (leftover bytes are ignored)."""
        async with asyncio.timeout(timeout):
            try:
                while await self.reader.read(65536):
                    pass
            except ConnectionError:
                pass
        return True

    async def close(self) -> None:
        """Close our side."""
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


Serve = Callable[..., Awaitable[HttpServer]]
Connect = Callable[[HttpServer], Awaitable[RawClient]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start ``HttpServer(handler, HttpLimits(**limits))`` on 127.0.0.1, port 0."""
    servers: list[HttpServer] = []

    async def start(handler: Handler, **limits: object) -> HttpServer:
        server = HttpServer(handler, HttpLimits(**limits))  # type: ignore[arg-type]
        await server.start("127.0.0.1", 0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close(grace=1.0)


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Open raw connections to a server; all closed at the end."""
    clients: list[RawClient] = []

    async def open_(server: HttpServer) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        client = RawClient(reader, writer)
        clients.append(client)
        return client

    yield open_
    for client in clients:
        await client.close()
