"""Pilot tests of the thread panel (comments), against the real server process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from messenger_client import Client
from messenger_client.tui.app import MessengerApp
from messenger_protocol import GENERAL_CHAT_ID
from tests.support.server import ServerProcess
from tests.tui.conftest import (
    other_user,
    screen_text,
    shown_texts,
    signed_in,
    until,
    until_true,
)
from tests.tui.test_annotations import select_message


def notes(app: MessengerApp) -> str:
    """Every toast the app shows, as one text."""
    return "\n".join(f"{n.title}: {n.message}" for n in app._notifications)


def row_of(app: MessengerApp, text: str) -> tuple[int, int]:
    """Screen (x, y) of the first place ``text`` shows."""
    for y, strip in enumerate(app.screen._compositor.render_strips()):
        x = strip.text.find(text)
        if x >= 0:
            return x, y
    raise AssertionError(f"{text!r} is not on the screen")


async def test_thread_opens_by_double_click_and_by_key_and_stays_read_live(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    bob = await other_user(server, "bob")
    try:
        async with signed_in(app, notifications=True) as (pilot, _):
            root = await bob.send(GENERAL_CHAT_ID, "lunch at noon?")
            await bob.send(GENERAL_CHAT_ID, "or later")
            await until(pilot, lambda: "or later" in shown_texts(app, GENERAL_CHAT_ID))
            main = app.main
            assert main is not None and app.client is not None and app.store is not None
            await until(pilot, lambda: "lunch at noon?" in screen_text(app), "on screen")

            # A double click on the message opens its thread, with the composer ready.
            await pilot.click(offset=row_of(app, "lunch at noon?"), times=2)
            await until(pilot, lambda: main.thread_root is not None, "the thread panel")
            assert main.thread_root is not None and main.thread_root.id == root.id
            assert main.thread_composer.has_focus
            await pilot.press(*"yes, noon", "enter")
            await until(pilot, lambda: "↳ 1 comment" in screen_text(app), "count in the chat")

            # Up in the empty thread composer edits alice's comment and selects it: who has
            # read it shows under the thread, and follows bob's thread read cursor live
            store = app.store
            await until(pilot, lambda: all(m.id for m in store.threads[root.id]), "sent")
            await pilot.press("up")
            await until(pilot, lambda: main.thread_composer.text == "yes, noon", "the edit")
            await until(pilot, lambda: main.thread_seen_line.display, "the seen-by line")
            assert "Not seen yet" in screen_text(app) and not main.seen_line.display
            await pilot.press("escape")  # cancels the edit; the comment stays selected
            await until(pilot, lambda: main.thread_composer.intent is None, "edit cancelled")
            comment = store.threads[root.id][-1]
            await bob.mark_thread_read(root.id, comment.id)
            await until(pilot, lambda: "✓ Seen by bob" in screen_text(app), "seen by bob, live")

            # A comment from bob while the panel shows: seen live, and read on the server.
            await bob.comment(root.id, "great, see you")
            thread = app.store.threads[root.id]
            await until(pilot, lambda: "great, see you" in [m.text for m in thread], "live")
            await until(pilot, lambda: "great, see you" in screen_text(app), "in the panel")
            assert "commented" not in notes(app)  # no toast for the thread in view

            async def unread() -> int:
                return (await app.client.thread(root.id)).unread  # type: ignore[union-attr]

            async def read_on_the_server() -> bool:
                return await unread() == 0

            await until_true(pilot, read_on_the_server, "the thread read on the server")

            # Esc closes; Ctrl+T on a selected message opens it again.
            await pilot.press("escape")
            assert main.thread_root is None and not main.thread_panel.display
            main.view.focus()
            await pilot.press("k", "k")
            await pilot.press("ctrl+t")
            await until(pilot, lambda: main.thread_root is not None, "reopened by key")
            assert main.thread_root is not None and main.thread_root.id == root.id
            await until(pilot, lambda: "2 comments" in screen_text(app), "title count")
    finally:
        await bob.close()


async def test_comment_in_a_thread_not_open_is_a_toast_a_count_and_a_palette_entry(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    bob = await other_user(server, "bob")
    try:
        async with signed_in(app, notifications=True) as (pilot, _):
            assert app.client is not None
            root = await app.client.send(GENERAL_CHAT_ID, "who reviews my patch?")
            await until(pilot, lambda: "who reviews my patch?" in screen_text(app), "root")
            await bob.comment(root.id, "I will")
            await until(pilot, lambda: "bob commented: I will" in notes(app), "the toast")
            await until(pilot, lambda: "↳ 1 comment" in screen_text(app), "the count")
            assert (await app.client.thread(root.id)).unread == 1
            # The palette knows which threads have news, and opens the newest.
            assert app.threads.unread().keys() == {root.id}
            await pilot.press("ctrl+p")
            await pilot.press(*"Threads with new")
            await until(pilot, lambda: "1 new in 1 thread" in screen_text(app), "the entry")
            await pilot.press("enter")
            main = app.main
            assert main is not None
            await until(pilot, lambda: main.thread_root is not None, "the thread")
            assert main.thread_root is not None and main.thread_root.id == root.id
            await until(pilot, lambda: "I will" in screen_text(app), "bob's comment in the panel")
            await until(pilot, lambda: not app.threads.unread(), "nothing new any more")

            async def read_there() -> bool:
                assert app.client is not None
                return (await app.client.thread(root.id)).unread == 0

            await until_true(pilot, read_there, "the thread read on the server")

            # Ctrl+T from the composer, nothing selected: the newest message's thread.
            await pilot.press("escape")
            assert main.thread_root is None and main.composer.has_focus
            await bob.send(GENERAL_CHAT_ID, "new topic")
            await until(pilot, lambda: "new topic" in screen_text(app), "the new message")
            await pilot.press("ctrl+t")
            await until(pilot, lambda: main.thread_root is not None, "the newest thread")
            assert main.thread_root is not None and main.thread_root.text == "new topic"
    finally:
        await bob.close()


async def test_a_thread_read_on_another_client_is_no_longer_new_here(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    bob = await other_user(server, "bob")
    phone = Client(server.url)
    try:
        async with signed_in(app, notifications=True) as (pilot, _):
            await phone.login("alice", "secret12")
            root = await phone.send(GENERAL_CHAT_ID, "release today?")
            comment = await bob.comment(root.id, "after lunch")
            await until(pilot, lambda: root.id in app.threads.unread(), "new in the thread")
            await phone.mark_thread_read(root.id, comment.id)
            await until(pilot, lambda: not app.threads.unread(), "read on the phone")
    finally:
        await bob.close()
        await phone.close()


async def test_opening_a_thread_with_news_from_another_chat_switches_to_that_chat(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    app = make_app(server.url)
    bob = await other_user(server, "bob")
    try:
        async with signed_in(app, notifications=True) as (pilot, _):
            assert app.client is not None and app.main is not None
            crew = await app.client.create_chat("crew")
            await app.client.invite(crew.id, "bob")
            root = await app.client.send(crew.id, "retro notes")
            await bob.comment(root.id, "added mine")
            await until(pilot, lambda: root.id in app.threads.unread(), "news in the thread")
            assert app.main.current_chat == GENERAL_CHAT_ID
            await pilot.press("ctrl+p", *"Threads with new")
            await until(pilot, lambda: "1 new in 1 thread" in screen_text(app), "the entry")
            await pilot.press("enter")
            main = app.main
            await until(pilot, lambda: main.thread_root is not None, "the thread")
            assert main.current_chat == crew.id and "≡ crew" in screen_text(app)
            await until(pilot, lambda: "added mine" in screen_text(app), "the comment")
    finally:
        await bob.close()


async def test_seen_by_in_the_chat_and_in_the_thread_both_follow_receipts_at_once(
    server: ServerProcess, make_app: Callable[..., MessengerApp], bob: Client
) -> None:
    """Issue 12: the chat's "seen by" and the thread panel's were asked in one exclusive
    worker group, so a receipt for one cancelled the question about the other; bob
    reading both at once now fills both lines."""
    app = make_app(server.url)
    async with signed_in(app) as (pilot, main):
        store = app.store
        assert store is not None and app.client is not None
        root = await bob.send(GENERAL_CHAT_ID, "who brings cake?")
        comment = await app.client.comment(root.id, "me, chocolate")
        await until(pilot, lambda: "who brings cake?" in screen_text(app), "bob's message")
        await pilot.press(*"see you at four", "enter")
        await until(pilot, lambda: any(
            m.text == "see you at four" and m.id for m in store.timeline(GENERAL_CHAT_ID)
        ), "alice's message sent")  # fmt: skip
        mine = next(m for m in store.timeline(GENERAL_CHAT_ID) if m.text == "see you at four")

        await select_message(pilot, app, "who brings cake?")
        await pilot.press("ctrl+t")
        await until(pilot, lambda: "me, chocolate" in screen_text(app), "the thread panel")
        main.thread_view.focus()
        await pilot.press("end")  # alice's comment
        await until(pilot, lambda: main.thread_seen_line.display, "the thread's line")
        await select_message(pilot, app, "see you at four")
        await until(pilot, lambda: main.seen_line.display, "the chat's line")
        assert screen_text(app).count("Not seen yet") == 2

        await asyncio.gather(
            bob.mark_read(GENERAL_CHAT_ID, mine.id), bob.mark_thread_read(root.id, comment.id)
        )
        await until(pilot, lambda: screen_text(app).count("✓ Seen by bob") == 2, "both lines")
        assert "✓ Seen by bob" in str(main.seen_line.render())
        assert "✓ Seen by bob" in str(main.thread_seen_line.render())
