"""The app survives what used to kill it (issue 9): a failing worker, the scheduled
screen's Cancel racing its own live event."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from textual import on
from textual.message import Message as TextualMessage
from textual.widgets import Button

from messenger_client.tui import app as app_module
from messenger_client.tui.app import MessengerApp, TuiOptions
from messenger_client.tui.timeline import utc
from messenger_client.tui.widgets.moderation import ScheduledScreen
from tests.support.server import ServerProcess
from tests.tui.conftest import client_config, until
from tests.tui.test_app import SIZE, register_in_app, screen_text


def notes(app: MessengerApp) -> str:
    """The notifications shown so far, one per line."""
    return "\n".join(n.message for n in app._notifications)


async def test_cancel_in_the_scheduled_screen_does_not_kill_the_app(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Item 6: /schedule, /scheduled, Tab, Enter (Cancel) used to end the app with
    DuplicateIds (the cancel's answer and its live event rebuilt the rows at once)."""
    app = make_app(server.url)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await register_in_app(pilot, app, "alice")
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
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await register_in_app(pilot, app, "alice")
        main = app.main
        assert main is not None
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="messenger_client.tui.app"):
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
        records = [r for r in caplog.records if r.name == "messenger_client.tui.app"]
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
