"""Issue 12 in the TUI, the everyday part: search (Ctrl+F), jumping to a quote's original,
the typing line, "seen by", the Mentions view, muting from the palette and the palette's
message acts -- against the real server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.command import CommandPalette
from textual.widgets import OptionList

from messenger_client import Client
from messenger_client.tui.app import MessengerApp
from messenger_client.tui.screens.find import MentionsScreen, SearchScreen
from messenger_client.tui.widgets.message_view import MessageView
from messenger_client.tui.widgets.typing_line import typing_text
from messenger_protocol import GENERAL_CHAT_ID, Typing
from tests.support.server import ServerProcess
from tests.tui.conftest import screen_text, signed_in, until
from tests.tui.test_annotations import select_message


def selected_text(view: MessageView) -> str | None:
    message = view.selected_message()
    return message.text if message is not None else None


async def test_ctrl_f_finds_as_you_type_and_enter_jumps_to_the_message_with_its_context(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client
) -> None:
    """A word half typed already finds its message (the last word is a prefix). The hit
    is older than the chat's newest page: Enter loads the history around it (before and
    after) and selects it."""
    app = make_app(server.url)
    async with signed_in(app) as (pilot, main):
        assert app.store is not None
        team = await bob.create_chat("team")  # general allows 20 messages an hour
        await bob.invite(team.id, "alice")
        before = await bob.send(team.id, "just before the fox")
        fox = await bob.send(team.id, "the quick brown fox jumps")
        after = await bob.send(team.id, "just after the fox")
        for n in range(60):
            newest = await bob.send(team.id, f"filler {n}")
        await until(pilot, lambda: team.id in app.store.chats if app.store else False, "team")

        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), "the search screen")
        search = app.screen
        assert isinstance(search, SearchScreen)
        first: SearchScreen = search
        await pilot.press(*"qui")  # half typed: the last word is a prefix
        await until(pilot, lambda: "qui" in first.asked, "the live answer")
        await until(pilot, lambda: "the quick brown fox" in screen_text(app), "the hit shown")
        text = screen_text(app)
        assert "# team" in text and "bob" in text and "the quick brown fox" in text
        assert first.query_one(OptionList).option_count == 1
        await pilot.press("enter")
        await until(pilot, lambda: selected_text(main.view) == fox.text, "the jump")
        await until(pilot, lambda: not any(
            w.group == "jump" and not w.is_finished for w in app.workers
        ), "the history around it")  # fmt: skip
        assert selected_text(main.view) == fox.text
        assert app.screen is main and main.current_chat == team.id
        timeline = main.view.timeline
        assert timeline is not None
        held = [m.id for m in timeline.messages]
        assert before.id in held and after.id in held, "history on both sides of the hit"
        assert "the quick brown fox jumps" in screen_text(app)

        # a query that finds nothing says so; Esc closes and goes nowhere
        main.view.focus()
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), "search again")
        again = app.screen
        assert isinstance(again, SearchScreen)
        await pilot.press(*"zebra")
        await until(pilot, lambda: "zebra" in again.asked, "the answer")
        await until(pilot, lambda: "Nothing found" in screen_text(app), "nothing found")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is main, "closed")
        assert selected_text(main.view) == fox.text

        # the window grows towards now: End reaches the newest message (newer pages may
        # already have come in as the view neared the window's end)
        main.view.focus()
        await pilot.press("end")
        await until(pilot, lambda: newest.text in screen_text(app), "the newest on screen")
        assert main.view.timeline is not None and not main.view.timeline.has_newer


async def test_markdown_shows_styled_in_the_chat_and_plain_in_search_hits(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client
) -> None:
    """Issue 12: a code block shows without its fences (highlighted), and a search hit
    shows the words, not the ``**`` and backticks around them."""
    app = make_app(server.url)
    async with signed_in(app) as (pilot, _):
        await bob.send(
            GENERAL_CHAT_ID, "the **zebra** plan, see `make zebra`\n```sh\nmake zebra\n```"
        )
        await until(pilot, lambda: "the zebra plan, see make zebra" in screen_text(app), "styled")
        assert "```" not in screen_text(app) and "**" not in screen_text(app)
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), "the search screen")
        search = app.screen
        assert isinstance(search, SearchScreen)
        await pilot.press(*"zebra")
        await until(pilot, lambda: "zebra" in search.asked, "the hits")
        await until(pilot, lambda: "the zebra plan" in screen_text(app), "the hit")
        hits = screen_text(app)
        assert "**" not in hits and "`" not in hits, hits


async def test_a_click_on_a_quote_selects_the_message_it_answers(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client
) -> None:
    app = make_app(server.url)
    async with signed_in(app) as (pilot, main):
        asked = await bob.send(GENERAL_CHAT_ID, "who has the keys?")
        for n in range(3):
            await bob.send(GENERAL_CHAT_ID, f"meanwhile {n}")
        await bob.send(GENERAL_CHAT_ID, "I do", reply_to=asked.id)
        await until(pilot, lambda: "↱ bob who has the keys?" in screen_text(app), "the quote")
        view = main.view

        def quote_row() -> int:
            layout = view.layout_
            assert layout is not None and view.timeline is not None
            reply = len(view.timeline) - 1
            return next(
                y for y in range(view.size.height)
                if layout.index_at(view._line_at(y)) == reply
                and layout.quote_at(reply, view._line_at(y) - layout.line_of(reply)) is not None
            )  # fmt: skip

        # a line that arrives between finding the quote and the click (a read receipt's
        # "seen by") moves it: click where it is now until the click lands on it
        for _ in range(5):
            await pilot.click(view, offset=(6, quote_row()))
            await pilot.pause()
            if selected_text(view) == asked.text:
                break
        await until(pilot, lambda: selected_text(view) == asked.text, "the original selected")


async def typing_of(client: Client, login: str, after: int | None) -> Typing:
    """The next typing event of ``login`` on ``client``'s event stream."""
    stream = client.events(after)
    try:
        async for item in stream:
            if isinstance(item, Typing) and item.login == login:
                return item
    finally:
        await stream.aclose()
    raise AssertionError("the stream ended")


