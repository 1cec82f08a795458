"""Long histories in the TUI against the real server (issue 9): older pages always
load, Home jumps to the first message, a chat opens at its "new messages" divider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from messenger_client import Client
from messenger_client.tui.app import MessengerApp
from messenger_protocol import GENERAL_CHAT_ID, Chat
from messenger_server.storage import SqliteStore, SqliteTx
from tests.support.server import ServerProcess
from tests.tui.conftest import SIZE, screen_text, shown_texts, signed_in, until

PARALLEL = 8
"""Sends in flight at once while a test fills a chat."""


async def fill(client: Client, chat_id: int, texts: list[str]) -> None:
    """Post ``texts`` to a chat, in order of their ids within each batch."""
    for start in range(0, len(texts), PARALLEL):
        await asyncio.gather(*(client.send(chat_id, t) for t in texts[start : start + PARALLEL]))


async def group_with_history(server: ServerProcess, count: int) -> tuple[Client, Chat]:
    """Bob's group "big" with ``count`` messages; alice is invited (a new member)."""
    bob = Client(server.url)
    await bob.register("bob", "secret12")
    alice = Client(server.url)
    await alice.register("alice", "secret12")
    await alice.close()
    chat = await bob.create_chat("big")
    await bob.invite(chat.id, "alice")
    await fill(bob, chat.id, [f"message {i}" for i in range(count)])
    return bob, chat


async def test_older_pages_load_on_a_new_device(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Item 2: on a new device (empty cache), PageUp keeps loading older pages past the
    newest 50 until the chat's first message (it used to stop at the 50th-newest)."""
    bob, chat = await group_with_history(server, 260)
    app = make_app(server.url, "bob")
    app.config.login, app.config.password = "bob", "secret12"
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.connection.state == "connected", "logged in")
            await until(pilot, lambda: app.store and chat.id in app.store.chats, "the group")
            app.open_chat(chat.id)
            store = app.store
            assert store is not None
            timeline = store.timeline(chat.id)
            await until(pilot, lambda: len(store.timeline(chat.id)) >= 50, "the newest page")
            first = (await bob.history(chat.id, after=0, limit=1)).messages[0]
            for _ in range(400):
                if store.timeline(chat.id).oldest_id == first.id:
                    break
                await pilot.press("pageup")
            ids = [m.id for m in store.timeline(chat.id)]
            assert ids[0] == first.id and len(ids) == 260 == len(set(ids))
            assert timeline is store.timeline(chat.id)
    finally:
        await bob.close()


async def _server_unread(client: Client, chat_id: int) -> int:
    chats = {c.id: c for c in (await client.chats()).chats}
    return chats[chat_id].unread


async def test_a_chat_opens_at_the_new_messages_divider_and_reads_as_shown(
    server_factory: Callable[..., ServerProcess], make_app: Callable[..., MessengerApp]
) -> None:
    """Item 1 (TUI): 25 messages sent while the user was away: the app shows a "new
    messages" line above the first of them and opens there; connecting marks nothing
    read beyond what is on screen; End jumps to the newest, and then all are read."""
    server = server_factory(args=["--rate-limit-messages", "100"])
    bob = Client(server.url)
    await bob.register("bob", "secret12")
    for i in range(5):  # one by one: "before 4" is the newest
        await bob.send(GENERAL_CHAT_ID, f"before {i}")
    first = make_app(server.url)
    async with signed_in(first) as (pilot, _):
        await until(pilot, lambda: "before 4" in shown_texts(first, GENERAL_CHAT_ID), "history")
    token = first.config.tokens.load(first.server)
    assert token is not None
    alice = Client(server.url, token[1])  # to ask the server, as /unread would
    try:
        for i in range(25):  # one by one: ids in text order
            await bob.send(GENERAL_CHAT_ID, f"away {i}")
        assert await _server_unread(alice, GENERAL_CHAT_ID) == 25
        app = make_app(server.url)  # the same client home: resumes, replays what it missed
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await until(pilot, lambda: "new messages" in screen_text(app), "the divider")
            await until(pilot, lambda: "away 0" in screen_text(app), "the first unread")
            lines = screen_text(app).splitlines()
            divider = next(i for i, line in enumerate(lines) if "new messages" in line)
            below = "\n".join(lines[divider + 1 : divider + 4])
            assert "bob" in below and "away 0" in below, "the first unread sits under it"
            assert "before 4" in lines[divider - 1], "a line of what was read stays above"
            assert "away 24" not in screen_text(app), "it opens at the divider, not the end"
            await until(pilot, lambda: "new messages  (End" in screen_text(app), "the badge")
            # What is on screen is read; the rest is not, on the server too.
            store = app.store
            assert store is not None
            await until(pilot, lambda: 0 < store.chats[GENERAL_CHAT_ID].unread < 25, "badge")
            left = store.chats[GENERAL_CHAT_ID].unread
            for _ in range(200):
                if await _server_unread(alice, GENERAL_CHAT_ID) == left:
                    break
                await pilot.pause(0.02)
            assert await _server_unread(alice, GENERAL_CHAT_ID) == left
            await pilot.press(*"/unread", "enter")
            said = f"{left} unread: general {left}"
            await until(pilot, lambda: any(n.message == said for n in app._notifications), said)
            if app.screen is not app.main:  # the unread messages themselves, listed
                await pilot.press("escape")
                await until(pilot, lambda: app.screen is app.main, "back to the chat")
            # End jumps to the newest: now everything is read.
            assert app.main is not None
            app.main.view.focus()
            await pilot.press("end")
            await until(pilot, lambda: "away 24" in screen_text(app), "the newest")
            await until(pilot, lambda: store.chats[GENERAL_CHAT_ID].unread == 0, "all read")
            for _ in range(200):
                if await _server_unread(alice, GENERAL_CHAT_ID) == 0:
                    break
                await pilot.pause(0.02)
            assert await _server_unread(alice, GENERAL_CHAT_ID) == 0
    finally:
        await alice.close()
        await bob.close()


