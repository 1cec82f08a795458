"""The TUI when its session expires (issue 9 item 19), against the real server process with
its clock moved by the test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.css.query import NoMatches
from textual.widgets import Input, Static

from messenger_client.tui.app import MessengerApp
from messenger_client.tui.screens.login import LoginScreen
from messenger_client.tui.screens.status import StatusScreen
from tests.support.server import ServerProcess
from tests.support.wire import call
from tests.tui.conftest import SIZE, screen_text, signed_in, until

T0 = 1_700_000_000.0
REASON = "Session expired (unused for 1 h); log in again"


def _clocked(server_factory: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    clock = tmp_path / "clock"
    clock.write_text(repr(T0))
    return server_factory(clock_file=clock, args=["--session-idle-timeout", "3600"])


def _sent(app: MessengerApp, text: str) -> bool:
    """The server has acknowledged ``text`` (it has an id in the general chat)."""
    store = app.store
    if store is None:
        return False
    timeline = store.timeline(1)
    return any(m.text == text and m.id > 0 for m in timeline.messages)


async def _token(srv: ServerProcess) -> str:
    body = {"login": "alice", "password": "secret12"}
    resp = await call(srv.url, "POST", "/api/v1/auth/login", json=body)
    token: str = resp.json()["token"]
    return token


def _typing_in_flight(app: MessengerApp) -> bool:
    return any(w.group == "typing" and not w.is_finished for w in app.workers)


def _asks_for_the_password(app: MessengerApp) -> bool:
    screen = app.screen
    if not isinstance(screen, LoginScreen):
        return False
    try:  # the screen may be pushed and not composed yet
        login, error = screen.query_one("#login", Input), screen.query_one("#login-error", Static)
    except NoMatches:
        return False
    return login.value == "alice" and str(error.render()) == REASON


async def test_status_shows_the_expiry_and_an_expired_session_asks_for_the_password(
    server_factory: Callable[..., ServerProcess],
    make_app: Callable[..., MessengerApp],
    tmp_path: Path,
) -> None:
    """Item 19: the status screen says when this session expires; once it has, the app
    shows the login screen with the login filled in and one line saying why."""
    srv = _clocked(server_factory, tmp_path)
    app = make_app(srv.url)
    async with signed_in(app) as (pilot, _):
        await pilot.press("f2")
        await until(pilot, lambda: isinstance(app.screen, StatusScreen))
        await until(pilot, lambda: "this session expires" in screen_text(app), "the expiry")
        await pilot.press("escape")
        # typed while the session lives (its typing notices are answered), sent once it
        # has expired: the send is the request that finds the session over
        await pilot.press(*"written while expired")
        await until(pilot, lambda: not _typing_in_flight(app), "the typing notices answered")
        srv.set_time(T0 + 3600)
        await pilot.press("enter")
        await until(pilot, lambda: _asks_for_the_password(app), "the login screen with why")
        assert app.screen.focused is app.screen.query_one("#password", Input)
        assert app.config.tokens.load(srv.url) is None  # the dead token is not kept
        await pilot.press(*"secret12", "enter")
        await until(pilot, lambda: app.main is not None and app.screen is app.main, "main screen")
        await until(pilot, lambda: app.connection.state == "connected", "logged in again")
        # nothing is lost: the message written while expired goes out after the login
        await until(pilot, lambda: _sent(app, "written while expired"), "the kept message sent")
    history = await call(srv.url, "GET", "/api/v1/chats/1/messages", await _token(srv))
    assert [m["text"] for m in history.json()["messages"]] == ["written while expired"]


async def test_a_saved_token_that_expired_meanwhile_asks_for_the_password(
    server_factory: Callable[..., ServerProcess],
    make_app: Callable[..., MessengerApp],
    tmp_path: Path,
) -> None:
    """Item 19: coming back after the idle timeout, the app asks for the password at once."""
    srv = _clocked(server_factory, tmp_path)
    app = make_app(srv.url)
    async with signed_in(app):
        pass
    srv.set_time(T0 + 3600)
    again = make_app(srv.url)
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: _asks_for_the_password(again), "the login screen with why")


async def test_what_was_being_typed_when_the_session_expired_is_kept(
    server_factory: Callable[..., ServerProcess],
    make_app: Callable[..., MessengerApp],
    tmp_path: Path,
) -> None:
    """A half-written message is not lost to the expiry: after logging in again it is back
    in the composer, unsent."""
    srv = _clocked(server_factory, tmp_path)
    app = make_app(srv.url)
    async with signed_in(app) as (pilot, _):
        await pilot.press(*"half a thought")
        await until(pilot, lambda: not _typing_in_flight(app), "the typing notices answered")
        srv.set_time(T0 + 3600)
        await pilot.press("f2")  # any request finds the session over
        await until(pilot, lambda: _asks_for_the_password(app), "the login screen with why")
        await pilot.press(*"secret12", "enter")
        await until(pilot, lambda: app.main is not None and app.screen is app.main, "main screen")
        main = app.main
        assert main is not None
        await until(pilot, lambda: main.composer.text == "half a thought", "the draft back")
        assert not _sent(app, "half a thought")
