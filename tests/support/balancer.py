"""A small round-robin TCP balancer with fault controls, in front of a cluster's nodes.

It runs on the test's event loop: ``await balancer.start()``, point the clients at
``balancer.url``. Each new client connection goes to the next node in turn; a node
that refuses the connection (stopped, draining) is skipped for the next one, as
HAProxy's ``option redispatch`` does, so a client only sees a failure when no node
takes it. Controls:

* :meth:`Balancer.down` resets (RST) every connection through a node and routes no new
  ones to it until :meth:`Balancer.up`;
* :meth:`Balancer.pause` holds every byte to and from a node (a black hole: the
  connections stay open, nothing moves) until :meth:`Balancer.resume`.

``routed`` logs which node each connection went to.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Sequence

__all__ = ["Balancer"]

CONNECT_TIMEOUT = 5.0
"""Longest wait for a node to take a connection before the next node is tried."""


class _Link:
    """One client connection and its connection to a node."""

    __slots__ = ("client", "node", "upstream")

    def __init__(
        self, node: int, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter
    ) -> None:
        self.node = node
        self.client = client
        self.upstream = upstream

    def reset(self) -> None:
        for writer in (self.client, self.upstream):
            _rst(writer)


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset, not a FIN: the peer sees ``connection reset``."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Balancer:
    """Round robin over ``nodes`` (``(host, port)`` pairs) on 127.0.0.1:<port>."""

    def __init__(self, nodes: Sequence[tuple[str, int]]) -> None:
        self.nodes = list(nodes)
        self.port = 0
        self.routed: list[int] = []
        """The node index of every connection made through the balancer, in order."""
        self.refused = 0
        """Client connections no node took (the client got a reset)."""
        self._next = 0
        self._down: set[int] = set()
        self._paused: dict[int, asyncio.Event] = {}
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """The balancer's base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    def down(self, node: int) -> None:
        """Reset every connection through ``node`` now; send it nothing new."""
        self._down.add(node)
        for link in [link for link in self._links if link.node == node]:
            link.reset()
            self._links.discard(link)

    def up(self, node: int) -> None:
        """Route to ``node`` again."""
        self._down.discard(node)

    def pause(self, node: int) -> None:
        """Hold every byte to and from ``node`` (new connections to it included)."""
        self._paused.setdefault(node, asyncio.Event())

    def resume(self, node: int) -> None:
        """Let the bytes held by :meth:`pause` through."""
        gate = self._paused.pop(node, None)
        if gate is not None:
            gate.set()

    def live(self, node: int) -> int:
        """Open connections through ``node``."""
        return sum(1 for link in self._links if link.node == node)

    async def close(self) -> None:
        """Stop listening and reset everything."""
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.reset()
        self._links.clear()
        for gate in self._paused.values():
            gate.set()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _connect(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The next node in turn that takes a connection (None: no node does)."""
        for _ in range(len(self.nodes)):
            node = self._next % len(self.nodes)
            self._next += 1
            if node in self._down:
                continue
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    reader, writer = await asyncio.open_connection(*self.nodes[node])
            except (OSError, TimeoutError):
                continue  # refused (stopped or draining): redispatch to the next node
            return node, reader, writer
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected = await self._connect()
        if connected is None:
            self.refused += 1
            _rst(writer)
            return
        node, up_reader, up_writer = connected
        self.routed.append(node)
        link = _Link(node, writer, up_writer)
        self._links.add(link)
        pipes = [
            asyncio.create_task(self._pipe(link, reader, up_writer)),
            asyncio.create_task(self._pipe(link, up_reader, writer)),
        ]
        self._tasks.update(pipes)
        for task in pipes:
            task.add_done_callback(self._tasks.discard)
        try:
            # a half-close is passed on (write_eof): HTTP clients and servers rely on it
            await asyncio.wait(pipes)
        finally:
            self._links.discard(link)
            for w in (writer, up_writer):
                w.transport.abort()

    async def _pipe(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await reader.read(65536):
                gate = self._paused.get(link.node)
                if gate is not None:
                    await gate.wait()
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, asyncio.IncompleteReadError):
            link.reset()  # one side reset: so is the other, as through a real proxy
