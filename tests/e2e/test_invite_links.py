"""What the URL of an invite link answers, over raw HTTP (issue 9 item 3)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.support.server import ServerProcess
from tests.support.wire import call, raw_exchange, register


async def _team_with_links(base: str) -> tuple[str, str, dict[str, Any]]:
    """alice owns ``team``; returns her token, bob's token and a fresh link."""
    alice = (await register(base, "alice"))["token"]
    bob = (await register(base, "bob"))["token"]
    chat = (await call(base, "POST", "/api/v1/chats", alice, {"name": "team"})).json()
    link = (await call(base, "POST", f"/api/v1/chats/{chat['id']}/links", alice, {})).json()
    return alice, bob, link


def _target(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


async def test_link_url_says_what_chat_it_is_and_how_to_join(server: ServerProcess) -> None:
    """Issue 9 item 3: GET of a link's URL answers 200 (JSON, or HTML for a browser) with the
    chat and the command to type in the client, never 404."""
    base = server.url
    _, _, link = await _team_with_links(base)
    assert link["link"].startswith(f"{base}/join/team?key=")
    page = await call(base, "GET", _target(link["link"]))
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["chat_name"] == "team" and body["link"] == link["link"]
    assert body["join_command"] == f"/join {link['link']}"
    raw = await raw_exchange(
        base,
        f"GET {_target(link['link'])} HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    head, _, html = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-type: text/html; charset=utf-8" in head.lower()
    assert b"content-security-policy: default-src 'none'" in head.lower()
    assert b"<b>team</b>" in html and f"/join {link['link']}".encode() in html


async def test_every_unusable_link_gets_the_same_refusal(server: ServerProcess) -> None:
    """Issue 9 item 3: unknown chat, unknown key, revoked and used-up keys answer one and
    the same 403 page (JSON and HTML), so the URL tells nothing a holder does not know."""
    base = server.url
    alice, bob, link = await _team_with_links(base)
    chat_id = link["chat_id"]
    once = (
        await call(base, "POST", f"/api/v1/chats/{chat_id}/links", alice, {"max_uses": 1})
    ).json()
    used = await call(base, "POST", "/api/v1/chats/join", bob, {"name": "team", "key": once["key"]})
    assert used.status_code == 200, used.text
    revoked = (await call(base, "POST", f"/api/v1/chats/{chat_id}/links", alice, {})).json()
    gone = await call(base, "DELETE", f"/api/v1/chats/{chat_id}/links/{revoked['key']}", alice)
    assert gone.status_code == 200
    targets = [
        f"/join/nosuchchat?key={link['key']}",
        "/join/team?key=not-a-key",
        "/join/team",
        f"/join/team?key={once['key']}",
        f"/join/team?key={revoked['key']}",
    ]
    answers = [await call(base, "GET", t) for t in targets]
    assert {a.status_code for a in answers} == {403}
    assert len({a.content for a in answers}) == 1
    assert answers[0].json()["error"]["code"] == "forbidden"
    assert "ask the chat's owner for a new one" in answers[0].json()["error"]["message"]
    pages = [await call(base, "GET", t, headers={"Accept": "text/html"}) for t in targets]
    assert {p.status_code for p in pages} == {403}
    assert len({p.content for p in pages}) == 1
    assert b"Invite link not valid" in pages[0].content
