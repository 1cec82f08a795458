"""Long histories in the TUI against the real server (issue 9): older pages always
load, Home jumps to the first message, a chat opens at its "new messages" divider."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from messenger_client import Client
from messenger_client.tui.app import MessengerApp
from messenger_protocol import Chat
from tests.support.server import ServerProcess
from tests.tui.conftest import until
from tests.tui.test_app import SIZE

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
    """Item 2: on a new device (empty cache) of a new member, PageUp keeps loading older
    pages past the newest 50 until the chat's first message."""
    bob, chat = await group_with_history(server, 260)
    app = make_app(server.url)
    app.config.login, app.config.password = "alice", "secret12"
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
