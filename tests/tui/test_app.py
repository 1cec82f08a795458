"""The Textual app against the real server process, driven with Pilot like a user would."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import Input, Static

from messenger_client import Client
from messenger_client.tui.app import MessengerApp
from messenger_client.tui.robust import describe_error
from messenger_client.tui.screens.login import LoginScreen
from messenger_client.tui.screens.status import StatusScreen
from messenger_client.tui.widgets.chat_list import ChatList
from messenger_protocol import GENERAL_CHAT_ID, ApiError, ErrorCode
from tests.support.server import ServerProcess
from tests.tui.conftest import SIZE, click, screen_text, shown_texts, signed_in, until
from tests.tui.conftest import other_user as other_user  # some modules import it from here


async def test_register_send_and_receive(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    bob = await other_user(server, "bob")
    try:
        async with signed_in(app) as (pilot, _):
            assert app.main is not None and app.screen is app.main
            await pilot.press(*"hello **world**", "enter")
            await until(pilot, lambda: app.store and app.store.timeline(1).newest_id, "sent")
            page = await bob.history(GENERAL_CHAT_ID)
            assert [m.text for m in page.messages] == ["hello **world**"]
            await bob.send(GENERAL_CHAT_ID, "hi alice")
            await until(pilot, lambda: "hi alice" in shown_texts(app, 1), "bob's message")
            screen = screen_text(app)
            assert "hello world" in screen and "hi alice" in screen and "● connected" in screen
            assert shown_texts(app, 1) == ["hello **world**", "hi alice"]
    finally:
        await bob.close()


async def test_wrong_password_and_taken_login_are_explained(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    bob = await other_user(server, "bob")
    await bob.close()
    app = make_app(server.url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LoginScreen))
        error = app.screen.query_one("#login-error", Static)
        app.screen.query_one("#login", Input).value = "bob"
        app.screen.query_one("#password", Input).value = "wrong-password"
        await click(pilot, "#do-login")
        await until(pilot, lambda: "Wrong login or password" in str(error.render()))
        await click(pilot, "#do-register")
        await until(pilot, lambda: "taken" in str(error.render()).lower())


async def test_server_down_is_explained(make_app: Callable[..., MessengerApp]) -> None:
    app = make_app("http://127.0.0.1:9")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LoginScreen))
        app.screen.query_one("#login", Input).value = "alice"
        app.screen.query_one("#password", Input).value = "secret12"
        await pilot.press("enter", "enter")  # login field -> password field -> log in
        error = app.screen.query_one("#login-error", Static)
        await until(pilot, lambda: "Cannot reach the server" in str(error.render()))


async def test_unread_badge_appears_and_clears_and_chats_switch_by_click_and_key(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    bob = await other_user(server, "bob")
    try:
        async with signed_in(app) as (pilot, _):
            store = app.store
            assert store is not None and app.main is not None
            direct = await bob.open_direct("alice")
            await bob.send(direct.id, "psst, alice")
            await until(pilot, lambda: direct.id in store.chats and store.chats[direct.id].unread)
            assert store.chats[direct.id].unread == 1
            chat_list = app.main.query_one(ChatList)
            await until(pilot, lambda: "○ bob                   1" in screen_text(app), "badge")
            # Click the conversation in the list.
            row = chat_list.chat_ids.index(direct.id)
            await pilot.click(ChatList, offset=(3, row))
            await until(pilot, lambda: app.main is not None and app.main.current_chat == direct.id)
            await until(pilot, lambda: store.chats[direct.id].unread == 0, "badge cleared")
            assert "psst, alice" in shown_texts(app, direct.id)
            # Alt+1 goes back to general, Alt+A jumps to the chat with activity.
            await pilot.press("alt+1")
            assert app.main.current_chat == GENERAL_CHAT_ID
            await bob.send(direct.id, "are you there?")
            await until(pilot, lambda: store.chats[direct.id].unread == 1)
            await pilot.press("alt+a")
            assert app.main.current_chat == direct.id
            await until(pilot, lambda: store.chats[direct.id].unread == 0)
            await pilot.press("alt+up")
            assert app.main.current_chat == GENERAL_CHAT_ID
            # The read state reached the server too.
            chats = {c.id: c for c in (await bob.chats()).chats}
            assert chats[direct.id].unread == 0  # bob's own view
    finally:
        await bob.close()


async def test_reconnects_after_server_restart_without_duplicates(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    async with signed_in(app) as (pilot, _):
        bob = await other_user(server, "bob")
        await bob.send(GENERAL_CHAT_ID, "before the restart")
        await until(pilot, lambda: "before the restart" in shown_texts(app, 1))
        await bob.close()
        server.stop()
        await until(pilot, lambda: app.connection.state != "connected", "the drop noticed")
        assert "reconnecting" in screen_text(app) or "offline" in screen_text(app)
        server.start()
        bob = await Client(server.url).__aenter__()
        await bob.login("bob", "secret12")
        for n in range(3):
            await bob.send(GENERAL_CHAT_ID, f"after the restart {n}")
        await until(pilot, lambda: app.connection.state == "connected", "reconnected")
        await until(pilot, lambda: "after the restart 2" in shown_texts(app, 1), "catch-up")
        await bob.close()
        texts = shown_texts(app, 1)
        assert texts == [
            "before the restart",
            "after the restart 0",
            "after the restart 1",
            "after the restart 2",
        ]


async def test_a_send_while_offline_is_kept_and_retried_once(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    async with signed_in(app) as (pilot, _):
        server.stop()
        await until(pilot, lambda: app.connection.state != "connected", "the drop noticed")
        await pilot.press(*"written offline", "enter")
        await until(pilot, lambda: "not sent, retrying" in screen_text(app), "pending shown")
        assert app.store is not None
        timeline = app.store.timeline(GENERAL_CHAT_ID)
        assert [m.text for m in timeline.pending] == ["written offline"]
        server.start()
        await until(pilot, lambda: not timeline.pending and timeline.newest_id, "delivered")
        assert "not sent" not in screen_text(app)
        assert shown_texts(app, 1) == ["written offline"]
    async with Client(server.url) as bob:
        await bob.register("bob", "secret12")
        page = await bob.history(GENERAL_CHAT_ID)
        assert [m.text for m in page.messages] == ["written offline"]


async def test_status_screen_and_cached_history_after_restart_of_the_app(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    async with signed_in(app) as (pilot, _):
        await pilot.press(*"remember me", "enter")
        await until(pilot, lambda: app.store and app.store.timeline(1).newest_id, "sent")
        await pilot.press("f2")
        await until(pilot, lambda: isinstance(app.screen, StatusScreen))
        await until(pilot, lambda: "Login history" in screen_text(app), "status loaded")
        assert "alice" in screen_text(app)
        await pilot.press("escape")
        assert app.screen is app.main
    server.stop()
    # A new run with the saved token shows the cached history at once, offline.
    again = make_app(server.url)
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: again.main is not None and again.main.view.layout_)
        assert "remember me" in screen_text(again)
        assert again.connection.state != "connected"


async def test_thread_panel_opens_on_a_message_and_comments_both_ways(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    bob = await other_user(server, "bob")
    try:
        async with signed_in(app) as (pilot, _):
            root = await bob.send(GENERAL_CHAT_ID, "what do you think?")
            await until(pilot, lambda: "what do you think?" in shown_texts(app, 1))
            main = app.main
            assert main is not None and app.store is not None
            # Tab into the messages, k selects the newest, Enter opens its thread.
            main.view.focus()
            await pilot.press("k", "enter")
            await until(pilot, lambda: main.thread_root is not None, "the thread panel")
            assert main.thread_root is not None and main.thread_root.id == root.id
            await pilot.press(*"looks good", "enter")
            thread = app.store.threads[root.id]
            await until(pilot, lambda: not thread.pending and len(thread) == 2, "comment sent")
            answer = await bob.thread(root.id)
            assert [c.text for c in answer.comments] == ["looks good"]
            await bob.comment(root.id, "thanks!")
            await until(pilot, lambda: [m.text for m in thread][-1] == "thanks!", "bob's comment")
            await until(pilot, lambda: "2 comments" in screen_text(app), "count in the panel")
            await pilot.press("escape")
            assert main.thread_root is None and main.composer.has_focus
    finally:
        await bob.close()


async def test_people_panel_adds_and_removes_a_contact_and_opens_a_private_chat(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    bob = await other_user(server, "bob")
    app = make_app(server.url)
    try:
        async with signed_in(app) as (pilot, _):
            store, main = app.store, app.main
            assert store is not None and main is not None
            await until(pilot, lambda: "bob" in store.users, "the user list")
            await pilot.press("ctrl+o")
            await until(pilot, lambda: main.users_panel.has_focus and main.users_panel.logins)
            assert main.users_panel.logins == ["bob"]
            await pilot.press("plus")
            await until(pilot, lambda: "bob" in store.contacts, "contact added")
            assert [c.login for c in (await bob.contacts()).contacts] == []  # alice's, not bob's
            await pilot.press("minus")
            await until(pilot, lambda: "bob" not in store.contacts, "contact removed")
            await pilot.press("enter")
            await until(pilot, lambda: store.direct_chat("bob") is not None, "the private chat")
            chat = store.direct_chat("bob")
            assert chat is not None and main.current_chat == chat.id
            await pilot.press(*"hi bob", "enter")
            await until(pilot, lambda: store.timeline(chat.id).newest_id, "sent")
            page = await bob.history(chat.id)
            assert [m.text for m in page.messages] == ["hi bob"]
    finally:
        await bob.close()


def test_a_rate_limit_wait_is_said_once() -> None:
    """Issue 9 item 12: "try again in 40 s" was shown twice (server text + a TUI suffix)."""
    text = "at most 20 messages per 1 h in the general chat; try again in 40 s"
    exc = ApiError(ErrorCode.RATE_LIMITED, text, retry_after=40.0)
    assert describe_error(exc) == text


async def test_a_first_private_message_goes_out_like_any_other_without_a_dialog(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Seen in tmux (issue 9 item 5): ``/private bob <text>`` to someone without a private
    chat yet opened a dialog with the sent message that had to be closed; now the chat is
    started and the message goes through the outbox as in any chat."""
    app = make_app(server.url)
    bob = await other_user(server, "bob")
    try:
        async with signed_in(app) as (pilot, _):
            store = app.store
            assert store is not None
            await pilot.press(*"/private bob psst, a private word", "enter")
            await until(pilot, lambda: store.direct_chat("bob") is not None, "the private chat")
            chat = store.direct_chat("bob")
            assert chat is not None
            await until(pilot, lambda: store.timeline(chat.id).newest_id, "sent")
            assert app.screen is app.main, "no dialog to close"
            assert "bob" in screen_text(app), "the chat is in the list"
            page = await bob.history(chat.id)
            assert [m.text for m in page.messages] == ["psst, a private word"]
            # a login that does not exist: one error line, and the text stays
            await pilot.press(*"/private nobody hello", "enter")
            await until(pilot, lambda: app.main is not None and app.main.composer.text, "kept")
            assert app.main is not None and app.main.composer.text == "/private nobody hello"
    finally:
        await bob.close()