LONG_CHAT = 20_000
"""Messages in the chat that Home must cross in one jump."""


async def bulk_fill(server: ServerProcess, chat_id: int, author: str, count: int) -> None:
    """Store ``count`` messages in a chat straight through the server's storage layer
    (one transaction, well under a second) while the server is stopped, then start it."""
    server.stop()
    store = SqliteStore.in_dir(server.data_dir)
    await store.open()
    try:

        def unit(tx: SqliteTx) -> None:
            user = tx.user_by_login(author)
            assert user is not None
            # within the last minute: older ones would have disappeared already (F8)
            start = time.time() - 60
            for i in range(count):
                at = start + 60 * i / count
                tx.insert_message(chat_id, user.id, f"old {i}", at, None, None, None)

        await store.write(unit)
    finally:
        await store.close()
    server.start()


async def test_home_jumps_to_the_first_message_of_a_20000_message_chat(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Item 2: Home reaches the first of 20,000 messages with one request (not a page
    per key press), End goes back to the newest; scrolling down from the first page
    loads the next pages."""
    bob, chat = await group_with_history(server, 0)
    await bob.close()
    await bulk_fill(server, chat.id, "bob", LONG_CHAT)
    app = make_app(server.url, "bob")
    app.config.login, app.config.password = "bob", "secret12"
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.connection.state == "connected", "logged in")
        await until(pilot, lambda: app.store and chat.id in app.store.chats, "the group")
        app.open_chat(chat.id)
        store, main = app.store, app.main
        assert store is not None and main is not None
        await until(pilot, lambda: "old 19999" in screen_text(app), "the newest")
        main.view.focus()
        await pilot.press("home")
        await until(pilot, lambda: "old 0 " in screen_text(app), "the first message")
        assert store.timeline(chat.id)[0].text == "old 0"
        assert len(store.timeline(chat.id)) <= 400, "a jump, not every page on the way"
        # Scrolling down from there loads what follows.
        for _ in range(40):
            await pilot.press("pagedown")
        await until(pilot, lambda: len(store.timeline(chat.id)) > 200, "the next page")
        texts = [m.text for m in store.timeline(chat.id)]
        assert texts == [f"old {i}" for i in range(len(texts))], "no gap, no duplicate"
        await pilot.press("end")
        await until(pilot, lambda: "old 19999" in screen_text(app), "the newest again")
        assert main.view.pinned


async def test_the_new_messages_badge_hides_no_message_that_counts_as_read(
    server_factory: Callable[..., ServerProcess], make_app: Callable[..., MessengerApp]
) -> None:
    """Item 4 leftover (issue 9 item 1): the "N new messages" badge takes a line of the
    message view when it appears; the message on that line was counted as read although
    it was never on screen. Read is exactly what the screen shows above the badge."""
    server = server_factory(args=["--rate-limit-messages", "100"])
    bob = Client(server.url)
    await bob.register("bob", "secret12")
    await bob.send(GENERAL_CHAT_ID, "before")
    first = make_app(server.url)
    async with signed_in(first) as (pilot, _):
        await until(pilot, lambda: "before" in shown_texts(first, GENERAL_CHAT_ID), "history")
    token = first.config.tokens.load(first.server)
    assert token is not None
    alice = Client(server.url, token[1])
    try:
        for i in range(40):  # one by one: ids in text order
            await bob.send(GENERAL_CHAT_ID, f"away {i}")
        app = make_app(server.url)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "new messages  (End" in screen_text(app), "the badge")
            store = app.store
            assert store is not None
            await until(pilot, lambda: store.chats[GENERAL_CHAT_ID].unread < 40, "some read")
            await pilot.pause()
            shown = [
                int(word)
                for line in screen_text(app).splitlines()
                for previous, word in zip(line.split(), line.split()[1:], strict=False)
                if previous == "away" and word.isdigit()
            ]
            newest_on_screen = max(shown)
            assert 0 < newest_on_screen < 39
            unread = 39 - newest_on_screen
            assert store.chats[GENERAL_CHAT_ID].unread == unread
            for _ in range(200):
                if await _server_unread(alice, GENERAL_CHAT_ID) == unread:
                    break
                await pilot.pause(0.02)
            assert await _server_unread(alice, GENERAL_CHAT_ID) == unread
    finally:
        await alice.close()
        await bob.close()