async def test_the_typing_line_shows_who_types_and_the_composer_tells_others(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client
) -> None:
    app = make_app(server.url)
    async with signed_in(app) as (pilot, main):
        await bob.typing(GENERAL_CHAT_ID)
        await until(pilot, lambda: "bob is typing…" in screen_text(app), "the typing line")
        await bob.send(GENERAL_CHAT_ID, "done typing")
        await until(pilot, lambda: "done typing" in screen_text(app), "bob's message")
        # his message ends his typing at once (not when the notice expires); the line may
        # be drawn a frame after the message
        assert app.store is not None and "bob" not in app.store.typing.get(GENERAL_CHAT_ID, {})
        await until(pilot, lambda: "is typing" not in screen_text(app), "the line gone")
        assert not main.typing_line.display

        # alice types: bob hears it (one notice, however many keys)
        session = bob.session
        assert session is not None
        heard = asyncio.ensure_future(typing_of(bob, "alice", session.last_event_id))
        await pilot.press(*"hel")
        await until(pilot, heard.done, "alice's typing notice")
        assert heard.result().chat_id == GENERAL_CHAT_ID
        assert app.receipts._typed.get(GENERAL_CHAT_ID) is not None


def test_typing_names_fold() -> None:
    assert typing_text([]) == ""
    assert typing_text(["bob"]) == "bob is typing…"
    assert typing_text(["bob", "carol"]) == "bob and carol are typing…"
    assert typing_text(["bob", "carol", "dave"]) == "bob, carol and dave are typing…"
    assert typing_text(["a", "b", "c", "d"]) == "4 people are typing…"


