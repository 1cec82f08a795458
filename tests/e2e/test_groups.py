"""Private group chats: invite, link + approval, reject, and access for outsiders (F15)."""

from __future__ import annotations

from typing import Any

import pytest

from messenger_protocol import ChatUpdated, JoinDecided, JoinRequested, MessageCreated
from tests.support.server import ServerProcess
from tests.support.wire import SseReader, call, register, send


async def _group(base: str, owner: str, name: str = "team") -> int:
    resp = await call(base, "POST", "/api/v1/chats", owner, {"name": name})
    assert resp.status_code == 200, resp.text
    chat: dict[str, Any] = resp.json()
    assert (chat["kind"], chat["owner"]) == ("group", "alice")
    return int(chat["id"])


@pytest.mark.cluster_too
async def test_invite_flow(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    chat_id = await _group(server.url, alice)
    taken = await call(server.url, "POST", "/api/v1/chats", bob, {"name": "team"})
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "conflict")
    async with SseReader(server.url, bob) as bob_events:
        invited = await call(
            server.url, "POST", f"/api/v1/chats/{chat_id}/members", alice, {"login": "bob"}
        )
        assert invited.status_code == 200
        _, event = await bob_events.next()
        assert isinstance(event, ChatUpdated) and event.chat.id == chat_id
        await send(server.url, alice, "welcome", chat_id=chat_id)
        _, event = await bob_events.next()
        assert isinstance(event, MessageCreated) and event.message.text == "welcome"
    # only the owner invites
    await register(server.url, "carol")
    by_member = await call(
        server.url, "POST", f"/api/v1/chats/{chat_id}/members", bob, {"login": "carol"}
    )
    assert by_member.status_code == 403
    members = (await call(server.url, "GET", f"/api/v1/chats/{chat_id}/members", bob)).json()
    assert {m["login"] for m in members["members"]} == {"alice", "bob"}


