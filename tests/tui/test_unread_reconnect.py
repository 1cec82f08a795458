"""Unread messages after a reconnect in the TUI (issue 9 item 1), against the real server.

Whatever comes first after connecting -- the replay of the events missed while away or
the server's chat list with its read cursors -- the chat opens at a "new messages"
divider above the first missed message, and nothing below the screen counts as read,
after a restart of the app (resumed from its saved token) and after a drop of the live
event stream alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Literal

import httpx
import pytest

from messenger_client import Client
from messenger_client.events import EventStream, StreamItem
from messenger_client.tui.app import MessengerApp
from messenger_protocol import GENERAL_CHAT_ID, ChatList, MessageCreated
from tests.support.server import ServerProcess
from tests.tui.conftest import (
    SIZE,
    screen_text,
    shown_texts,
    signed_in,
    until,
    until_true,
)

MISSED = 40
"""Messages bob posts while alice is away: more than a screenful."""

Order = Literal["replay first", "chat list first"]


class Ordering:
    """Makes one of the two answers after a connect wait for the other, so each order
    is tested on purpose rather than by chance."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, order: Order | None = None) -> None:
        self.order = order
        self.chats_answered = asyncio.Event()
        """The app's client got the server's chat list since :meth:`arm`."""
        self.replayed = asyncio.Event()
        """The stream yielded the last missed message since :meth:`arm`."""
        self.last_text = ""
        self.app: MessengerApp | None = None
        """Only this app's client is held back (not the test's own clients)."""
        chats, anext = Client.chats, EventStream.__anext__

        async def chats_in_order(client: Client) -> ChatList:
            mine = self.app is not None and client is self.app.client and bool(self.last_text)
            if self.order == "replay first" and mine:
                await self.replayed.wait()
            answer = await chats(client)
            if mine:
                self.chats_answered.set()
            return answer

        async def events_in_order(stream: EventStream) -> StreamItem:
            item = await anext(stream)
            if isinstance(item, MessageCreated) and self.last_text:
                if self.order == "chat list first":
                    await self.chats_answered.wait()
                if item.message.text == self.last_text:
                    self.replayed.set()
            return item

        monkeypatch.setattr(Client, "chats", chats_in_order)
        monkeypatch.setattr(EventStream, "__anext__", events_in_order)

    def arm(self, last_text: str) -> None:
        """From now on, the next connect answers in this order; ``last_text`` is the
        text of the last message missed."""
        self.last_text = last_text
        self.chats_answered.clear()
        self.replayed.clear()


