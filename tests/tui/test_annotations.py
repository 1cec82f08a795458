"""Issue 12 in the TUI: what others do to messages (edit, delete, reply, react) shows at
once in the chat that is open, against the real server."""

from __future__ import annotations

from collections.abc import Callable

from messenger_client.tui.app import MessengerApp
from messenger_protocol import GENERAL_CHAT_ID
from tests.support.server import ServerProcess
from tests.tui.conftest import until
from tests.tui.test_app import SIZE, other_user, register_in_app, screen_text


async def test_an_edit_a_reply_reactions_and_a_delete_show_in_the_open_chat(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    bob = await other_user(server, "bob")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await register_in_app(pilot, app, "alice")
            first = await bob.send(GENERAL_CHAT_ID, "lunch at noon?")
            await until(pilot, lambda: "lunch at noon?" in screen_text(app), "bob's message")

            await bob.edit(first.id, "lunch at one?")
            await until(pilot, lambda: "lunch at one? (edited)" in screen_text(app), "the edit")
            assert "lunch at noon?" not in screen_text(app)

            await bob.send(GENERAL_CHAT_ID, "or later", reply_to=first.id)
            await until(pilot, lambda: "↱ bob lunch at one?" in screen_text(app), "the quote")

            await bob.react(first.id, "👍")
            await until(pilot, lambda: "👍 1" in screen_text(app), "the reaction chip")
            await bob.unreact(first.id, "👍")
            await until(pilot, lambda: "👍 1" not in screen_text(app), "the chip gone")

            await bob.delete_message(first.id)
            await until(pilot, lambda: "message deleted" in screen_text(app), "the tombstone")
            text = screen_text(app)
            assert "lunch at one? (edited)" not in text
            assert "↱ bob message deleted" in text, "the reply's quote says it is gone"
            assert app.store is not None
            assert next(m.id for m in app.store.timeline(GENERAL_CHAT_ID)) == first.id, (
                "the tombstone keeps its place"
            )
    finally:
        await bob.close()
