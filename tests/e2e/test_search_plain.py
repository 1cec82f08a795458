"""``/search``, ``/mentions`` and ``/mute`` in the plain console client against the real
server on both stores (issue 12 item 6): an outsider finds nothing of others' chats, and
with the server gone ``/search`` answers from what the device has seen."""

from __future__ import annotations

import json
from typing import Any

from messenger_client import Client
from messenger_protocol import GENERAL_CHAT_ID
from tests.client.test_integration import PASSWORD
from tests.support.plain import Plain, StartPlain
from tests.support.server import ServerProcess


async def _obj(proc: Plain, kind: str) -> dict[str, Any]:
    """The next JSON line of this kind."""
    while True:
        obj: dict[str, Any] = json.loads(await proc.expect(f'"kind":"{kind}"'))
        if obj["kind"] == kind:
            return obj


def _texts(obj: dict[str, Any]) -> list[str]:
    return [h["message"]["text"] for h in obj["hits"]]


async def test_plain_search_mentions_and_mute_with_an_outsider(
    server: ServerProcess, plain: StartPlain
) -> None:
    """Issue 12 item 6: ``/search`` lists the hits of your chats only (typed in ``--json``,
    snippet words in stars in plain text), ``/mentions`` and ``/mute`` work, an outsider's
    ``/search`` of the same word finds only the general chat."""
    async with Client(server.url) as alice:
        await alice.register("alice", PASSWORD)
        team = await alice.create_chat("team")
        bob_proc = await plain("--json")
        bob_proc.send(f"/auth bob {PASSWORD}")
        await _obj(bob_proc, "session")
        carol_proc = await plain()
        carol_proc.send(f"/auth carol {PASSWORD}")
        await carol_proc.expect("logged in as carol")
        await alice.invite(team.id, "bob")
        await alice.send(team.id, "the plankton report, @bob")
        await alice.send(GENERAL_CHAT_ID, "plankton for all")
        bob_proc.send("/search plankton")
        found = await _obj(bob_proc, "search")
        assert _texts(found) == ["plankton for all", "the plankton report, @bob"]
        assert [h["chat_name"] for h in found["hits"]] == ["general", "team"]
        assert found["offline"] is False and found["query"] == "plankton"
        assert {"text": "plankton", "match": True} in found["hits"][1]["snippet"]
        bob_proc.send("/mentions")
        mentions = await _obj(bob_proc, "mentions")
        assert [m["message"]["text"] for m in mentions["mentions"]] == ["the plankton report, @bob"]
        bob_proc.send("/mute team mentions")
        muted = await _obj(bob_proc, "mute")
        assert (muted["chat"], muted["mute"]) == ("team", "mentions")
        bob_proc.send("/mute team loud")
        bad = await _obj(bob_proc, "error")
        assert bad["code"] == "usage"
        bob_proc.send("/search form:alice")
        refused = await _obj(bob_proc, "error")
        assert refused["code"] == "invalid" and refused["text"].startswith("unknown operator")
        carol_proc.send("/search plankton")
        line = await carol_proc.expect("found for 'plankton'")
        assert line == "found for 'plankton': 1"
        hit = await carol_proc.expect("plankton")
        assert "general" in hit and "*plankton* for all" in hit
        carol_proc.send("/search plankton in:team")
        await carol_proc.expect("in: you are in no chat called 'team'")
        assert await carol_proc.finish() == 0
        assert not any("report" in line for line in carol_proc.lines)
        assert (await alice.chat(team.id)).mute == "off"  # bob's setting, not alice's
        assert await bob_proc.finish() == 0


async def test_plain_search_falls_back_to_the_cache_when_the_server_is_gone(
    server: ServerProcess, plain: StartPlain
) -> None:
    """Issue 12 item 6: messages the console printed are in its cache's index; with the
    server killed, ``/search`` answers from it and says so (``offline``)."""
    async with Client(server.url) as alice:
        await alice.register("alice", PASSWORD)
        await alice.send(GENERAL_CHAT_ID, "krill before bob came")
        bob_proc = await plain("--json")
        bob_proc.send(f"/auth bob {PASSWORD}")
        await _obj(bob_proc, "session")
        await _obj(bob_proc, "message")  # the history on connect
        bob_proc.send("/status")  # answered: the event stream is up before alice sends
        await _obj(bob_proc, "status")
        live = await alice.send(GENERAL_CHAT_ID, "krill swarm live")
        seen = await _obj(bob_proc, "message")
        assert seen["message"]["id"] == live.id
    server.kill()
    bob_proc.send("/search krill")
    found = await _obj(bob_proc, "search")
    assert found["offline"] is True
    assert _texts(found) == ["krill swarm live", "krill before bob came"]
    bob_proc.send("/search krill in:general")
    assert _texts(await _obj(bob_proc, "search")) == ["krill swarm live", "krill before bob came"]
    bob_proc.send("/exit")
    assert await bob_proc.finish() == 0
