"""Three nodes on one PostgreSQL database with a bus: fan-out, resume and logout across nodes.

Issue 13 item 1 in full and first slices of items 5 and 6, each once with Redis and once with NATS
(``[redis]``, ``[nats]``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from messenger_client.api import tls_context
from messenger_protocol import MessageCreated, SessionEnded
from tests.support.cluster import Cluster
from tests.support.wire import Numbered, SseReader, call, message_event, register

CLUSTER_ARGS = ["--rate-limit-messages", "100000"]
"""Many posts of one user in the general chat here (the rate limit has its own test)."""

CLIENTS = 50
MESSAGES = 2000
GROUP = 4
"""The first GROUP users share a private group; the others must never see its messages."""
WAIT = 120.0
"""Deadline for the whole run to arrive (a loaded machine; no test waits on time)."""


def is_text(text: str) -> Any:
    return lambda e: isinstance(e, MessageCreated) and e.message.text == text


def check_order(events: list[Numbered]) -> list[int]:
    """The message ids a stream got; its event ids strictly increase (no duplicate)."""
    ids = [seq for seq, _ in events if seq is not None]
    assert ids == sorted(set(ids)), "event ids not strictly increasing"
    return [e.message.id for _, e in events if isinstance(e, MessageCreated)]


async def post(client: httpx.AsyncClient, base: str, token: str, chat: int, text: str) -> int:
    resp = await client.post(
        f"{base}/api/v1/chats/{chat}/messages",
        json={"text": text},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 200, resp.text
    message_id: int = resp.json()["id"]
    return message_id


async def test_every_client_gets_exactly_what_it_may_see_in_order(cluster: Cluster) -> None:
    """Issue 13 item 1 (50 clients, 2,000 messages): each client on any node gets exactly the
    messages it may see, in id order, 0 gaps, 0 duplicates."""
    tokens = [
        (await register(cluster.url(i), f"fan{i}"))["token"] for i in range(CLIENTS)
    ]  # registered round robin over the nodes too
    made = await call(cluster.url(0), "POST", "/api/v1/chats", tokens[0], {"name": "fanteam"})
    assert made.status_code == 200, made.text
    group = int(made.json()["id"])
    for i in range(1, GROUP):
        invited = await call(
            cluster.url(i), "POST", f"/api/v1/chats/{group}/members", tokens[0],
            {"login": f"fan{i}"},
        )  # fmt: skip
        assert invited.status_code == 200, invited.text
    readers = [SseReader(cluster.url(i), tokens[i]) for i in range(CLIENTS)]
    for reader in readers:
        await reader.__aenter__()
    try:
        async with httpx.AsyncClient(verify=tls_context(), timeout=30.0) as client:
            ready = await post(client, cluster.url(1), tokens[1], 1, "ready")
            for reader in readers:  # every stream is live on its node
                await reader.until(message_event(ready), timeout=WAIT)
            collecting = [
                asyncio.create_task(r.until(is_text("end"), timeout=WAIT)) for r in readers
            ]
            general: list[int] = []
            in_group: list[int] = []
            gate = asyncio.Semaphore(6)

            async def one(i: int) -> None:
                author = i % CLIENTS
                chat = group if author < GROUP and i % 2 == 0 else 1
                async with gate:
                    mid = await post(client, cluster.url(i), tokens[author], chat, f"m{i}")
                (in_group if chat == group else general).append(mid)

            await asyncio.gather(*(one(i) for i in range(MESSAGES)))
            end = await post(client, cluster.url(2), tokens[2], 1, "end")
            received = await asyncio.gather(*collecting)
    finally:
        for reader in readers:
            await reader.close()
    assert len(general) + len(in_group) == MESSAGES and in_group
    for i, events in enumerate(received):
        got = check_order(events)
        expected = set(general) | (set(in_group) if i < GROUP else set())
        assert len(got) == len(set(got)), f"client {i} got a message twice"
        assert set(got) == expected | {end}, f"client {i} on node {i % 3}: gap or extra"


async def test_resume_on_another_node_gets_exactly_what_followed(cluster: Cluster) -> None:
    """Issue 13 item 5 (first slice): a stream resumed on node B with the Last-Event-ID it
    got from node A gets exactly the events after it, no gap, no duplicate, no reset."""
    alice = (await register(cluster.url(0), "resume-a"))["token"]
    bob = (await register(cluster.url(1), "resume-b"))["token"]
    async with httpx.AsyncClient(verify=tls_context(), timeout=30.0) as client:
        async with SseReader(cluster.url(0), bob) as first:
            seen = [await post(client, cluster.url(i), alice, 1, f"seen {i}") for i in range(3)]
            events = await first.until(message_event(seen[-1]))
        last_id = events[-1][0]
        assert last_id is not None
        missed = [await post(client, cluster.url(i), alice, 1, f"missed {i}") for i in range(5)]
        async with SseReader(cluster.url(1), bob, last_event_id=last_id) as resumed:
            replayed = await resumed.until(message_event(missed[-1]))
            live = await post(client, cluster.url(2), alice, 1, "live")
            after = await resumed.until(message_event(live))
    assert [e.message.id for _, e in replayed if isinstance(e, MessageCreated)] == missed
    ids = [seq for seq, _ in replayed + after if seq is not None]
    assert ids == sorted(set(ids)) and ids[0] > last_id
    assert check_order(after) == [live]


async def test_logout_on_one_node_is_refused_on_the_others_at_once(cluster: Cluster) -> None:
    """Issue 13 item 6: after a logout answered by node A, the token is refused on B and C
    (no node trusts a session it remembers), and the session's streams on B and C end."""
    await register(cluster.url(0), "leaver")
    login = await call(
        cluster.url(0), "POST", "/api/v1/auth/login",
        json={"login": "leaver", "password": "password1"},
    )  # fmt: skip
    token = login.json()["token"]
    for i in (1, 2):  # B and C have seen the session
        assert (await call(cluster.url(i), "GET", "/api/v1/auth/session", token)).status_code == 200
    async with SseReader(cluster.url(1), token) as on_b, SseReader(cluster.url(2), token) as on_c:
        assert on_b.status == on_c.status == 200
        # both streams are attached once they get a live event
        other = (await register(cluster.url(0), "witness"))["token"]
        hello = (await call(cluster.url(0), "POST", "/api/v1/chats/1/messages", other,
                            {"text": "hello"})).json()["id"]  # fmt: skip
        for reader in (on_b, on_c):
            await reader.until(message_event(hello))
        assert (await call(cluster.url(0), "POST", "/api/v1/auth/logout", token)).status_code == 200
        for i in (1, 2):
            refused = await call(cluster.url(i), "GET", "/api/v1/auth/session", token)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "unauthorized"
        for reader in (on_b, on_c):
            ended = await reader.until(lambda e: isinstance(e, SessionEnded))
            assert isinstance(ended[-1][1], SessionEnded)
            closed = False
            try:
                while True:
                    await reader.next_raw()
            except ConnectionError:
                closed = True
            assert closed
