"""Issue 12 in the TUI: what others do to messages (edit, delete, reply, react) shows at
once in the chat that is open, against the real server."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import OptionList

from messenger_client import Client
from messenger_client import commands as slash
from messenger_client.tui.app import MessengerApp
from messenger_client.tui.widgets.annotate import ConfirmDelete, MessageMenu, ReactionPicker
from messenger_protocol import GENERAL_CHAT_ID
from tests.support.server import ServerProcess
from tests.tui.conftest import SIZE, register_in_app, screen_text, signed_in, until


async def test_an_edit_a_reply_reactions_and_a_delete_show_in_the_open_chat(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client
) -> None:
    app = make_app(server.url)
    async with signed_in(app) as (pilot, _):
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


def toasts(app: MessengerApp) -> str:
    """The notifications on screen now, one per line."""
    return "\n".join(n.message for n in app._notifications)


def outbox_empty(app: MessengerApp) -> bool:
    """The server took every send, edit and reaction change of the app's outbox."""
    return app.store is not None and not app.store.outbox()


async def select_message(pilot: Pilot[None], app: MessengerApp, text: str) -> None:
    """Focus the message list and select the message with ``text`` (k from the newest)."""
    main = app.main
    assert main is not None
    main.view.focus()
    await pilot.press("end")
    for _ in range(50):
        chosen = main.view.selected_message()
        if chosen is not None and chosen.text == text:
            return
        await pilot.press("k")
    raise AssertionError(f"no message {text!r} to select")


async def send_and_start_editing(pilot: Pilot[None], app: MessengerApp, text: str) -> None:
    """Type and send ``text`` in general, wait until the server has it, select it and
    press e: the composer holds it to edit."""
    await pilot.press(*text, "enter")
    await until(pilot, lambda: app.store is not None and any(
        m.text == text and m.id for m in app.store.timeline(GENERAL_CHAT_ID)
    ), "alice's message sent")  # fmt: skip
    await select_message(pilot, app, text)
    await pilot.press("e")
    await until(
        pilot, lambda: app.main is not None and app.main.composer.text == text, "the text to edit"
    )


async def test_keys_on_a_selected_message_edit_reply_react_and_delete_it(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client
) -> None:
    """Issue 12: e edits your message, r replies with a quote, + reacts (again: takes it
    back), d deletes after a confirm -- on the server, as every client sees it."""
    app = make_app(server.url)
    async with signed_in(app) as (pilot, main):
        assert app.store is not None
        asked = await bob.send(GENERAL_CHAT_ID, "shall we ship?")
        await until(pilot, lambda: "shall we ship?" in screen_text(app), "bob's message")
        # e: edit your own message; the composer holds its text, Enter saves
        await send_and_start_editing(pilot, app, "helo")
        assert "Editing your message" in screen_text(app)
        await pilot.press("left", "l", "enter")
        await until(pilot, lambda: "hello (edited)" in screen_text(app), "the edit shown")
        assert app.screen is main, "an edit opens no output screen (it said EditedOut(...))"
        await until(pilot, lambda: outbox_empty(app), "the edit on the server")
        page = await bob.history(GENERAL_CHAT_ID)
        assert [m.text for m in page.messages][-1] == "hello"
        assert "Editing your message" not in screen_text(app)

        # e on someone else's message edits nothing: it is a letter, typed into the composer
        await select_message(pilot, app, "shall we ship?")
        await pilot.press("e")
        await until(pilot, lambda: main.composer.has_focus, "the composer focused")
        assert main.composer.text == "e" and main.composer.intent is None
        main.composer.clear()

        # r: reply, quoting it
        await select_message(pilot, app, "shall we ship?")
        await pilot.press("r")
        await until(pilot, lambda: "Replying to bob" in screen_text(app), "the reply bar")
        await pilot.press(*"yes!", "enter")
        await until(pilot, lambda: "↱ bob shall we ship?" in screen_text(app), "the quote")
        page = await bob.history(GENERAL_CHAT_ID)
        reply = page.messages[-1]
        assert reply.text == "yes!" and reply.reply_to is not None
        assert reply.reply_to.id == asked.id

        # +: the picker; typing finds the emoji, Enter reacts; again takes it back
        await select_message(pilot, app, "shall we ship?")
        await pilot.press("plus")
        await until(pilot, lambda: isinstance(app.screen, ReactionPicker), "the picker")
        await pilot.press(*"thumbs", "enter")
        await until(pilot, lambda: "👍 1" in screen_text(app), "the chip")
        await until(pilot, lambda: outbox_empty(app), "the reaction on the server")
        theirs = await bob.message(asked.id)
        assert [(r.emoji, r.users) for r in theirs.reactions] == [("👍", ["alice"])]
        await select_message(pilot, app, "shall we ship?")
        await pilot.press("plus")
        await until(pilot, lambda: isinstance(app.screen, ReactionPicker), "the picker")
        await pilot.press(*"thumbs", "enter")
        await until(pilot, lambda: "👍 1" not in screen_text(app), "the chip gone")
        await until(pilot, lambda: outbox_empty(app), "taken back on the server")
        assert not (await bob.message(asked.id)).reactions

        # d: asks first (Keep has the focus: a stray Enter deletes nothing)
        await select_message(pilot, app, "hello")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDelete), "the confirm")
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is main, "kept")
        assert "hello (edited)" in screen_text(app)
        await select_message(pilot, app, "hello")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDelete), "the confirm")
        await pilot.press(*"yes")  # typing on after a stray d deletes nothing
        assert isinstance(app.screen, ConfirmDelete)
        await pilot.press("delete")
        await until(pilot, lambda: "message deleted" in screen_text(app), "the tombstone")
        page = await bob.history(GENERAL_CHAT_ID)
        assert any(m.deleted_at is not None for m in page.messages)


