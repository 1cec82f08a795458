"""Pilot tests of the admin screen, the scheduled-messages panel (against the real
server) and the banned / rate-limit banners (with a clock the test moves)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Button, DataTable, Input, Static, TabbedContent

from messenger_client.api import Client
from messenger_client.tui.app import MessengerApp
from messenger_client.tui.screens.admin import AdminScreen
from messenger_client.tui.screens.login import LoginScreen
from messenger_client.tui.timeline import Timeline, utc
from messenger_client.tui.widgets.message_view import MessageView
from messenger_client.tui.widgets.moderation import (
    Countdown,
    ModerationBar,
    ScheduledScreen,
    fade_level,
)
from messenger_protocol import ApiError, ErrorCode, Message
from tests.support.server import ServerProcess
from tests.tui.conftest import SIZE, click, laid_out, register_in_app, signed_in, until


class Host(App[None]):
    """Shows one screen."""

    def __init__(self, screen: Screen[None]) -> None:
        super().__init__()
        self.first = screen

    def on_mount(self) -> None:
        self.push_screen(self.first)


async def _clients(url: str, *names: str) -> list[Client]:
    clients = []
    for name in names:
        client = Client(url)
        await client.register(name, "password1")
        clients.append(client)
    return clients


async def test_admin_screen_lists_users_and_acts_on_complaints(
    server_factory: Callable[..., ServerProcess],
) -> None:
    srv = server_factory(args=["--admins", "root"])
    root, target, a, b = await _clients(srv.url, "root", "target", "a", "b")
    try:
        await a.complain("target", "spam")
        await b.complain("target", "rude")
        await target.send(1, "hello from target")
        screen = AdminScreen(root)
        app = Host(screen)
        async with app.run_test(size=(140, 40)) as pilot:
            users = screen.query_one("#users-table", DataTable)
            await until(pilot, lambda: users.row_count == 4, "the users table")
            row = users.get_row("target")
            assert row[0] == "target" and row[4] == "1" and row[5] == "2"
            assert users.get_row("root")[7] == "admin"
            tabs = screen.query_one(TabbedContent)
            assert str(tabs.get_tab("tab-complaints").label) == "Complaints (2)"
            stats = screen.query_one("#stats-body", Static)
            await until(pilot, lambda: "users           4" in str(stats.render()), "stats")
            # the server's loop lag of the last minute (its meter samples every 10 ms)
            await until(pilot, lambda: "loop lag        p50 " in str(stats.render()), "loop lag")
            assert "(last 1 min)" in str(stats.render())
            # dismiss the first complaint by mouse
            tabs.active = "tab-complaints"
            await click(pilot, "#complaint-dismiss")  # item 24: once laid out on the shown tab
            complaints = screen.query_one("#complaints-table", DataTable)
            await until(pilot, lambda: complaints.row_count == 1, "the dismissal")
            queue = await root.admin_complaints()
            assert [c.author for c in queue.complaints] == ["b"]
            # ban the target of the remaining one
            await click(pilot, "#complaint-ban")
            await until(pilot, lambda: complaints.row_count == 0, "the ban")
            try:
                await target.send(1, "muted")
                raise AssertionError("the ban did not reach the server")
            except ApiError as exc:
                assert exc.code is ErrorCode.BANNED
            await until(pilot, lambda: users.get_row("target")[6] != "", "the ban column")
            bans = {u.login: u.banned_until for u in (await root.admin_users()).users}
            assert abs((bans["target"] or 0) - time.time() - 4 * 3600) < 60
            # unban from the users tab
            tabs.active = "tab-users"
            await pilot.pause()
            users.move_cursor(row=users.get_row_index("target"))
            screen.query_one("#user-unban", Button).press()
            await until(pilot, lambda: users.get_row("target")[6] == "", "the unban")
            await target.send(1, "free")
            # a chosen ban length
            screen.query_one("#ban-hours", Input).value = "0.5"
            screen.query_one("#user-ban", Button).press()
            await until(pilot, lambda: users.get_row("target")[6] != "", "the half-hour ban")
            later = {u.login: u.banned_until for u in (await root.admin_users()).users}
            assert abs((later["target"] or 0) - time.time() - 1800) < 60
            settings = screen.query_one("#settings-table", DataTable)
            assert settings.get_row_at(0)[0] == "admins"
    finally:
        for client in (root, target, a, b):
            await client.close()


async def test_admin_screen_refuses_non_admins(
    server_factory: Callable[..., ServerProcess],
) -> None:
    srv = server_factory()
    (alice,) = await _clients(srv.url, "alice")
    try:
        screen = AdminScreen(alice)
        app = Host(screen)
        async with app.run_test() as pilot:
            await until(pilot, lambda: bool(app._notifications), "the refusal")
            assert "admins" in next(iter(app._notifications)).message
            assert screen.query_one("#users-table", DataTable).row_count == 0
    finally:
        await alice.close()


async def test_scheduled_panel_cancels_with_a_button(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    srv = server_factory()
    (alice,) = await _clients(srv.url, "alice")
    try:
        later = time.time() + 3600
        first = await alice.schedule(1, "first", later)
        await alice.schedule(1, "second", later + 60)
        screen = ScheduledScreen(alice, chat_names={1: "general"})
        app = Host(screen)
        async with app.run_test(size=(120, 30)) as pilot:
            # issue 9 item 24: wait for the button's region, not for its mount: a click
            # before layout landed nowhere on a loaded machine
            button = f"#cancel-{first.id}"
            await until(pilot, lambda: laid_out(screen, button), "the cancel button on screen")
            assert await pilot.click(button)
            await until(
                pilot, lambda: len(screen.query(f"#cancel-{first.id}")) == 0, "the cancellation"
            )
            states = {s.text: s.state for s in (await alice.scheduled()).scheduled}
            assert states == {"first": "cancelled", "second": "pending"}
    finally:
        await alice.close()


class BarHost(App[None]):
    """A moderation bar on a clock the test moves."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1_700_000_000.0

    def compose(self) -> ComposeResult:
        yield ModerationBar(clock=lambda: self.now, id="bar")