@pytest.mark.cluster_too
async def test_link_and_approval_flow(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    chat_id = await _group(server.url, alice)
    link = (await call(server.url, "POST", f"/api/v1/chats/{chat_id}/links", alice, {})).json()
    assert link["key"] in link["link"]
    async with SseReader(server.url, alice) as owner, SseReader(server.url, bob) as requester:
        joined = await call(
            server.url, "POST", "/api/v1/chats/join", bob, {"name": "team", "key": link["key"]}
        )
        assert joined.json()["state"] == "requested"
        _, event = await owner.next()
        assert isinstance(event, JoinRequested)
        assert (event.request.login, event.request.with_key) == ("bob", True)
        # a request alone grants nothing
        early = await call(server.url, "GET", f"/api/v1/chats/{chat_id}/messages", bob)
        assert early.status_code == 403
        pending = (await call(server.url, "GET", f"/api/v1/chats/{chat_id}/requests", alice)).json()
        assert [r["login"] for r in pending["requests"]] == ["bob"]
        approved = await call(
            server.url, "POST", f"/api/v1/chats/{chat_id}/requests/bob/approve", alice
        )
        assert approved.status_code == 200
        decided = await requester.take(2, lambda e: isinstance(e, JoinDecided | ChatUpdated))
        assert {type(e) for e in decided} == {JoinDecided, ChatUpdated}
    assert (
        await call(server.url, "GET", f"/api/v1/chats/{chat_id}/messages", bob)
    ).status_code == 200
    status = (await call(server.url, "GET", "/api/v1/status", alice)).json()
    owned = status["owned_chats"][0]
    assert owned["chat"]["name"] == "team" and owned["links"][0]["key"] == link["key"]


@pytest.mark.cluster_too
async def test_reject_flow_and_join_without_key(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    chat_id = await _group(server.url, alice)
    link = (await call(server.url, "POST", f"/api/v1/chats/{chat_id}/links", alice, {})).json()
    await call(server.url, "POST", "/api/v1/chats/join", bob, {"name": "team", "key": link["key"]})
    async with SseReader(server.url, bob) as requester:
        rejected = await call(
            server.url, "POST", f"/api/v1/chats/{chat_id}/requests/bob/reject", alice
        )
        assert rejected.status_code == 200
        _, event = await requester.next()
        assert isinstance(event, JoinDecided) and event.approved is False
    assert (
        await call(server.url, "GET", f"/api/v1/chats/{chat_id}/messages", bob)
    ).status_code == 403
    # without a key the owner is asked; nothing is granted until the owner invites
    asked = await call(server.url, "POST", "/api/v1/chats/join", bob, {"name": "team"})
    assert asked.json()["state"] == "asked_owner"
    assert (
        await call(server.url, "GET", f"/api/v1/chats/{chat_id}/messages", bob)
    ).status_code == 403
    bad_key = await call(
        server.url, "POST", "/api/v1/chats/join", bob, {"name": "team", "key": "wrong"}
    )
    assert bad_key.status_code == 403


@pytest.mark.cluster_too
async def test_revoked_and_used_up_links_are_refused(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    carol = (await register(server.url, "carol"))["token"]
    chat_id = await _group(server.url, alice)
    once = (
        await call(server.url, "POST", f"/api/v1/chats/{chat_id}/links", alice, {"max_uses": 1})
    ).json()
    first = await call(
        server.url, "POST", "/api/v1/chats/join", bob, {"name": "team", "key": once["key"]}
    )
    assert first.json()["state"] == "requested"
    second = await call(
        server.url, "POST", "/api/v1/chats/join", carol, {"name": "team", "key": once["key"]}
    )
    assert second.status_code == 403
    other = (await call(server.url, "POST", f"/api/v1/chats/{chat_id}/links", alice, {})).json()
    revoke = await call(
        server.url, "DELETE", f"/api/v1/chats/{chat_id}/links/{other['key']}", alice
    )
    assert revoke.status_code == 200
    late = await call(
        server.url, "POST", "/api/v1/chats/join", carol, {"name": "team", "key": other["key"]}
    )
    assert late.status_code == 403


@pytest.mark.cluster_too
async def test_members_leave_and_get_removed(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    carol = (await register(server.url, "carol"))["token"]
    chat_id = await _group(server.url, alice)
    for login in ("bob", "carol"):
        await call(server.url, "POST", f"/api/v1/chats/{chat_id}/members", alice, {"login": login})
    assert (
        await call(server.url, "DELETE", f"/api/v1/chats/{chat_id}/members/bob", bob)
    ).status_code == 200
    assert (
        await call(server.url, "GET", f"/api/v1/chats/{chat_id}/messages", bob)
    ).status_code == 403
    not_owner = await call(server.url, "DELETE", f"/api/v1/chats/{chat_id}/members/alice", carol)
    assert not_owner.status_code == 403
    removed = await call(server.url, "DELETE", f"/api/v1/chats/{chat_id}/members/carol", alice)
    assert removed.status_code == 200
    assert (await send(server.url, carol, "still here?", chat_id=chat_id)).status_code == 403


OUTSIDER_CALLS = [
    ("GET", "/api/v1/chats/{chat}", None),
    ("GET", "/api/v1/chats/{chat}/messages", None),
    ("POST", "/api/v1/chats/{chat}/messages", {"text": "let me in"}),
    ("POST", "/api/v1/chats/{chat}/read", {"up_to": 1}),
    ("GET", "/api/v1/chats/{chat}/members", None),
    ("POST", "/api/v1/chats/{chat}/members", {"login": "eve"}),
    ("DELETE", "/api/v1/chats/{chat}/members/alice", None),
    ("POST", "/api/v1/chats/{chat}/links", {}),
    ("GET", "/api/v1/chats/{chat}/requests", None),
    ("POST", "/api/v1/chats/{chat}/requests/eve/approve", None),
    ("POST", "/api/v1/chats/{chat}/requests/eve/reject", None),
    ("GET", "/api/v1/messages/{msg}", None),
    ("POST", "/api/v1/messages/{msg}/comments", {"text": "sneaky"}),
    ("GET", "/api/v1/messages/{msg}/thread", None),
    ("POST", "/api/v1/messages/{msg}/thread/read", {"up_to": 1}),
    ("GET", "/api/v1/chats/{chat}/files", None),
]


@pytest.mark.cluster_too
@pytest.mark.parametrize(("method", "path", "body"), OUTSIDER_CALLS)
async def test_outsider_is_denied_everywhere(
    server: ServerProcess, method: str, path: str, body: dict[str, Any] | None
) -> None:
    alice = (await register(server.url, "alice"))["token"]
    eve = (await register(server.url, "eve"))["token"]
    chat_id = await _group(server.url, alice)
    msg = (await send(server.url, alice, "secret plan", chat_id=chat_id)).json()["id"]
    resp = await call(server.url, method, path.format(chat=chat_id, msg=msg), eve, body)
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "forbidden"
    assert "secret plan" not in resp.text
    # the same answer for a chat that does not exist: ids cannot be probed
    ghost = await call(
        server.url, method, path.format(chat=chat_id + 1000, msg=msg + 1000), eve, body
    )
    assert ghost.status_code == 403


async def _login(base: str, login: str) -> str:
    """Another session (device) of ``login``: its token."""
    body = {"login": login, "password": "password1"}
    resp = await call(base, "POST", "/api/v1/auth/login", json=body)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


@pytest.mark.cluster_too
async def test_every_device_of_the_owner_hears_each_decision(server: ServerProcess) -> None:
    """Issue 9 item 12: a join request approved, rejected or settled by an invite on one
    device of the owner reaches the owner's other device as a `join_decision` event naming
    the requester (it only went to the requester, so the other device kept its bar)."""
    laptop = (await register(server.url, "alice"))["token"]
    phone = await _login(server.url, "alice")
    tokens = {who: (await register(server.url, who))["token"] for who in ("bob", "carol", "dave")}
    chat_id = await _group(server.url, laptop)
    async with (
        SseReader(server.url, phone) as other_device,
        SseReader(server.url, tokens["bob"]) as bob,
    ):
        for who in ("bob", "carol", "dave"):
            asked = await call(
                server.url, "POST", "/api/v1/chats/join", tokens[who], {"name": "team"}
            )
            assert asked.json()["state"] == "asked_owner"
        requests = await other_device.until(
            lambda e: isinstance(e, JoinRequested) and e.request.login == "dave"
        )
        asked_of = [e.request.login for _, e in requests if isinstance(e, JoinRequested)]
        assert asked_of == ["bob", "carol", "dave"]
        before_decisions = requests[-1][0]
        assert before_decisions is not None
        base = f"/api/v1/chats/{chat_id}"
        assert (await call(server.url, "POST", f"{base}/requests/bob/approve", laptop)).is_success
        assert (await call(server.url, "POST", f"{base}/requests/carol/reject", laptop)).is_success
        invited = await call(server.url, "POST", f"{base}/members", laptop, {"login": "dave"})
        assert invited.is_success
        decided = await other_device.take(3, lambda e: isinstance(e, JoinDecided))
        assert [(e.login, e.approved) for e in decided if isinstance(e, JoinDecided)] == [
            ("bob", True),
            ("carol", False),
            ("dave", True),
        ]
        mine = await bob.take(1, lambda e: isinstance(e, JoinDecided))
        assert mine == [JoinDecided(chat_id=chat_id, chat_name="team", approved=True, login="bob")]
    # In the ordered log: a device that connects later replays the same decisions.
    async with SseReader(server.url, phone, last_event_id=before_decisions) as replay:
        again = await replay.take(3, lambda e: isinstance(e, JoinDecided))
    assert again == decided
    # Inviting someone who never asked decides nothing.
    erin = (await register(server.url, "erin"))["token"]
    async with SseReader(server.url, phone) as other_device:
        added = await call(
            server.url, "POST", f"/api/v1/chats/{chat_id}/members", laptop, {"login": "erin"}
        )
        assert added.is_success
        await send(server.url, laptop, "marker", chat_id=chat_id)
        seen = await other_device.until(lambda e: isinstance(e, MessageCreated))
        assert not [e for _, e in seen if isinstance(e, JoinDecided)]
    assert erin
