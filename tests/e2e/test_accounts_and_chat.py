"""Accounts, the general chat, private messages and idempotency over real sockets (F1-F6)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from messenger_protocol import limits
from messenger_server.storage import store_for
from tests.support.server import ServerProcess
from tests.support.wire import call, register, send


@pytest.mark.cluster_too
async def test_register_login_logout(server: ServerProcess) -> None:
    session = await register(server.url, "alice")
    assert session["user"]["login"] == "alice"
    again = await call(
        server.url, "POST", "/api/v1/auth/register", json={"login": "alice", "password": "other123"}
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    wrong = await call(
        server.url, "POST", "/api/v1/auth/login", json={"login": "alice", "password": "nope1234"}
    )
    unknown = await call(
        server.url, "POST", "/api/v1/auth/login", json={"login": "nobody", "password": "nope1234"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]
    login = await call(
        server.url, "POST", "/api/v1/auth/login", json={"login": "alice", "password": "password1"}
    )
    assert login.status_code == 200
    token = login.json()["token"]
    assert token != session["token"]
    assert (await call(server.url, "POST", "/api/v1/auth/logout", token)).status_code == 200
    after = await call(server.url, "GET", "/api/v1/status", token)
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "unauthorized"
    # the other session is untouched
    assert (await call(server.url, "GET", "/api/v1/status", session["token"])).status_code == 200


@pytest.mark.cluster_too
async def test_general_chat_send_and_history(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    for i in range(25):
        resp = await send(server.url, alice if i % 2 else bob, f"m{i}")
        assert resp.status_code == 200, resp.text
    page = (await call(server.url, "GET", "/api/v1/chats/1/messages", bob)).json()
    texts = [m["text"] for m in page["messages"]]
    assert texts == [f"m{i}" for i in range(5, 25)]  # the last 20, oldest first
    assert page["has_more"] is True
    first = page["messages"][0]["id"]
    older = (
        await call(server.url, "GET", f"/api/v1/chats/1/messages?before={first}&limit=10", bob)
    ).json()
    assert [m["text"] for m in older["messages"]] == [f"m{i}" for i in range(0, 5)]
    assert older["has_more"] is False


@pytest.mark.cluster_too
async def test_text_limit_crossed_by_one(server: ServerProcess) -> None:
    token = (await register(server.url, "alice"))["token"]
    ok = await send(server.url, token, "x" * limits.MAX_MESSAGE_TEXT)
    assert ok.status_code == 200
    too_long = await send(server.url, token, "x" * (limits.MAX_MESSAGE_TEXT + 1))
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "invalid"
    page = (await call(server.url, "GET", "/api/v1/chats/1/messages", token)).json()
    assert len(page["messages"]) == 1


@pytest.mark.cluster_too
async def test_retried_send_is_not_duplicated(server: ServerProcess) -> None:
    token = (await register(server.url, "alice"))["token"]
    first = await send(server.url, token, "once", client_id="abc-1")
    retry = await send(server.url, token, "once", client_id="abc-1")
    assert first.status_code == retry.status_code == 200
    assert first.json()["id"] == retry.json()["id"]
    page = (await call(server.url, "GET", "/api/v1/chats/1/messages", token)).json()
    assert [m["text"] for m in page["messages"]] == ["once"]


@pytest.mark.cluster_too
async def test_private_messages_are_private(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    eve = (await register(server.url, "eve"))["token"]
    chat = await call(server.url, "POST", "/api/v1/direct", alice, {"login": "bob"})
    assert chat.status_code == 200
    chat_id = chat.json()["id"]
    assert chat.json()["kind"] == "direct"
    assert (await send(server.url, alice, "psst", chat_id=chat_id)).status_code == 200
    seen = (await call(server.url, "GET", f"/api/v1/chats/{chat_id}/messages", bob)).json()
    assert [m["text"] for m in seen["messages"]] == ["psst"]
    denied = await call(server.url, "GET", f"/api/v1/chats/{chat_id}/messages", eve)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "forbidden"
    nobody = await call(server.url, "POST", "/api/v1/direct", alice, {"login": "ghost"})
    assert nobody.status_code == 404


@pytest.mark.cluster_too
async def test_unread_counts_and_mark_read(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    ids = [(await send(server.url, alice, f"hi {i}")).json()["id"] for i in range(3)]
    unread = (await call(server.url, "GET", "/api/v1/unread", bob)).json()
    assert unread["total"] == 3
    general = next(c for c in unread["chats"] if c["chat"]["id"] == 1)
    assert [m["text"] for m in general["messages"]] == ["hi 0", "hi 1", "hi 2"]
    # the author's own messages are not unread for them
    assert (await call(server.url, "GET", "/api/v1/unread", alice)).json()["total"] == 0
    marked = await call(server.url, "POST", "/api/v1/chats/1/read", bob, {"up_to": ids[1]})
    assert marked.status_code == 200
    assert (await call(server.url, "GET", "/api/v1/unread", bob)).json()["total"] == 1


@pytest.mark.cluster_too
async def test_status_shows_counts_and_login_history(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    await register(server.url, "bob")
    chat_id = (await call(server.url, "POST", "/api/v1/direct", alice, {"login": "bob"})).json()[
        "id"
    ]
    await send(server.url, alice, "one", chat_id=chat_id)
    await send(server.url, alice, "two", chat_id=chat_id)
    status = (await call(server.url, "GET", "/api/v1/status", alice)).json()
    assert status["user"]["login"] == "alice"
    assert status["private_sent"] == 2
    assert status["logins"][0]["address"].startswith("127.0.0.1")
    assert any(c["address"].startswith("127.0.0.1") for c in status["connections"])


@pytest.mark.cluster_too
async def test_users_and_contacts(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    await register(server.url, "bob")
    users = (await call(server.url, "GET", "/api/v1/users", alice)).json()["users"]
    assert {u["login"] for u in users} == {"alice", "bob"}
    added = await call(server.url, "POST", "/api/v1/contacts", alice, {"login": "bob"})
    assert added.status_code == 200
    contacts = (await call(server.url, "GET", "/api/v1/contacts", alice)).json()["contacts"]
    assert [c["login"] for c in contacts] == ["bob"]
    assert (await call(server.url, "DELETE", "/api/v1/contacts/bob", alice)).status_code == 200
    assert (await call(server.url, "GET", "/api/v1/contacts", alice)).json()["contacts"] == []
    missing = await call(server.url, "POST", "/api/v1/contacts", alice, {"login": "ghost"})
    assert missing.status_code == 404


@pytest.mark.cluster_too
async def test_openapi_and_health(server: ServerProcess) -> None:
    health = await call(server.url, "GET", "/healthz")
    assert health.status_code == 200
    doc = await call(server.url, "GET", "/api/v1/openapi.json")
    assert doc.status_code == 200
    assert doc.json()["openapi"] == "3.1.0"
    assert "/api/v1/chats/{chat_id}/messages" in doc.json()["paths"]


async def test_password_hashes_take_the_configured_argon2_cost(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """``argon2_time_cost``/``argon2_memory_kib`` are the cost of every stored hash (the
    suite's servers run at the cheapest one; a deployment at OWASP's default). Not on the
    cluster: the cost is each node's own setting, read by the node that hashes."""
    server = server_factory(
        env={"MESSENGER_ARGON2_TIME_COST": "2", "MESSENGER_ARGON2_MEMORY_KIB": "2048"}
    )
    await register(server.url, "alice")
    server.stop()
    store = store_for(server.store_url, server.data_dir)
    await store.open()
    try:
        user = await store.read(lambda tx: tx.user_by_login("alice"))
    finally:
        await store.close()
    assert user is not None
    assert user.password_hash.startswith("$argon2id$v=19$m=2048,t=2,")
