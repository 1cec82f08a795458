"""Limits and bans hold across nodes: they live in the database, checked in the posting unit.

Issue 13 item 7, once with Redis and once with NATS.
"""

from __future__ import annotations

import asyncio

import httpx

from messenger_protocol import Banned, MessageCreated
from tests.support.cluster import Cluster
from tests.support.wire import SseReader, call, message_event, register

CLUSTER_ARGS = ["--admins", "boss"]
"""Default rate limit (20 general-chat posts per user per hour); ``boss`` is an admin."""


async def test_rate_limit_is_exact_over_three_nodes(cluster: Cluster) -> None:
    """Issue 13 item 7: 25 general-chat posts of one user, at once, spread over 3 nodes:
    exactly 20 accepted, 5 ``rate_limited``."""
    token = (await register(cluster.url(0), "hasty"))["token"]
    async with httpx.AsyncClient(timeout=30.0) as client:

        async def post(i: int) -> httpx.Response:
            return await client.post(
                f"{cluster.url(i)}/api/v1/chats/1/messages",
                json={"text": f"hurry {i}"},
                headers={"Authorization": f"Bearer {token}"},
            )

        answers = await asyncio.gather(*(post(i) for i in range(25)))
    accepted = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert len(accepted) == 20
    assert len(refused) == 5
    assert {a.status_code for a in refused} == {429}
    assert {a.json()["error"]["code"] for a in refused} == {"rate_limited"}
    history = await call(cluster.url(2), "GET", "/api/v1/chats/1/messages?limit=100", token)
    mine = [m for m in history.json()["messages"] if m["author"] == "hasty"]
    assert sorted(m["id"] for m in mine) == sorted(a.json()["id"] for a in accepted)


async def test_a_ban_on_one_node_holds_at_once_on_the_others(cluster: Cluster) -> None:
    """Issue 13 item 7: a ban answered by node A refuses the next post on B and C at once,
    and the user's stream on C hears of it exactly once."""
    boss = (await register(cluster.url(0), "boss"))["token"]
    target = (await register(cluster.url(1), "rowdy"))["token"]
    witness = (await register(cluster.url(2), "calm"))["token"]
    async with SseReader(cluster.url(2), target) as on_c, SseReader(cluster.url(1), boss) as on_b:
        hello = (await call(cluster.url(0), "POST", "/api/v1/chats/1/messages", witness,
                            {"text": "hello"})).json()["id"]  # fmt: skip
        for reader in (on_c, on_b):  # both streams are live
            await reader.until(message_event(hello))
        banned = await call(
            cluster.url(0), "POST", "/api/v1/admin/bans", boss,
            {"login": "rowdy", "seconds": 3600, "reason": "noise"},
        )  # fmt: skip
        assert banned.status_code == 200, banned.text
        for i in (1, 2):
            refused = await call(cluster.url(i), "POST", "/api/v1/chats/1/messages", target,
                                 {"text": f"still here {i}"})  # fmt: skip
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "banned"
        after = (await call(cluster.url(1), "POST", "/api/v1/chats/1/messages", witness,
                            {"text": "after"})).json()["id"]  # fmt: skip
        for reader in (on_c, on_b):
            events = await reader.until(message_event(after))
            bans = [e for _, e in events if isinstance(e, Banned)]
            assert len(bans) == 1 and bans[0].login == "rowdy"
            texts = [e.message.text for _, e in events if isinstance(e, MessageCreated)]
            assert texts == ["after"]  # the refused posts went nowhere