async def test_selecting_your_message_says_who_has_seen_it(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client
) -> None:
    app = make_app(server.url)
    async with signed_in(app) as (pilot, main):
        assert app.store is not None
        await bob.send(GENERAL_CHAT_ID, "hi")
        await pilot.press(*"ping", "enter")
        await until(pilot, lambda: any(
            m.text == "ping" and m.id for m in app.store.timeline(GENERAL_CHAT_ID)
        ) if app.store else False, "sent")  # fmt: skip
        await select_message(pilot, app, "ping")
        await until(pilot, lambda: "Not seen yet" in screen_text(app), "not seen yet")
        ping = next(m for m in app.store.timeline(GENERAL_CHAT_ID) if m.text == "ping")
        await bob.mark_read(GENERAL_CHAT_ID, ping.id)
        # live: bob's receipt event updates the line while it is shown
        await until(pilot, lambda: "✓ Seen by bob" in screen_text(app), "seen by bob, live")
        await pilot.press("k")  # bob's message: no line (not yours)
        await until(pilot, lambda: not main.seen_line.display, "no line on bob's message")
        await pilot.press("j")
        await until(pilot, lambda: "✓ Seen by bob" in screen_text(app), "seen by bob")
        assert "your “ping”" in screen_text(app)
        # edited (here, from another device) while selected: the line names the new text
        # (it kept the old one, which no longer shows anywhere)
        assert app.client is not None
        await app.client.edit(ping.id, "pong")
        await until(pilot, lambda: "✓ Seen by bob  · your “pong”" in screen_text(app), "new")
        assert " e Edit " in screen_text(app).splitlines()[-1]  # the footer
        await pilot.press("escape")
        await until(pilot, lambda: not main.seen_line.display, "gone with the selection")
        # deleted while selected: no line about it, no edit key in the footer
        await pilot.press("end")  # the newest: pong
        await until(pilot, lambda: main.seen_line.display, "the line again")
        await app.client.delete_message(ping.id)
        await until(pilot, lambda: not main.seen_line.display, "no line on a tombstone")
        await until(pilot, lambda: " e Edit " not in screen_text(app).splitlines()[-1], "footer")


def crew_badge(app: MessengerApp) -> str:
    """The badge at the end of the chat list's "crew" row ("@1", "3", or "")."""
    rows = (line.split("▕")[0] for line in screen_text(app).splitlines())
    return next(row for row in rows if "≡ crew" in row).split("⊘")[-1].strip()


async def test_mentions_view_jumps_and_a_muted_chat_is_marked_in_the_list(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client
) -> None:
    app = make_app(server.url)
    async with signed_in(app) as (pilot, main):
        assert app.store is not None
        called = await bob.send(GENERAL_CHAT_ID, "@alice can you look?")
        await bob.send(GENERAL_CHAT_ID, "no rush")
        await until(pilot, lambda: "no rush" in screen_text(app), "bob's messages")

        await pilot.press("alt+m")
        await until(pilot, lambda: isinstance(app.screen, MentionsScreen), "the Mentions view")
        mentions = app.screen
        assert isinstance(mentions, MentionsScreen)
        await until(pilot, lambda: mentions.loaded, "the mentions")
        assert "can you look?" in screen_text(app)
        await pilot.press("enter")
        await until(pilot, lambda: selected_text(main.view) == called.text, "the jump")

        # mute from the palette: the chat list marks it
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"Mute general")
        await until(pilot, lambda: "Mute general" in screen_text(app), "the entry")
        await pilot.press("enter")
        await until(pilot, lambda: app.store is not None and app.store.chats[
            GENERAL_CHAT_ID
        ].mute == "all", "muted")  # fmt: skip
        await until(pilot, lambda: "general ⊘" in screen_text(app), "the mute mark")

        # a mention in a muted chat not in view: the @N badge shows live (it came only
        # with the next chat list), and goes once the chat is read
        crew = await bob.create_chat("crew")
        await bob.invite(crew.id, "alice")
        await until(pilot, lambda: crew.id in app.store.chats if app.store else False, "crew")
        assert app.client is not None
        await app.client.mute(crew.id, "all")
        await until(pilot, lambda: "crew ⊘" in screen_text(app), "crew muted")
        await bob.send(crew.id, "@alice the crew needs you")
        await until(pilot, lambda: crew_badge(app) == "@1", "the mention badge")
        app.open_chat(crew.id)
        await until(pilot, lambda: "the crew needs you" in screen_text(app), "crew open")
        await until(pilot, lambda: crew_badge(app) == "", "read: the badge goes")


async def test_the_palette_acts_on_the_selected_message(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client
) -> None:
    app = make_app(server.url)
    async with signed_in(app) as (pilot, _):
        await bob.send(GENERAL_CHAT_ID, "tea?")
        await until(pilot, lambda: "tea?" in screen_text(app), "bob's message")
        await select_message(pilot, app, "tea?")
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"Reply to the selected")
        await until(pilot, lambda: "Reply to the selected" in screen_text(app), "the entry")
        await pilot.press("enter")
        await until(pilot, lambda: "Replying to bob: tea?" in screen_text(app), "the reply")
