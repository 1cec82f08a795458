"""SIGTERM drains a node (issue 13): it stops accepting and says it is not ready at once,
ends its event streams so clients resume elsewhere, answers the requests already under
way, and exits 0 within ``--shutdown-grace``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from messenger_protocol import MessageCreated
from tests.support.server import ServerProcess
from tests.support.wire import SseReader, call, message_event, register, send

EXIT_WAIT = 30.0
"""Deadline for the process to end after SIGTERM (a loaded machine)."""


async def refused(server: ServerProcess) -> None:
    """Until a new connection to ``server`` is refused: its listener is closed. Nothing
    tells a client that but trying; the pause only paces the tries."""
    async with asyncio.timeout(EXIT_WAIT):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            except ConnectionRefusedError:
                return
            writer.close()
            await asyncio.sleep(0.02)


async def opened(
    server: ServerProcess, data: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A new connection to ``server`` that has sent ``data``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def test_sigterm_closes_streams_refuses_new_work_and_finishes_what_began(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """Issue 13 item 11 (one node): after SIGTERM new connections are refused, idle
    keep-alive connections and event streams are closed, a ``/readyz`` whose head was
    arriving answers 503 ``not ready: the node is shutting down``, a send whose body was
    still arriving is stored and answered 200, and the process exits 0."""
    srv = server_factory(args=["--shutdown-grace", "60"])
    token = (await register(srv.url, "drainer"))["token"]
    text = json.dumps({"text": "sent while draining"}).encode()
    async with SseReader(srv.url, token) as stream:
        hello = (await send(srv.url, token, "hello")).json()["id"]
        await stream.until(message_event(hello))
        idle_reader, idle = await opened(srv, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await idle_reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await idle_reader.readexactly(length)  # the answer whole: the connection is idle
        ready_reader, ready = await opened(srv, b"GET /readyz HTTP/1.1\r\nHost: t\r\n")
        post_reader, post = await opened(
            srv,
            b"POST /api/v1/chats/1/messages HTTP/1.1\r\nHost: t\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(text),
        )
        # both heads have begun to arrive before the signal: ask for something that
        # answers only after the server has read them (requests on one loop, in order)
        assert (await call(srv.url, "GET", "/healthz")).status_code == 200
        srv.terminate()
        await refused(srv)  # stopped accepting
        closed = False
        try:
            while True:
                await stream.next_raw(timeout=EXIT_WAIT)
        except ConnectionError:
            closed = True
        assert closed, "the event stream was not closed"
    assert await idle_reader.read() == b"", "an idle keep-alive connection stayed open"
    ready.write(b"\r\n")
    answer = await ready_reader.read()
    assert answer.startswith(b"HTTP/1.1 503"), answer
    assert b"connection: close" in answer.lower()
    assert b"not ready: the node is shutting down" in answer
    post.write(text)
    answer = await post_reader.read()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    posted = json.loads(answer.split(b"\r\n\r\n", 1)[1])["id"]
    for writer in (idle, ready, post):
        writer.close()
    assert await asyncio.to_thread(srv.wait_exit, EXIT_WAIT) == 0
    srv.start()
    async with SseReader(srv.url, token, last_event_id=0) as again:
        events = await again.until(message_event(posted))
    assert [e.message.text for _, e in events if isinstance(e, MessageCreated)][-1] == (
        "sent while draining"
    )


async def test_a_request_that_never_finishes_is_cut_at_the_grace(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """Issue 13 item 11: a request head that stops arriving does not keep a stopping node
    alive: it is dropped once ``--shutdown-grace`` is over and the process exits 0."""
    srv = server_factory(args=["--shutdown-grace", "1"])
    stuck_reader, stuck = await opened(srv, b"GET /readyz HTTP/1.1\r\nHost: t\r\n")
    assert (await call(srv.url, "GET", "/healthz")).status_code == 200
    srv.terminate()
    assert await asyncio.to_thread(srv.wait_exit, EXIT_WAIT) == 0
    assert await stuck_reader.read() == b""
    stuck.close()
