"""State survives restarts, and an acknowledged message survives kill -9 (F5)."""

from __future__ import annotations

from tests.support.server import ServerProcess
from tests.support.wire import call, register, send


async def test_state_survives_clean_restart(server: ServerProcess) -> None:
    token = (await register(server.url, "alice"))["token"]
    await send(server.url, token, "persisted")
    server.restart()
    # the token is still valid and the message is there
    page = (await call(server.url, "GET", "/api/v1/chats/1/messages", token)).json()
    assert [m["text"] for m in page["messages"]] == ["persisted"]
    login = await call(
        server.url, "POST", "/api/v1/auth/login", json={"login": "alice", "password": "password1"}
    )
    assert login.status_code == 200


async def test_acknowledged_message_survives_kill_9(server: ServerProcess) -> None:
    token = (await register(server.url, "alice"))["token"]
    acked = await send(server.url, token, "acked before the crash")
    assert acked.status_code == 200
    server.kill()
    server.start()
    page = (await call(server.url, "GET", "/api/v1/chats/1/messages", token)).json()
    assert [m["id"] for m in page["messages"]] == [acked.json()["id"]]
