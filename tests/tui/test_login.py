"""The login screen under a password manager's autotype (issue 9, item 13)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual import events

from messenger_client import Client
from messenger_client.tui import app as app_module
from messenger_client.tui.app import MessengerApp, TuiOptions
from messenger_client.tui.timeline import utc
from tests.support.server import ServerProcess
from tests.tui.conftest import SIZE, client_config, until

BURST = [*"alice", "tab", *"secret12", "enter"]
"""Login, Tab, password, Enter: what autotype sends, in one read of the terminal."""

_CHARS = {"tab": "\t", "enter": "\r"}


def type_burst(app: MessengerApp, keys: list[str]) -> None:
    """Queue every key at once, as the terminal driver does for one read."""
    for key in keys:
        app.post_message(events.Key(key, _CHARS.get(key, key)))


class EarlyTyper(MessengerApp):
    """The real app; the burst arrives while it mounts, before the login form exists."""

    CSS_PATH = str(Path(app_module.__file__).parent / "app.tcss")

    def on_mount(self) -> None:
        super().on_mount()
        type_burst(self, BURST)


@pytest.mark.parametrize("moment", ["before the form exists", "as the form shows"])
async def test_a_login_burst_lands_in_the_fields_it_was_aimed_at(
    server: ServerProcess, tmp_path: Path, moment: str
) -> None:
    """Item 13: login, Tab, password, Enter typed at once at start log in; before the fix
    the whole burst landed in one field (Login, or Server before the form had focus)."""
    alice = Client(server.url)
    await alice.register("alice", "secret12")
    await alice.close()
    config = client_config(tmp_path / "client", server.url)
    early = moment == "before the form exists"
    app = (EarlyTyper if early else MessengerApp)(config, TuiOptions(tz=utc(), bell=False))
    async with app.run_test(size=SIZE) as pilot:
        if not early:
            type_burst(app, BURST)
        await until(pilot, lambda: app.connection.state == "connected", "logged in")
        assert app.store is not None and app.store.me == "alice"


async def test_a_burst_after_a_known_login_goes_to_the_password(
    server: ServerProcess, make_app: Callable[..., MessengerApp]
) -> None:
    """Item 13 (guard): with the login filled in (from the config), the burst starts in
    Password, so it must not move focus first."""
    alice = Client(server.url)
    await alice.register("alice", "secret12")
    await alice.close()
    app = make_app(server.url)
    app.config.login = "alice"
    async with app.run_test(size=SIZE) as pilot:
        type_burst(app, [*"secret12", "enter"])
        await until(pilot, lambda: app.connection.state == "connected", "logged in")