async def test_esc_cancels_an_edit_and_gives_back_the_draft_and_a_right_click_offers_acts(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client
) -> None:
    app = make_app(server.url)
    async with signed_in(app) as (pilot, main):
        assert app.store is not None
        await pilot.press(*"first draft", "enter")
        await until(pilot, lambda: app.store is not None and any(
            m.id for m in app.store.timeline(GENERAL_CHAT_ID)
        ), "sent")  # fmt: skip
        await pilot.press(*"half typed")
        await select_message(pilot, app, "first draft")
        await pilot.press("e")
        await until(pilot, lambda: main.composer.text == "first draft", "the edit")
        await pilot.press("escape")
        await until(pilot, lambda: main.composer.intent is None, "the edit cancelled")
        assert main.composer.text == "half typed", "the draft comes back"
        assert "Editing" not in screen_text(app)
        # Enter on an edit that changed nothing ends it, as Esc does, and sends nothing
        await select_message(pilot, app, "first draft")
        await pilot.press("e")
        await until(pilot, lambda: main.composer.intent is not None, "the edit")
        await pilot.press("enter")
        await until(pilot, lambda: main.composer.intent is None, "the edit over")
        assert main.composer.text == "half typed" and "(edited)" not in screen_text(app)
        assert outbox_empty(app)

        # and after an edit is saved, the draft comes back too
        await select_message(pilot, app, "first draft")
        await pilot.press("e")
        await until(pilot, lambda: main.composer.text == "first draft", "the edit")
        await pilot.press("!", "enter")
        await until(pilot, lambda: "first draft! (edited)" in screen_text(app), "edited")
        assert main.composer.text == "half typed", "the draft is back after the edit"

        # a right click on the message: a menu of what can be done with it
        await until(pilot, lambda: main.view.layout_ is not None, "laid out")
        region = main.view.content_region
        await pilot.click(main.view, offset=(4, region.height - 1), button=3)
        await until(pilot, lambda: isinstance(app.screen, MessageMenu), "the menu")
        labels = str(app.screen.query_one(OptionList).get_option_at_index(0).prompt)
        assert "Reply" in labels
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is main, "the menu closed")

        # Up in the empty composer edits your last message here (SPEC, like Slack and
        # Element), not bob's newer one; Up again moves in the text, it recalls nothing
        await bob.send(GENERAL_CHAT_ID, "bob was here")
        await until(pilot, lambda: "bob was here" in screen_text(app), "bob's message")
        main.composer.focus()
        main.composer.clear()
        await pilot.press("up")
        await until(pilot, lambda: main.composer.text == "first draft!", "the last one to edit")
        assert "Editing your message" in screen_text(app)
        selected = main.view.selected_message()
        assert selected is not None and selected.text == "first draft!", "it is selected"
        await pilot.press("up")
        assert main.composer.text == "first draft!" and main.composer.intent is not None
        await pilot.press("end", *"?", "enter")
        await until(pilot, lambda: "first draft!? (edited)" in screen_text(app), "edited")
        await until(pilot, lambda: outbox_empty(app), "the edit on the server")
        assert (await bob.history(GENERAL_CHAT_ID)).messages[-2].text == "first draft!?"
        assert main.composer.text == ""
        # with text typed, Up still walks what was sent before
        await pilot.press(*"x", "up")
        assert main.composer.text == "first draft!?" and main.composer.intent is None


