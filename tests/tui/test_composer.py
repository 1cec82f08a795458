"""The composer keeps what the user types, wherever the focus happens to be."""

from __future__ import annotations

from collections.abc import Callable

from textual import events
from textual.widgets import Input

from messenger_client.tui.app import MessengerApp
from messenger_client.tui.screens.find import SearchScreen
from messenger_client.tui.screens.status import StatusScreen
from messenger_client.tui.widgets.message_view import MessageView
from messenger_protocol import GENERAL_CHAT_ID
from tests.support.server import ServerProcess
from tests.tui.conftest import (
    other_user,
    shown_texts,
    signed_in,
    type_at_once,
    until,
    until_true,
)
from tests.tui.test_annotations import select_message


async def test_typing_while_the_message_list_has_focus_goes_to_the_composer(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Issue 9 item 9: after a click on a message (or a closed dialog) printable keys went
    nowhere. They go to the composer, the first one too, after what was already typed;
    j/k/g/G and Enter stay the list's."""
    bob = await other_user(server, "bob")
    await bob.send(GENERAL_CHAT_ID, "first")
    await bob.send(GENERAL_CHAT_ID, "second")
    app = make_app(server.url)
    try:
        async with signed_in(app) as (pilot, main):
            await until(pilot, lambda: "second" in shown_texts(app, 1), "the history")
            await pilot.press(*"draft ")
            assert main.composer.text == "draft "
            await pilot.click(MessageView)
            await until(pilot, lambda: main.view.has_focus, "the list focused by the click")
            await pilot.press("h")  # the very first key is kept
            assert main.composer.has_focus and main.composer.text == "draft h"
            await pilot.press(*"i there")
            assert main.composer.text == "draft hi there"

            # issue 12: a word typed at once (as a terminal delivers a fast typist's keys)
            # keeps its letters that are the list's keys (e edit, r reply, d delete, j k)
            await pilot.click(MessageView)
            await until(pilot, lambda: main.view.has_focus, "the list focused by the click")
            type_at_once(app, " hello dear jerk")
            await until(pilot, lambda: main.composer.has_focus, "the composer focused")
            await pilot.pause()
            assert main.composer.text == "draft hi there hello dear jerk"
            main.composer.clear()
            # a / typed in the list opens search, and the words typed at once after it
            # are its query (none is lost, none goes to the chat as a message); in the
            # composer / begins a command
            await pilot.click(MessageView)
            await until(pilot, lambda: main.view.has_focus, "the list focused by the click")
            type_at_once(app, "/second")
            await until(pilot, lambda: isinstance(app.screen, SearchScreen), "the search")
            search = app.screen
            assert isinstance(search, SearchScreen)
            await until(pilot, lambda: "second" in search.asked, "the query searched")
            assert search.query_one(Input).value == "second" and main.composer.text == ""
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is main, "back from the search")
            main.composer.focus()
            await pilot.press(*"/me")
            assert main.composer.text == "/me" and app.screen is main
            main.composer.clear()
            await pilot.press(*"draft hi there")

            # the list's own keys stay the list's: k selects, nothing is typed
            main.view.focus()
            await until(pilot, lambda: main.view.has_focus, "the list focused again")
            await pilot.press("k", "k", "j")
            assert main.view.has_focus and main.view.selected is not None
            assert main.composer.text == "draft hi there"

            # after a dialog closes the focus is back on the list; typing still lands
            await pilot.press("f2")
            await until(pilot, lambda: isinstance(app.screen, StatusScreen), "the status")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is main and main.view.has_focus, "back")
            await pilot.press("!")
            assert main.composer.text == "draft hi there!"
            await pilot.press("enter")
            await until(pilot, lambda: "draft hi there!" in shown_texts(app, 1), "sent")
            assert main.composer.text == ""

            # "hello" typed at once with the list focused on alice's own message (where e
            # edits) is sent whole: h is no list key, so it moves the focus to the
            # composer and the e after it is typed there, not taken as the edit key
            await select_message(pilot, app, "draft hi there!")
            type_at_once(app, "hello")
            await until(pilot, lambda: main.composer.text == "hello", "typed in the composer")
            assert main.composer.intent is None  # no edit began
            await pilot.press("enter")

            async def sent_as_typed() -> bool:
                return "hello" in [m.text for m in (await bob.history(GENERAL_CHAT_ID)).messages]

            await until_true(pilot, sent_as_typed, "sent as typed")
    finally:
        await bob.close()


async def test_keys_typed_at_once_edit_in_the_order_they_were_typed(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Found in tmux: Backspace and the letter typed right after it (one read of the
    terminal) deleted the letter, not the character before it: the composer typed the
    letter at once, and the app ran Backspace's binding later. "noom", Backspace, "n" is
    "noon"; the arrows and Delete keep their place in a burst too."""
    app = make_app(server.url)
    async with signed_in(app) as (pilot, main):
        type_at_once(app, "see you at noom\x7fn")
        await pilot.press("!")  # after the burst: pressed once the app has handled it
        assert main.composer.text == "see you at noon!"
        main.composer.clear()
        assert app._driver is not None
        for key, character in [("a", "a"), ("c", "c"), ("left", None), ("b", "b")]:
            event = events.Key(key, character)
            event.set_sender(app)
            app._driver.send_message(event)
        await pilot.press("!")
        assert main.composer.text == "ab!c"  # the cursor stays after the b


async def test_a_paste_into_the_message_list_lands_in_the_composer(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Issue 9 item 9: pasted text is not lost either."""
    app = make_app(server.url)
    async with signed_in(app) as (pilot, main):
        main.view.focus()
        await until(pilot, lambda: main.view.has_focus, "the list focused")
        app.post_message(events.Paste("pasted text"))  # what the terminal sends
        # the text lands at once, the focus follows on the app's next turn
        await until(pilot, lambda: main.composer.text == "pasted text", "the paste")
        await until(pilot, lambda: main.composer.has_focus, "the composer focused")