async def test_banned_banner_counts_down_and_goes_away() -> None:
    app = BarHost()
    async with app.run_test() as pilot:
        bar = app.query_one(ModerationBar)
        banner = bar.query_one("#banned", Countdown)
        assert not banner.display
        bar.banned(app.now + 4 * 3600, "3 users complained")
        await pilot.pause()
        assert banner.display
        assert str(banner.render()) == "Banned from sending (3 users complained) -- 4 h left"
        app.now += 3600 + 61
        banner.tick()
        assert str(banner.render()).endswith("-- 2 h 58 min left")
        app.now += 3 * 3600
        banner.tick()
        await pilot.pause()
        assert not banner.display
        # an unban hides it at once
        bar.banned(app.now + 60)
        assert banner.display
        bar.banned(None)
        assert not banner.display


async def test_rate_limit_wait_shows_until_the_window_ends() -> None:
    app = BarHost()
    async with app.run_test() as pilot:
        bar = app.query_one(ModerationBar)
        wait = bar.query_one("#rate-wait", Countdown)
        bar.rate_limited(125)
        await pilot.pause()
        assert str(wait.render()).endswith("-- 2 min 5 s left") and wait.display
        app.now += 125
        wait.tick()
        assert not wait.display


def test_formatting_helpers() -> None:
    assert fade_level(None, 0) == 0.0
    assert fade_level(1000, 0) == 0.0
    assert fade_level(1000, 850) == 0.5
    assert fade_level(1000, 1000) == 1.0


class ViewHost(App[None]):
    """A message view alone."""

    def compose(self) -> ComposeResult:
        yield MessageView(me="bob", tz=utc(), id="messages")


async def test_messages_about_to_disappear_fade() -> None:
    now = time.time()
    lasting = Message(id=1, chat_id=1, author="alice", text="lasting", created_at=now)
    going = Message(id=2, chat_id=1, author="carol", text="going", created_at=now)
    app = ViewHost()
    async with app.run_test(size=(60, 12)) as pilot:
        view = app.query_one(MessageView)
        view.disappears_at = lambda m: now + (30 if m.id == 2 else 3600)
        view.show(Timeline(1, [lasting, going]))
        await pilot.pause()

        def dim_rows() -> dict[str, bool]:
            rows: dict[str, bool] = {}
            for y in range(view.size.height):
                strip = view.render_line(y)
                text = strip.text
                for word in ("lasting", "going"):
                    if word in text:
                        rows[word] = all(
                            s.style is not None and s.style.dim for s in strip if s.text.strip()
                        )
            return rows

        assert dim_rows() == {"lasting": False, "going": True}
        view.disappears_at = None  # messages that do not disappear never fade
        view.refresh()
        await pilot.pause()
        assert dim_rows() == {"lasting": False, "going": False}