async def test_a_click_on_a_reaction_chip_adds_it_and_a_second_click_takes_it_back(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client
) -> None:
    app = make_app(server.url)
    async with signed_in(app) as (pilot, main):
        sent = await bob.send(GENERAL_CHAT_ID, "ship it")
        await bob.react(sent.id, "👍")
        await until(pilot, lambda: "👍 1" in screen_text(app), "bob's chip")

        async def click_chip() -> None:
            layout, view = main.view.layout_, main.view
            assert layout is not None and view.timeline is not None
            index = view.timeline.index_of(sent.id)
            assert index is not None
            lines = [line.plain for line in layout.lines(index)]
            row = next(i for i, line in enumerate(lines) if "👍" in line)
            gap = max(view.size.height - layout.total, 0)
            y = layout.line_of(index) + row - round(view.scroll_y) + gap
            column = lines[row].index("👍")
            assert layout.reaction_at(index, row, column) == "👍"
            await pilot.click(view, offset=(column + view.styles.padding.left, y))

        await click_chip()
        await until(pilot, lambda: "👍 2" in screen_text(app), "alice's click added hers")
        await until(pilot, lambda: outbox_empty(app), "hers on the server")
        assert {tuple(r.users) for r in (await bob.message(sent.id)).reactions} == {
            ("bob", "alice")
        }
        await click_chip()
        await until(pilot, lambda: "👍 1" in screen_text(app), "a second click took it back")
        await until(pilot, lambda: outbox_empty(app), "taken back on the server")
        assert [r.users for r in (await bob.message(sent.id)).reactions] == [["bob"]]


async def test_an_edit_and_a_reaction_made_offline_show_at_once_and_reach_the_server_later(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client
) -> None:
    """Issue 12: edits and reactions go through the outbox like sends -- shown at once
    with a "saving" mark, kept while the server is away (no error, no "Edited" toast),
    also through a restart of the app, sent when it is back; one the server refuses is
    undone and says why."""
    first = make_app(server.url)
    async with first.run_test(size=SIZE) as pilot:
        app = first
        await register_in_app(pilot, app, "alice")
        main = app.main
        assert main is not None and app.store is not None
        theirs = await bob.send(GENERAL_CHAT_ID, "ship it?")
        await pilot.press(*"helo", "enter")
        await until(pilot, lambda: app.store is not None and any(
            m.text == "helo" and m.id for m in app.store.timeline(GENERAL_CHAT_ID)
        ), "alice's message sent")  # fmt: skip
        server.stop()
        await until(pilot, lambda: app.connection.state != "connected", "the drop noticed")

        await select_message(pilot, app, "helo")
        await pilot.press("e")
        await until(pilot, lambda: main.composer.text == "helo", "the text to edit")
        await pilot.press("left", "l", "enter")
        await until(pilot, lambda: "hello (edited)" in screen_text(app), "shown at once")
        await select_message(pilot, app, "ship it?")
        await pilot.press("plus")
        await until(pilot, lambda: isinstance(app.screen, ReactionPicker), "the picker")
        await pilot.press(*"thumbs", "enter")
        await until(pilot, lambda: "👍 1" in screen_text(app), "the chip at once")
        assert not outbox_empty(app), "both wait in the outbox"
        text = screen_text(app)
        assert "hello (edited)  ⋯ saving" in text and "ship it?  ⋯ saving" in text, text

    app = make_app(server.url)  # the same client home, still offline: both still show
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main is not None and app.screen is app.main, "resumed")
        await until(pilot, lambda: "hello (edited)  ⋯ saving" in screen_text(app), "the edit")
        assert "ship it?  ⋯ saving" in screen_text(app) and "👍 1" in screen_text(app)

        server.start()
        await until(pilot, lambda: outbox_empty(app), "both on the server")
        mine = next(m for m in (await bob.history(GENERAL_CHAT_ID)).messages if m.author == "alice")
        assert mine.text == "hello" and mine.edited_at is not None
        assert [(r.emoji, r.users) for r in (await bob.message(theirs.id)).reactions] == [
            ("👍", ["alice"])
        ]
        await until(pilot, lambda: "saving" not in screen_text(app), "the marks gone")
        assert "hello (edited)" in screen_text(app) and "👍 1" in screen_text(app)
        assert "Edited" not in toasts(app) and "Not" not in toasts(app), toasts(app)

        # refused (bob deleted his message meanwhile): the chip goes, a toast says why
        await bob.delete_message(theirs.id)
        assert app.runner is not None
        app.run_command(slash.ParsedCommand("react", {"message_id": theirs.id, "emoji": "🎉"}), 1)
        await until(pilot, lambda: "Reaction not added" in toasts(app), "the refusal")
        await until(pilot, lambda: "🎉" not in screen_text(app), "undone")