class StreamSwitch:
    """Takes the app's live event stream down (its connection fails) and back up."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.up = True
        request = Client._stream_request

        def switched(
            client: Client, last_event_id: int | None, read_timeout: float
        ) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
            @contextlib.asynccontextmanager
            async def connect() -> AsyncIterator[httpx.Response]:
                if not self.up:
                    raise httpx.ConnectError("the network is down (test)")
                async with request(client, last_event_id, read_timeout) as response:
                    yield response

            return connect()

        monkeypatch.setattr(Client, "_stream_request", switched)


def _missed(count: int = MISSED) -> list[str]:
    return [f"away {i}" for i in range(count)]


async def _server_unread(client: Client) -> int:
    chats = {c.id: c for c in (await client.chats()).chats}
    return chats[GENERAL_CHAT_ID].unread


def _away_on_screen(app: MessengerApp) -> list[int]:
    """Numbers of the "away N" messages on screen."""
    return [
        int(word)
        for line in screen_text(app).splitlines()
        for previous, word in zip(line.split(), line.split()[1:], strict=False)
        if previous == "away" and word.isdigit()
    ]


async def _opens_at_the_divider_and_reads_as_shown(
    app: MessengerApp, pilot: object, alice: Client
) -> None:
    """The shared checks: divider above "away 0", the rest unread on the server until
    End, then all read."""
    from textual.pilot import Pilot

    assert isinstance(pilot, Pilot)
    store = app.store
    assert store is not None and app.main is not None
    await until(pilot, lambda: f"away {MISSED - 1}" in shown_texts(app, 1), "every message")
    await until(pilot, lambda: "new messages" in screen_text(app), "the divider")
    await until(pilot, lambda: "away 0" in screen_text(app), "the first missed message")
    lines = screen_text(app).splitlines()
    divider = next(i for i, line in enumerate(lines) if "new messages" in line)
    below = "\n".join(lines[divider + 1 : divider + 4])
    assert "away 0" in below, "the first missed message sits under the divider"
    assert f"away {MISSED - 1}" not in screen_text(app), "it opens at the divider"

    # Read is what the screen shows, no more: on the server too, and more than 0 left.
    def counted_as_shown() -> bool:
        shown = _away_on_screen(app)
        return bool(shown) and store.chats[GENERAL_CHAT_ID].unread == MISSED - 1 - max(shown)

    await until(pilot, counted_as_shown, "the badge counts what is below the screen")
    newest_on_screen = max(_away_on_screen(app))
    left = MISSED - 1 - newest_on_screen
    assert left > 0, "the messages below the screen are not read"

    async def server_says_left() -> bool:
        return await _server_unread(alice) == left

    await until_true(pilot, server_says_left, f"{left} unread on the server")
    assert max(_away_on_screen(app)) == newest_on_screen, "the view stayed at the divider"
    assert await _server_unread(alice) == left
    # End: the newest, and now all are read.
    app.main.view.focus()
    await pilot.press("end")
    await until(pilot, lambda: f"away {MISSED - 1}" in screen_text(app), "the newest")

    async def server_says_none() -> bool:
        return await _server_unread(alice) == 0

    await until_true(pilot, server_says_none, "all read on the server")
    assert store.chats[GENERAL_CHAT_ID].unread == 0


ORDERS: list[Order] = ["replay first", "chat list first"]


@pytest.mark.parametrize("order", ORDERS)
async def test_resumed_app_opens_general_at_the_divider_of_what_was_missed(
    server_factory: Callable[..., ServerProcess],
    make_app: Callable[..., MessengerApp],
    monkeypatch: pytest.MonkeyPatch,
    order: Order,
) -> None:
    """Issue 9 item 1: alice's app resumes from its saved token after bob posted more
    than a screenful to general; the missed messages are replayed to it. Whichever
    comes first, the replay or the chat list, general opens at a "new messages" divider
    above the first missed message, the server still counts the ones below the screen
    as unread until she scrolls down, and End reads them all."""
    server = server_factory(args=["--rate-limit-messages", "200"])
    ordering = Ordering(monkeypatch, order)
    bob = Client(server.url)
    await bob.register("bob", "secret12")
    for i in range(3):
        await bob.send(GENERAL_CHAT_ID, f"before {i}")
    first = make_app(server.url)
    async with signed_in(first) as (pilot, _):
        await until(pilot, lambda: "before 2" in screen_text(first), "history")
    token = first.config.tokens.load(first.server)
    assert token is not None
    alice = Client(server.url, token[1])  # to ask the server, as /unread would
    try:
        for text in _missed():  # one by one: ids in text order
            await bob.send(GENERAL_CHAT_ID, text)
        assert await _server_unread(alice) == MISSED
        ordering.arm(f"away {MISSED - 1}")
        app = ordering.app = make_app(server.url)  # the same client home: resumes, replays
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.connection.state == "connected", "connected")
            await until(pilot, ordering.chats_answered.is_set, "the chat list")
            await until(pilot, ordering.replayed.is_set, "the replay")
            await _opens_at_the_divider_and_reads_as_shown(app, pilot, alice)
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.parametrize("order", ORDERS)
async def test_a_dropped_live_stream_opens_general_at_the_divider_of_what_was_missed(
    server_factory: Callable[..., ServerProcess],
    make_app: Callable[..., MessengerApp],
    monkeypatch: pytest.MonkeyPatch,
    order: Order,
) -> None:
    """Issue 9 item 1: alice reads general at its newest message; her live stream drops
    (the app keeps running) and bob posts more than a screenful; when the stream is back
    the missed messages are replayed. General shows the "new messages" divider above the
    first of them instead of following to the newest, and the server counts the ones
    below the screen as unread until she scrolls down."""
    server = server_factory(args=["--rate-limit-messages", "200"])
    ordering = Ordering(monkeypatch)
    switch = StreamSwitch(monkeypatch)
    bob = Client(server.url)
    await bob.register("bob", "secret12")
    await bob.send(GENERAL_CHAT_ID, "before 0")
    app = ordering.app = make_app(server.url)
    alice: Client | None = None
    try:
        async with signed_in(app) as (pilot, _):
            await bob.send(GENERAL_CHAT_ID, "before 1")  # read live, at the bottom
            await until(pilot, lambda: "before 1" in screen_text(app), "a live message")
            assert app.client is not None and app.client.token is not None
            alice = Client(server.url, app.client.token)

            async def all_read() -> bool:
                assert alice is not None
                return await _server_unread(alice) == 0

            await until_true(pilot, all_read, "read up to the live message")
            switch.up = False
            ordering.order = order
            server.restart()  # drops the stream; reconnects fail while the switch is down
            await until(pilot, lambda: app.connection.state != "connected", "offline")
            for text in _missed():
                await bob.send(GENERAL_CHAT_ID, text)
            assert await _server_unread(alice) == MISSED
            ordering.arm(f"away {MISSED - 1}")
            switch.up = True
            await until(pilot, lambda: app.connection.state == "connected", "back online")
            await until(pilot, ordering.replayed.is_set, "the replay")
            await _opens_at_the_divider_and_reads_as_shown(app, pilot, alice)
    finally:
        if alice is not None:
            await alice.close()
        await bob.close()