# --- the whole app against the real server ------------------------------------------------


async def test_app_shows_the_ban_with_a_countdown_and_lifts_it(
    server_factory: Callable[..., ServerProcess], make_app: Callable[..., MessengerApp]
) -> None:
    srv = server_factory(args=["--admins", "root"])
    app = make_app(srv.url, "target")
    root, a, b, c = await _clients(srv.url, "root", "a", "b", "c")
    try:
        async with signed_in(app, "target") as (pilot, _):
            assert app.main is not None
            banner = app.main.moderation.banned_banner
            assert not banner.display
            for client in (a, b, c):
                await client.complain("target", "spam")
            await until(pilot, lambda: banner.display, "the banned banner")
            text = str(banner.render())
            prefix = "Banned from sending (3 users complained) -- "
            assert text.startswith(prefix) and text.endswith(" left")
            assert text.removeprefix(prefix).startswith(("4 h left", "3 h 59 min left"))
            await root.admin_unban("target")
            await until(pilot, lambda: not banner.display, "the banner to go")
    finally:
        for client in (root, a, b, c):
            await client.close()


async def test_app_shows_the_rate_limit_wait(
    server_factory: Callable[..., ServerProcess], make_app: Callable[..., MessengerApp]
) -> None:
    srv = server_factory(args=["--rate-limit-messages", "1"])
    app = make_app(srv.url, "alice")
    async with signed_in(app) as (pilot, _):
        assert app.main is not None
        wait = app.main.moderation.rate_wait
        await pilot.press(*"one", "enter")
        await until(pilot, lambda: app.store and app.store.timeline(1).newest_id, "sent")
        await pilot.press(*"two", "enter")
        await until(pilot, lambda: wait.display, "the rate-limit wait")
        assert "Rate limit reached: you can send again -- " in str(wait.render())


async def _press_f3(app: MessengerApp, login: str, *, admin: bool) -> Screen[object]:
    async with app.run_test(size=SIZE) as pilot:
        await register_in_app(pilot, app, login)
        await pilot.press("f3")
        if admin:  # wait for the screen, not for one idle turn
            await until(pilot, lambda: isinstance(app.screen, AdminScreen), "the admin screen")
            users = app.screen.query_one("#users-table", DataTable)
            await until(pilot, lambda: users.row_count >= 1, "the users")
        else:
            await pilot.pause()  # the key is handled: F3 did nothing for a non-admin
        return app.screen


async def test_f3_opens_the_admin_screen_only_for_admins(
    server_factory: Callable[..., ServerProcess], make_app: Callable[..., MessengerApp]
) -> None:
    srv = server_factory(args=["--admins", "root"])
    assert isinstance(await _press_f3(make_app(srv.url, "root"), "root", admin=True), AdminScreen)
    alice_app = make_app(srv.url, "alice")
    assert await _press_f3(alice_app, "alice", admin=False) is alice_app.main


async def test_app_shows_a_ban_that_started_while_away(
    server_factory: Callable[..., ServerProcess], make_app: Callable[..., MessengerApp]
) -> None:
    srv = server_factory(args=["--admins", "root"])
    root, target = await _clients(srv.url, "root", "target")
    try:
        await root.admin_ban("target", 600, "cool down")
        app = make_app(srv.url, "target")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
            app.screen.query_one("#login", Input).value = "target"
            app.screen.query_one("#password", Input).value = "password1"
            await click(pilot, "#do-login")
            await until(pilot, lambda: app.main is not None, "the main screen")
            assert app.main is not None
            banner = app.main.moderation.banned_banner
            await until(pilot, lambda: banner.display, "the banned banner")
            assert str(banner.render()).startswith("Banned from sending -- ")
    finally:
        for client in (root, target):
            await client.close()