async def test_a_refused_edit_reply_or_comment_comes_back_as_it_was_typed(
    server_factory: Callable[..., ServerProcess], make_app: Callable[..., MessengerApp]
) -> None:
    """Issue 12: editing is off on this server; the refused edit's text comes back in the
    composer as an edit of the same message, with why above it: Enter tries the edit
    again (it posts nothing new), Esc gives up. A refused reply (too long here) comes
    back still replying, a refused comment in the thread's composer (found in tmux: both
    came back as a new message of the chat)."""
    server = server_factory(args=["--edit-window", "0", "--max-message-text", "20"])
    app = make_app(server.url)
    async with signed_in(app) as (pilot, main):
        assert app.store is not None
        await send_and_start_editing(pilot, app, "helo")
        await pilot.press("left", "l", "enter")
        await until(pilot, lambda: "Not edited" in toasts(app), "the refusal")
        await until(pilot, lambda: main.composer.text == "hello", "the text given back")
        intent = main.composer.intent
        assert intent is not None and intent.act == "edit" and intent.message.text == "helo"
        await until(pilot, lambda: "⚠ Edit not saved (Enter tries again" in screen_text(app), "")
        assert "turned off on this server" in str(main.intent_bar.render())
        assert "helo" in screen_text(app) and "hello" not in screen_text(app).split("⚠")[0]

        await pilot.press("enter")  # again: refused again, nothing new is posted
        await until(pilot, lambda: outbox_empty(app) and main.composer.intent is not None, "again")
        assert app.client is not None
        page = await app.client.history(GENERAL_CHAT_ID)
        assert [m.text for m in page.messages] == ["helo"]
        await pilot.press("escape")
        await until(pilot, lambda: main.composer.intent is None, "given up")
        assert main.composer.text == "" and "⚠" not in screen_text(app)

        helo = page.messages[0]
        long = "a reply well over twenty"
        await select_message(pilot, app, "helo")
        await pilot.press("r", *long, "enter")
        await until(pilot, lambda: "Not sent" in toasts(app), "the reply refused")
        await until(pilot, lambda: main.composer.text == long, "the reply given back")
        intent = main.composer.intent
        assert intent is not None and intent.act == "reply" and intent.message.id == helo.id
        main.composer.clear()
        await pilot.press(*"short reply", "enter")
        await until(pilot, lambda: outbox_empty(app) and main.composer.intent is None, "sent")
        page = await app.client.history(GENERAL_CHAT_ID)
        last = page.messages[-1]
        assert last.text == "short reply" and last.reply_to is not None
        assert last.reply_to.id == helo.id

        await select_message(pilot, app, "helo")
        await pilot.press("ctrl+t")
        await until(pilot, lambda: main.thread_composer.has_focus, "the thread panel")
        app.clear_notifications()
        await pilot.press(*"a comment over twenty", "enter")
        await until(pilot, lambda: "Not sent" in toasts(app), "the comment refused")
        await until(pilot, lambda: main.thread_composer.text == "a comment over twenty", "back")
        assert main.composer.text == ""
