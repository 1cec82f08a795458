"""Under load: event ids appear in commit order, and kill -9 loses nothing acknowledged.

Both run on SQLite and on PostgreSQL (``[sqlite]`` / ``[postgres]``).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable

import httpx

from messenger_client.api import tls_context
from messenger_protocol import MessageCreated
from tests.support import db
from tests.support.server import ServerProcess
from tests.support.wire import SseReader, call, register

POSTERS = 8
PER_POSTER = 40
LOAD = ["--rate-limit-messages", "100000"]
WAIT = 30.0
"""Longest wait for the next event (a loaded machine; the e2e deadline)."""


async def _post(base: str, token: str, texts: list[str], acked: list[int]) -> None:
    async with httpx.AsyncClient(verify=tls_context(), base_url=base, timeout=WAIT) as client:
        for text in texts:
            r = await client.post(
                "/api/v1/chats/1/messages",
                json={"text": text},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text
            acked.append(r.json()["id"])


async def test_event_ids_become_visible_in_commit_order(
    server_factory: Callable[..., ServerProcess],
) -> None:
    srv = server_factory(args=LOAD)
    tokens = [(await register(srv.url, f"poster{n}"))["token"] for n in range(POSTERS)]
    done = threading.Event()
    seen: list[int] = []
    late: list[tuple[int, int]] = []

    def read_raw() -> None:
        # keeps reading the events table after the last seq it saw, like a node would
        last = 0
        while True:
            finished = done.is_set()
            rows = db.rows(srv, "SELECT seq FROM events WHERE seq > ? ORDER BY seq", (last,))
            for (seq,) in rows:
                seen.append(int(seq))
            if rows:
                last = int(rows[-1][0])
            if finished:
                return

    reader = asyncio.create_task(asyncio.to_thread(read_raw))
    acked: list[int] = []
    try:
        await asyncio.gather(
            *(
                _post(srv.url, token, [f"p{n}-{i}" for i in range(PER_POSTER)], acked)
                for n, token in enumerate(tokens)
            )
        )
    finally:
        done.set()
        await reader
    everything = [int(seq) for (seq,) in db.rows(srv, "SELECT seq FROM events ORDER BY seq", ())]
    for earlier, later in itertools.pairwise(seen):
        if later <= earlier:
            late.append((earlier, later))
    assert not late, f"ids seen out of order: {late[:5]}"
    assert seen == everything, "an id appeared below one already read (a late commit)"
    assert everything == list(range(everything[0], everything[0] + len(everything))), "a hole"
    assert len(acked) == POSTERS * PER_POSTER


async def test_kill_9_under_load_loses_no_acknowledged_message_and_streams_resume_exactly(
    server_factory: Callable[..., ServerProcess],
) -> None:
    srv = server_factory(args=LOAD)
    tokens = [(await register(srv.url, f"poster{n}"))["token"] for n in range(4)]
    readers = [(await register(srv.url, f"reader{n}"))["token"] for n in range(2)]
    acked: list[int] = []
    got: list[list[tuple[int, int]]] = [[] for _ in readers]  # (event id, message id)

    async def listen(n: int, token: str) -> None:
        async with SseReader(srv.url, token) as sse:
            while True:
                try:
                    seq, event = await sse.next(WAIT)
                except (ConnectionError, OSError):
                    return  # the server died
                if isinstance(event, MessageCreated) and seq is not None:
                    got[n].append((seq, event.message.id))

    async def post(token: str, name: str) -> None:
        # ~50 messages/s per poster, 4 posters: ~200/s until the server dies
        async with httpx.AsyncClient(
            verify=tls_context(), base_url=srv.url, timeout=WAIT
        ) as client:
            for i in range(10_000):
                try:
                    r = await client.post(
                        "/api/v1/chats/1/messages",
                        json={"text": f"{name}-{i}"},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                except httpx.HTTPError:
                    return
                assert r.status_code == 200, r.text
                acked.append(r.json()["id"])
                await asyncio.sleep(0.02)

    listeners = [asyncio.create_task(listen(n, t)) for n, t in enumerate(readers)]
    posters = [asyncio.create_task(post(t, f"p{n}")) for n, t in enumerate(tokens)]
    while len(acked) < 150:  # under load for a while: then pull the plug
        await asyncio.wait(posters, timeout=0.05)
        assert not all(p.done() for p in posters)
    srv.kill()
    await asyncio.gather(*posters)
    await asyncio.gather(*listeners)
    srv.start()

    stored: list[int] = []
    before: int | None = None
    while True:
        query = "/api/v1/chats/1/messages?limit=100" + (f"&before={before}" if before else "")
        page = (await call(srv.url, "GET", query, tokens[0])).json()
        stored = [m["id"] for m in page["messages"]] + stored
        if not page["has_more"]:
            break
        before = page["messages"][0]["id"]
    assert set(acked) <= set(stored), "an acknowledged message is lost"

    for n, token in enumerate(readers):
        last = got[n][-1][0] if got[n] else 0
        async with SseReader(srv.url, token, last_event_id=last) as sse:
            while {m for _, m in got[n]} != set(stored):
                seq, event = await sse.next(WAIT)
                if isinstance(event, MessageCreated) and seq is not None:
                    got[n].append((seq, event.message.id))
        ids = [seq for seq, _ in got[n]]
        messages = [m for _, m in got[n]]
        assert ids == sorted(set(ids)), "a duplicate or out-of-order event id"
        assert sorted(messages) == stored, "a gap or a duplicate message"
