"""A stream that stops reading is cut without slowing the others, and resumes losslessly."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import httpx

from messenger_client.api import tls_context
from messenger_protocol import MessageCreated
from tests.support.server import ServerProcess
from tests.support.wire import SseReader, message_event, register

TEXT = "y" * 3900
COUNT = 1500  # ~6 MB of frames: more than the kernel buffers plus the server's queue
AHEAD = 8
"""Messages the sender may be ahead of the healthy reader: ~32 KB of frames, half the
server's queue for a stream, so a reader on a loaded machine is never cut for being slow
(it shares this test's loop with the sender) while the stalled one still is."""


async def test_stalled_stream_is_cut_and_others_keep_up(
    server_factory: Callable[..., ServerProcess],
) -> None:
    srv = server_factory(
        args=["--event-queue-max-bytes", "65536", "--rate-limit-messages", "100000"]
    )
    alice = (await register(srv.url, "alice"))["token"]
    bob = (await register(srv.url, "bob"))["token"]
    # bob's first client opens a stream and never reads it
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", srv.port))
    stalled.sendall(
        f"GET /api/v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {bob}\r\n\r\n".encode()
    )
    try:
        async with SseReader(srv.url, bob) as healthy:
            got: list[int] = []
            progressed = asyncio.Event()

            async def keep_reading() -> None:
                while len(got) < COUNT:
                    _, event = await healthy.next()
                    if isinstance(event, MessageCreated):
                        got.append(event.message.id)
                        progressed.set()

            reading = asyncio.create_task(keep_reading())
            reading.add_done_callback(lambda _: progressed.set())  # an error ends the wait
            headers = {"Authorization": f"Bearer {alice}"}
            async with httpx.AsyncClient(
                verify=tls_context(), base_url=srv.url, headers=headers, timeout=10
            ) as client:
                sent: list[int] = []
                for i in range(COUNT):
                    resp = await client.post(
                        "/api/v1/chats/1/messages", json={"text": f"{i} {TEXT}"}
                    )
                    assert resp.status_code == 200, resp.text
                    sent.append(resp.json()["id"])
                    while len(got) < len(sent) - AHEAD and not reading.done():
                        progressed.clear()
                        await progressed.wait()
            await reading
            assert got == sent  # the healthy client got everything, in order
        # the stalled stream was cut by the server: after its buffered bytes, EOF
        stalled.setblocking(False)
        loop = asyncio.get_running_loop()
        received = 0
        async with asyncio.timeout(20):
            while chunk := await loop.sock_recv(stalled, 1 << 20):
                received += len(chunk)
        assert received < COUNT * len(TEXT)
    finally:
        stalled.close()
    # reconnecting from scratch with an old id replays what it missed
    async with SseReader(srv.url, bob, last_event_id=0) as resumed:
        # up to the last sent message: a gap or a duplicate before it shows in the ids
        upto = await resumed.until(message_event(sent[-1]))
        replayed = [e for _, e in upto if isinstance(e, MessageCreated)]
    assert [e.message.id for e in replayed] == sent
