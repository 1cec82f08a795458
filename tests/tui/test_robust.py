"""The app survives what used to kill it (issue 9): a failing worker, the scheduled
screen's Cancel racing its own live event."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual import events, on
from textual.dom import DOMNode
from textual.message import Message as TextualMessage
from textual.widgets import Button

import messenger_client.tui
from messenger_client.tui import app as app_module
from messenger_client.tui.app import MessengerApp, TuiOptions
from messenger_client.tui.robust import Guarded
from messenger_client.tui.screens.main import MainScreen
from messenger_client.tui.timeline import utc
from messenger_client.tui.widgets.message_view import MessageView
from messenger_client.tui.widgets.moderation import ScheduledScreen
from tests.support.server import ServerProcess
from tests.tui.conftest import (
    click,
    client_config,
    screen_text,
    signed_in,
    until,
)

ROBUST_LOG = "messenger_client.tui.robust"
"""The logger of the one place that reports what failed."""


def notes(app: MessengerApp) -> str:
    """The notifications shown so far, one per line."""
    return "\n".join(n.message for n in app._notifications)


async def test_cancel_in_the_scheduled_screen_does_not_kill_the_app(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Item 6: /schedule, /scheduled, Tab, Enter (Cancel) used to end the app with
    DuplicateIds (the cancel's answer and its live event rebuilt the rows at once)."""
    app = make_app(server.url)
    async with signed_in(app, notifications=True) as (pilot, _):
        await pilot.press(*"/schedule +5m general x", "enter")
        await until(pilot, lambda: "scheduled #1" in notes(app), "scheduled")
        await pilot.press(*"/scheduled", "enter")
        await until(pilot, lambda: isinstance(app.screen, ScheduledScreen), "scheduled screen")
        screen = app.screen
        await until(pilot, lambda: bool(screen.query("#cancel-1")), "the cancel button")
        await pilot.press("tab", "enter")
        await until(pilot, lambda: "[cancelled]" in screen_text(app), "cancelled row")
        assert not screen.query(Button), "a cancelled message has no Cancel button"
        assert app.is_running and app.return_code is None


class Boom(TextualMessage):
    """A message whose handler in :class:`FragileApp` fails."""


class FragileApp(MessengerApp):
    """The real app plus one handler with a bug."""

    CSS_PATH = str(Path(app_module.__file__).parent / "app.tcss")

    @on(Boom)
    def _boom(self) -> None:
        raise KeyError("handler bug")


async def _failing(what: str) -> None:
    raise RuntimeError(what)


async def test_a_failing_worker_or_handler_is_one_error_line_and_the_app_lives(
    server: ServerProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 6: an exception in a worker (the app's or a screen's) or in a handler is a
    one-line error notification and a log entry; the app keeps working."""
    config = client_config(tmp_path / "client", server.url)
    app = FragileApp(config, TuiOptions(tz=utc(), bell=False))
    async with signed_in(app, notifications=True) as (pilot, main):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger=ROBUST_LOG):
            app.run_worker(_failing("worker bug"), name="injected")
            await until(pilot, lambda: "worker bug" in notes(app), "the worker's error")
            main.run_worker(_failing("screen worker bug"), name="screen job")
            await until(pilot, lambda: "screen worker bug" in notes(app), "the screen's error")
            app.post_message(Boom())
            await until(pilot, lambda: "handler bug" in notes(app), "the handler's error")
        lines = notes(app).splitlines()
        assert "Something went wrong (injected): worker bug" in lines
        assert "Something went wrong (screen job): screen worker bug" in lines
        assert any(line.startswith("Something went wrong (Boom)") for line in lines)
        records = [r for r in caplog.records if r.name == ROBUST_LOG]
        assert [r.getMessage() for r in records] == [
            "injected failed",
            "screen job failed",
            "Boom failed",
        ]
        assert all(r.exc_info for r in records), "the log has the traceback"
        # Still alive: a message goes out and comes back.
        await pilot.press(*"still here", "enter")
        await until(pilot, lambda: app.store and app.store.timeline(1).newest_id, "sent")
        assert app.is_running and app.return_code is None


async def test_a_failing_screen_or_widget_handler_is_one_error_line_and_both_live_on(
    server: ServerProcess,
    make_app: Callable[..., MessengerApp],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Item 6: an exception in a screen's own event handler (the main screen's paste) and
    in a widget's (the message view's click) is a one-line error and a log entry with the
    traceback; the app, that screen and that widget keep answering (Textual would end the
    app, and first the node's own message loop)."""

    def broken_paste(self: MainScreen, event: events.Paste) -> None:
        raise ValueError("paste handler bug")

    def broken_click(self: MessageView, event: events.Click) -> None:
        raise LookupError(f"click handler bug {self.id}")

    monkeypatch.setattr(MainScreen, "on_paste", broken_paste)
    monkeypatch.setattr(MessageView, "on_click", broken_click)
    app = make_app(server.url)
    shown: list[str] = []  # every line shown, also those whose toast timed out meanwhile
    notify = app.notify

    def recorded(message: str, **kwargs: Any) -> None:
        shown.append(message)
        notify(message, **kwargs)

    monkeypatch.setattr(app, "notify", recorded)

    def told() -> str:
        return "\n".join(shown)

    async with signed_in(app, notifications=True) as (pilot, main):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger=ROBUST_LOG):
            main.post_message(events.Paste("pasted"))
            await until(pilot, lambda: "paste handler bug" in notes(app), "the screen's error")
            await click(pilot, "#messages")
            await until(pilot, lambda: "click handler bug" in notes(app), "the widget's error")
            # The same widget and screen still take events: the next ones fail again.
            await click(pilot, "#messages")
            main.post_message(events.Paste("again"))
            await until(pilot, lambda: told().count("click handler bug") == 2, "2nd click")
            await until(pilot, lambda: told().count("paste handler bug") == 2, "2nd paste")
        lines = told().splitlines()
        assert "Something went wrong (Paste): paste handler bug" in lines
        assert "Something went wrong (Click): click handler bug messages" in lines
        records = [r for r in caplog.records if r.name == ROBUST_LOG]
        assert (
            sorted(r.getMessage() for r in records) == ["Click failed"] * 2 + ["Paste failed"] * 2
        )
        assert all(r.exc_info for r in records), "the log has the traceback"
        # Keys still work: typing goes to the composer and Enter sends.
        main.composer.focus()
        await pilot.press(*"still alive", "enter")
        await until(pilot, lambda: app.store and app.store.timeline(1).newest_id, "sent")
        assert app.is_running and app.return_code is None
        assert app.screen is main


def _dom_classes() -> list[type[DOMNode]]:
    """Every screen, widget and app class the TUI defines."""
    found: list[type[DOMNode]] = []
    root = Path(messenger_client.tui.__file__).parent
    for path in sorted(root.rglob("*.py")):
        name = ".".join(("messenger_client", *path.relative_to(root.parent).with_suffix("").parts))
        module = importlib.import_module(name.removesuffix(".__init__"))
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, DOMNode)
                and value.__module__ == module.__name__
            ):
                found.append(value)
    return found


def test_every_screen_and_widget_of_the_tui_is_guarded() -> None:
    """Item 6: the one place covers every node the TUI defines, also ones added later."""
    classes = _dom_classes()
    assert MainScreen in classes and MessageView in classes and MessengerApp in classes
    unguarded = [c.__qualname__ for c in classes if not issubclass(c, Guarded)]
    assert unguarded == []
