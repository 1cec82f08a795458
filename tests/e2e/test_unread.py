"""Unread after being away, paged; what the server tells a client to show on connect (issue 9)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from messenger_protocol import limits
from tests.support.server import ServerProcess
from tests.support.wire import call, register, send


async def _away_messages(base: str, n: int) -> list[int]:
    """``n`` general-chat messages by two authors (one may post only 20 an hour); their ids."""
    alice = (await register(base, "alice"))["token"]
    dave = (await register(base, "dave"))["token"]
    ids = []
    for i in range(n):
        resp = await send(base, alice if i < n // 2 + 1 else dave, f"away {i}")
        assert resp.status_code == 200, resp.text
        ids.append(resp.json()["id"])
    return ids


async def _login(base: str, login: str) -> dict[str, Any]:
    resp = await call(
        base, "POST", "/api/v1/auth/login", json={"login": login, "password": "password1"}
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_messages_sent_while_away_stay_unread_after_history_and_page_out(
    server: ServerProcess,
) -> None:
    """Issue 9 item 1: 25 general messages while bob was away; the history on connect (20)
    leaves all 25 unread, and paging ``/unread`` reaches every one of them, once, in order."""
    base = server.url
    await register(base, "bob")
    sent = await _away_messages(base, 25)
    token = (await _login(base, "bob"))["token"]
    history = (await call(base, "GET", "/api/v1/chats/1/messages", token)).json()
    assert len(history["messages"]) == 20
    first = (await call(base, "GET", "/api/v1/unread?limit=10", token)).json()
    general = first["chats"][0]
    assert first["total"] == 25 and general["count"] == 25 and general["chat"]["id"] == 1
    assert general["chat"]["unread"] == 25
    assert [m["id"] for m in general["messages"]] == sent[:10] and general["has_more"] is True
    got = [m["id"] for m in general["messages"]]
    while general["has_more"]:
        page = await call(base, "GET", f"/api/v1/unread?chat_id=1&after={got[-1]}&limit=10", token)
        assert page.status_code == 200, page.text
        general = page.json()["chats"][0]
        assert general["count"] == 25  # the count stays exact on every page
        got += [m["id"] for m in general["messages"]]
    assert got == sent
    chats = (await call(base, "GET", "/api/v1/chats", token)).json()["chats"]
    assert next(c for c in chats if c["id"] == 1)["unread"] == 25  # nothing moved the cursor


async def test_unread_page_limit_crossed_by_one(server: ServerProcess) -> None:
    """Issue 9 item 1: a page of ``/unread`` holds at most UNREAD_PAGE_MAX messages."""
    base = server.url
    token = (await register(base, "bob"))["token"]
    most = limits.UNREAD_PAGE_MAX
    ok = await call(base, "GET", f"/api/v1/unread?limit={most}", token)
    assert ok.status_code == 200, ok.text
    over = await call(base, "GET", f"/api/v1/unread?limit={most + 1}", token)
    assert over.status_code == 400 and over.json()["error"]["code"] == "invalid"
    sent = await _away_messages(base, 3)
    exact = (await call(base, "GET", "/api/v1/unread?limit=3", token)).json()["chats"][0]
    assert [m["id"] for m in exact["messages"]] == sent and exact["has_more"] is False
    stranger = await call(base, "GET", "/api/v1/unread?chat_id=999", token)
    assert stranger.status_code == 403 and stranger.json()["error"]["code"] == "forbidden"


async def test_session_says_how_much_history_to_show(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """Issue 9 item 4: the server's --history-on-connect is what a client is told at login."""
    server = server_factory(args=["--history-on-connect", "7"])
    session = await register(server.url, "bob")
    assert session["history_on_connect"] == 7
    await _away_messages(server.url, 10)
    login = await _login(server.url, "bob")
    assert login["history_on_connect"] == 7
    page = (await call(server.url, "GET", "/api/v1/chats/1/messages", login["token"])).json()
    assert len(page["messages"]) == 7
