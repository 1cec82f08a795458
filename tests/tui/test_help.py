"""The help screen (issue 9 item 10) and a refused command's text kept (item 12)."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import DataTable, Input, Label

from messenger_client import commands as slash
from messenger_client.tui.app import MessengerApp
from messenger_client.tui.screens.help import HelpScreen
from tests.support.server import ServerProcess
from tests.tui.conftest import SIZE, screen_text, signed_in, until


def table_rows(screen: HelpScreen) -> list[tuple[str, ...]]:
    table = screen.query_one("#help-table", DataTable)
    return [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]


async def test_help_is_one_searchable_screen_of_commands_and_keys(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Issue 9 item 10: /help was ~30 toasts that vanished in 5 s. It is a screen listing
    every command of the command table and every key of the keymap (a remapped key shows
    its new keys), filtered as you type; F1 and the palette open it too."""
    app = make_app(server.url, keymap={"app.status": "f9"})
    async with signed_in(app) as (pilot, _):
        await pilot.press(*"/help", "enter")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        assert not app._notifications  # no toasts
        rows = table_rows(screen)
        shown = {row[1] for row in rows}
        assert {spec.usage for spec in slash.COMMANDS.values()} <= shown
        status = [row for row in rows if "login history" in row[2] and row[0] != "Command"]
        assert [row[1] for row in status] == ["f9"]  # the user's keymap, not the default F2
        assert any(row[0] == "Messages" and "k" in row[1].split(" / ") for row in rows)

        await pilot.press(*"thread")  # the search field has focus
        count = screen.query_one("#help-count", Label)

        search = screen.query_one("#help-search", Input)

        def filtered_by_thread() -> bool:
            shown = table_rows(screen)
            said = str(count.render()) == f"{len(shown)} of {len(rows)}"
            wanted = [row[:3] for row in screen.matching("thread")]
            return search.value == "thread" and said and shown == wanted

        await until(pilot, filtered_by_thread, "the filter on the whole word")
        filtered = table_rows(screen)
        found = screen.matching("thread")  # by what is shown, or a key's name (Ctrl+T)
        assert filtered and all("thread" in " ".join(row).lower() for row in found)
        assert any(row[1] == "/thread <message-id>" for row in filtered)
        # optional arguments show as written, not eaten as markup
        search.value = "history"
        await until(pilot, lambda: "/history [chat|@login] [n]" in screen_text(app), "[args]")
        assert len(filtered) < len(rows)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, "closed")

        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "F1")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, "closed again")

        await pilot.press("ctrl+p")
        await until(pilot, lambda: app.screen is not app.main, "the palette")
        await pilot.press(*"Help")
        await until(pilot, lambda: "Every command and key" in _palette_text(app), "the hit")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help from the palette")

        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, "closed once more")
        await pilot.press(*"/help join", "enter")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "/help join")
        assert app.screen.query_one("#help-search", Input).value == "join"


async def test_keys_are_found_by_their_short_names_and_key_names(
    make_app: Callable[..., MessengerApp],
) -> None:
    """Issue 9 item 10: searching the help screen for "prev" found no Alt+Up (its row
    shows "Open the chat above in the list"; "Prev chat" is its name in the palette), nor
    did "alt+up" (shown as "alt+↑"). Every key is found by its name's words and keys."""
    app = make_app("http://127.0.0.1:9")  # no server needed: the login screen is up
    async with app.run_test(size=SIZE) as pilot:
        app.action_help_screen()
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        await pilot.press(*"prev chat")
        wanted = ("Main screen", "alt+↑", "Open the chat above in the list")
        await until(pilot, lambda: wanted in table_rows(screen), "Alt+Up under 'prev chat'")
        screen.query_one("#help-search", Input).value = "alt+down"
        await until(pilot, lambda: "Open the chat below in the list" in screen_text(app), "")
        assert [row[1] for row in table_rows(screen)] == ["alt+↓"]


def _palette_text(app: MessengerApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_a_refused_command_stays_in_the_composer(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Issue 9 item 12: a refused slash command cleared what the user typed."""
    app = make_app(server.url)
    async with signed_in(app) as (pilot, main):
        await pilot.press(*"/create bad/name", "enter")  # refused by the client
        await until(pilot, lambda: bool(app._notifications), "the refusal")
        assert main.composer.text == "/create bad/name"
        main.composer.clear()
        await pilot.press(*"/join nosuchchat", "enter")  # refused by the server
        await until(pilot, lambda: main.composer.text == "/join nosuchchat", "the text back")
