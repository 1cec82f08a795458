"""Limits and bans hold across nodes: they live in the database, checked in the posting unit.

Issue 13 item 7 and the idle expiry of sessions, once with Redis and once with NATS.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from messenger_client.api import tls_context
from messenger_protocol import Banned, MessageCreated, SessionEnded
from tests.support.cluster import Cluster
from tests.support.wire import SseReader, call, message_event, register

IDLE = 3600
CLUSTER_ARGS = ["--admins", "boss", "--session-idle-timeout", str(IDLE)]
"""Default rate limit (20 general-chat posts per user per hour); ``boss`` is an admin;
sessions expire after an hour unused."""
CLUSTER_CLOCK = True
"""The real time until the last test moves the nodes' one clock."""


async def test_rate_limit_is_exact_over_three_nodes(cluster: Cluster) -> None:
    """Issue 13 item 7: 25 general-chat posts of one user, at once, spread over 3 nodes:
    exactly 20 accepted, 5 ``rate_limited``."""
    token = (await register(cluster.url(0), "hasty"))["token"]
    async with httpx.AsyncClient(verify=tls_context(), timeout=30.0) as client:

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


async def test_an_idle_session_lives_while_used_anywhere_and_expires_on_every_node(
    cluster: Cluster,
) -> None:
    """A session used on node 0 stays alive on node 1, which saw it last more than the idle
    timeout ago; a use node 1 has not written yet (it writes at most every tenth of the
    timeout) keeps it alive on node 2; once unused for the timeout plus that tenth, node 1
    expires it: the streams of the session on nodes 0 and 2 hear ``session_ended`` and
    end, and its token is refused everywhere."""
    touch = IDLE / 10  # how often a node writes a session's use
    t0 = time.time()
    cluster.nodes[0].set_time(t0)  # one clock file: every node reads it
    token = (await register(cluster.url(0), "idler"))["token"]
    assert (await call(cluster.url(1), "GET", "/api/v1/auth/session", token)).status_code == 200
    cluster.nodes[0].set_time(t0 + IDLE - 600)
    assert (await call(cluster.url(0), "GET", "/api/v1/auth/session", token)).status_code == 200
    cluster.nodes[0].set_time(t0 + IDLE + 100)  # node 1 saw it last IDLE + 100 s ago
    alive = await call(cluster.url(1), "GET", "/api/v1/auth/session", token)
    assert alive.status_code == 200, alive.text  # and wrote this use
    cluster.nodes[0].set_time(t0 + IDLE + 100 + touch - 10)
    alive = await call(cluster.url(1), "GET", "/api/v1/auth/session", token)
    assert alive.status_code == 200, alive.text  # a use node 1 does not write yet
    cluster.nodes[0].set_time(t0 + 2 * IDLE + 100 + touch - 20)  # unused IDLE - 10 s
    alive = await call(cluster.url(2), "GET", "/api/v1/auth/session", token)
    assert alive.status_code == 200, alive.text  # node 2 writes this use
    last = t0 + 2 * IDLE + 100 + touch - 20
    async with SseReader(cluster.url(0), token) as on_a, SseReader(cluster.url(2), token) as on_c:
        cluster.nodes[0].set_time(last + IDLE + touch - 1)  # perhaps used since, unwritten
        still = await call(cluster.url(1), "GET", "/api/v1/auth/session", token)
        assert still.status_code == 200, still.text
        last += IDLE + touch - 1  # node 1 wrote that use
        cluster.nodes[0].set_time(last + IDLE + touch)
        expired = await call(cluster.url(1), "GET", "/api/v1/auth/session", token)
        assert expired.status_code == 401 and expired.json()["error"]["code"] == "session_expired"
        for reader in (on_a, on_c):
            ended = await reader.until(lambda e: isinstance(e, SessionEnded))
            assert isinstance(ended[-1][1], SessionEnded) and ended[-1][1].expired
            with pytest.raises(ConnectionError):
                while True:
                    await reader.next_raw()
    for i in (0, 1, 2):
        refused = await call(cluster.url(i), "GET", "/api/v1/auth/session", token)
        assert refused.json()["error"]["code"] == "session_expired", refused.text
