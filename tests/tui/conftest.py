"""Fixtures of the TUI tests: an app wired to a temp client home, and waiting helpers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual import events
from textual.dom import DOMNode
from textual.keys import _character_to_key
from textual.pilot import Pilot
from textual.widgets import Input

from messenger_client.api import Client
from messenger_client.config import ClientConfig, Dirs
from messenger_client.tui.app import MessengerApp, TuiOptions
from messenger_client.tui.screens.login import LoginScreen
from messenger_client.tui.screens.main import MainScreen
from messenger_client.tui.timeline import utc
from tests.support.server import ServerProcess

WAIT = 60.0
"""Longest wait for something the app should do: a deadline, never a sleep, generous so a
loaded 2-core machine still passes (waiting ends as soon as the condition holds)."""


SIZE = (110, 32)
"""The terminal size of the app's tests."""


async def register_in_app(pilot: Pilot[None], app: MessengerApp, login: str) -> None:
    """Fill the login screen and press Register; wait for the live connection."""
    await _through_login_screen(pilot, app, login, "secret12", "#do-register")


async def log_in_app(
    pilot: Pilot[None], app: MessengerApp, login: str, password: str = "secret12"
) -> None:
    """Fill the login screen and press Log in; wait for the live connection."""
    await _through_login_screen(pilot, app, login, password, "#do-login")


async def _through_login_screen(
    pilot: Pilot[None], app: MessengerApp, login: str, password: str, button: str
) -> None:
    await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
    app.screen.query_one("#login", Input).value = login
    app.screen.query_one("#password", Input).value = password
    await click(pilot, button)
    await until(pilot, lambda: app.connection.state == "connected", "connected")


def shown_texts(app: MessengerApp, chat_id: int) -> list[str]:
    """Texts of the messages the app holds for a chat (confirmed and pending)."""
    assert app.store is not None
    return [m.text for m in app.store.timeline(chat_id)]


def screen_text(app: MessengerApp) -> str:
    """What the terminal shows, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@asynccontextmanager
async def signed_in(
    app: MessengerApp, login: str = "alice", **run: object
) -> AsyncIterator[tuple[Pilot[None], MainScreen]]:
    """Run ``app`` at :data:`SIZE` (``run``: more arguments of ``run_test``), register
    ``login`` through the login screen and wait for the live connection: the set-up of
    most tests. Yields the pilot and the main screen."""
    async with app.run_test(size=SIZE, **run) as pilot:  # type: ignore[arg-type]
        await register_in_app(pilot, app, login)
        main = app.main
        assert main is not None and app.store is not None
        yield pilot, main


def client_config(root: Path, server: str) -> ClientConfig:
    """A client config whose files all live under ``root``."""
    dirs = Dirs(root / "data", root / "state", root / "config", root / "downloads")
    return ClientConfig(server=server, dirs=dirs)


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., MessengerApp]:
    """``make_app(server_url, name="alice")``: an app with its own client home."""

    def make(server: str, name: str = "alice", **options: object) -> MessengerApp:
        config = client_config(tmp_path / f"client-{name}", server)
        return MessengerApp(config, TuiOptions(tz=utc(), bell=False, **options))  # type: ignore[arg-type]

    return make


async def other_user(server: ServerProcess, login: str) -> Client:
    """Another user, talking through the client library."""
    client = Client(server.url)
    await client.register(login, "secret12")
    return client


@pytest.fixture
async def bob(server: ServerProcess) -> AsyncIterator[Client]:
    """Bob, registered on the test server, talking to the TUI's user through the client
    library (closed after the test)."""
    client = await other_user(server, "bob")
    yield client
    await client.close()


def type_at_once(app: MessengerApp, text: str) -> None:
    """Type ``text`` as a terminal delivers a fast typist's keys (or tmux send-keys): every
    key is read before the app has handled the first (``pilot.press`` waits after each);
    ``"\x7f"`` is Backspace."""
    driver = app._driver
    assert driver is not None
    for character in text:
        key = _character_to_key(character) if not character.isalnum() else character
        if character == "\x7f":  # what a terminal sends for Backspace
            key = "backspace"
        event = events.Key(key, character)
        event.set_sender(app)
        driver.send_message(event)


async def until(pilot: Pilot[None], condition: Callable[[], object], what: str = "") -> None:
    """Let the app run until ``condition()`` holds; fail after :data:`WAIT` seconds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)


async def until_true(
    pilot: Pilot[None], condition: Callable[[], Awaitable[bool]], what: str = ""
) -> None:
    """:func:`until` for a condition that asks the server (a coroutine)."""
    deadline = time.monotonic() + WAIT
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.05)


def laid_out(root: DOMNode, selector: str) -> bool:
    """Exactly one widget matches ``selector`` and it has its place on screen, so a click
    lands on it (a widget just mounted has no region until the next layout)."""
    found = root.query(selector)
    return len(found) == 1 and found.first().region.area > 0


async def click(pilot: Pilot[None], selector: str) -> None:
    """Click the widget ``selector`` once it is laid out on the current screen (a click
    before layout lands nowhere), and fail if the click did not reach it."""
    await until(pilot, lambda: laid_out(pilot.app.screen, selector), f"{selector} on screen")
    assert await pilot.click(selector), f"the click on {selector} missed"
