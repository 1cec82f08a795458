"""Sessions in the TUI (issue 9): an app resumed from a saved token knows its own
session, so a logout on another device ends only that device, and admins get F3."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from messenger_client import Client
from messenger_client.tui.app import MessengerApp
from messenger_client.tui.screens.admin import AdminScreen
from messenger_client.tui.screens.login import LoginScreen
from messenger_protocol import GENERAL_CHAT_ID, MessagePage
from tests.support.server import ServerProcess
from tests.tui.conftest import SIZE, log_in_app, shown_texts, until


async def _resumed_app(
    server: ServerProcess, make_app: Callable[..., MessengerApp], login: str
) -> tuple[MessengerApp, Client]:
    """An app whose token was saved by an earlier run (it starts without a password),
    and the client that made that session."""
    first = Client(server.url)
    await first.register(login, "secret12")
    app = make_app(server.url, login)
    assert first.token is not None
    app.config.tokens.save(app.server, login, first.token)
    return app, first


async def test_logout_on_another_device_does_not_end_a_resumed_session(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Item 7: client A resumed from a saved token keeps working when client B of the same
    user logs out; only ``logout_all`` ends A."""
    app, first = await _resumed_app(server, make_app, "alice")
    other = Client(server.url)
    await other.login("alice", "secret12")
    bob = Client(server.url)
    await bob.register("bob", "secret12")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.connection.state == "connected", "connected")
            await other.logout()  # device B
            await bob.send(GENERAL_CHAT_ID, "after the logout")  # comes after session_ended
            await until(pilot, lambda: "after the logout" in shown_texts(app, 1), "bob's message")
            assert app.screen is app.main, "A's session goes on"
            assert app.config.tokens.load(app.server) == ("alice", first.token)
            await pilot.press(*"still mine", "enter")
            page = await bob.history(GENERAL_CHAT_ID)
            await until(pilot, lambda: app.store and app.store.timeline(1).newest_id, "sent")
            page = await bob.history(GENERAL_CHAT_ID)
            assert [m.text for m in page.messages][-1] == "still mine"
            # logout_all from another device ends this one too
            again = Client(server.url)
            await again.login("alice", "secret12")
            ended, cache = app.client, app.store.cache if app.store else None
            assert ended is not None and cache is not None
            await again.logout_all()
            await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
            assert app.config.tokens.load(app.server) is None
            # the ended session's connections and cache are let go (they were kept open)
            await until(pilot, lambda: ended.closed and cache.closed, "the old session closed")
    finally:
        for client in (first, other, bob):
            await client.close()


async def test_admin_screen_after_a_token_resume(
    server_factory: Callable[..., ServerProcess], make_app: Callable[..., MessengerApp]
) -> None:
    """Item 8: F3 opens the admin screen after a token resume, not only after a password
    login (the server treats the user as admin either way)."""
    server = server_factory(args=["--admins", "root"])
    app, first = await _resumed_app(server, make_app, "root")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.connection.state == "connected", "connected")
            # F3 is offered as soon as the app knows who it is (the footer and palette)
            await until(pilot, lambda: app.check_action("admin", ()), "F3 offered")
            await pilot.press("f3")
            await until(pilot, lambda: isinstance(app.screen, AdminScreen), "the admin screen")
    finally:
        await first.close()


async def test_the_history_on_connect_is_the_servers_also_after_a_token_resume(
    server_factory: Callable[..., ServerProcess],
    make_app: Callable[..., MessengerApp],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 9 item 4: with ``--history-on-connect 7`` the newest page the app asks for on
    connect is 7 messages, after a password login and after a resume from a saved token
    (which used its own page of 50)."""
    server = server_factory(args=["--history-on-connect", "7"])
    bob = Client(server.url)
    await bob.register("bob", "secret12")
    for n in range(15):
        await bob.send(GENERAL_CHAT_ID, f"m{n}")
    asked: list[tuple[Client, int]] = []
    history = Client.history

    async def spy(self: Client, chat_id: int, **query: Any) -> MessagePage:
        if chat_id == GENERAL_CHAT_ID and query.get("before") is query.get("after") is None:
            asked.append((self, query["limit"]))
        return await history(self, chat_id, **query)

    monkeypatch.setattr(Client, "history", spy)
    resumed, first = await _resumed_app(server, make_app, "alice")
    try:
        async with resumed.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: resumed.connection.state == "connected", "connected")
            await until(pilot, lambda: "m14" in shown_texts(resumed, 1), "the newest message")
            await until(pilot, lambda: len(asked) >= 2, "the page at start and at connect")
            assert {limit for client, limit in asked if client is resumed.client} == {7}
        asked.clear()
        app = make_app(server.url, "carol")
        await first.close()
        await (first := Client(server.url)).register("carol", "secret12")
        async with app.run_test(size=SIZE) as pilot:
            await log_in_app(pilot, app, "carol")
            await until(pilot, lambda: "m14" in shown_texts(app, 1), "the newest message")
            await until(pilot, lambda: len(asked) >= 2, "the page at start and at connect")
            assert {limit for client, limit in asked if client is app.client} == {7}
    finally:
        for client in (first, bob):
            await client.close()
