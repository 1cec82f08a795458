"""Snapshots of the login, main and status screens with fixed data, clock and size.

Update after an intended change: ``uv run pytest tests/tui/test_snapshots.py --snapshot-update``
and look at the SVGs in ``tests/tui/__snapshots__``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, TextArea

from messenger_client.cache import Cache
from messenger_client.events import ConnectionState
from messenger_client.tui.app import MessengerApp, TuiOptions
from messenger_client.tui.screens.find import SearchScreen
from messenger_client.tui.screens.help import HelpScreen
from messenger_client.tui.screens.login import LoginScreen
from messenger_client.tui.screens.status import StatusScreen
from messenger_client.tui.timeline import utc
from messenger_protocol import (
    Chat,
    Connection,
    LoginRecord,
    Message,
    OwnedChat,
    Quote,
    Reaction,
    Session,
    Status,
    User,
)
from tests.tui.conftest import client_config, until

SERVER = "http://127.0.0.1:9"  # nothing listens: the app stays offline, deterministic
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC
SIZE = (110, 30)

SnapCompare = Callable[..., bool]


def offline_app(
    root: Path, with_cache: bool, annotated: bool = False, markdown: bool = False
) -> MessengerApp:
    """An app whose state comes from a prepared cache (and a saved token) only
    (``annotated``: with an edit, a reply, reactions and a deleted message;
    ``markdown``: with a code block, a quote and a list)."""
    config = client_config(root, SERVER)
    if with_cache:
        config.tokens.save(SERVER, "alice", "token")
        cache = Cache.for_account(SERVER, "alice", root=config.dirs.data / "cache")
        cache.replace_chats([
            Chat(id=1, kind="general", name="general"),
            Chat(id=2, kind="group", name="team", owner="alice", members=3, unread=4),
            Chat(id=3, kind="direct", name="@bob", peer="bob", unread=1),
            Chat(id=4, kind="direct", name="@carol", peer="carol"),
        ])  # fmt: skip
        cache.replace_users([User("bob", online=True), User("carol", last_seen=T0 - 7200)])
        texts = [
            ("bob", "morning! the **build** is green again"),
            ("bob", "see https://example.org/ci/42 for the run"),
            ("alice", "nice -- was it the `flaky_test` again?"),
            ("carol", "yes, @alice: I pinned the seed"),
            ("carol", "a longer message that wraps over more than one line, to show how the "
                      "text keeps its indent under the author and the time of the group"),
            ("alice", "thanks both"),
        ]  # fmt: skip
        messages = [
            Message(id=i, chat_id=1, author=a, text=t, created_at=T0 + 3600 * 9 + i * 60)
            for i, (a, t) in enumerate(texts, start=1)
        ]
        if annotated:
            at = T0 + 3600 * 10
            messages[1] = msgspec.structs.replace(
                messages[1], text="see https://example.org/ci/43 for the run", edited_at=at
            )
            messages[2] = msgspec.structs.replace(
                messages[2],
                reply_to=Quote(id=1, author="bob", text="morning! the **build** is green again"),
                reactions=[Reaction("👍", 2, ["bob", "alice"]), Reaction("🎉", 1, ["carol"])],
            )
            messages[4] = msgspec.structs.replace(messages[4], text="", deleted_at=at)
        if markdown:
            messages[2] = msgspec.structs.replace(
                messages[2],
                text="> the **build** is green again\n\nwas it this one?\n"
                "```python\ndef test_flaky(seed: int = 42) -> None:\n"
                "    assert roll(seed) == 4  # chosen by a fair die\n```",
            )
            messages[4] = msgspec.structs.replace(
                messages[4], text="fixed by:\n- pinning the *seed*\n- `pytest -p no:randomly`"
            )
        cache.save_messages(messages)
        cache.close()
    return MessengerApp(config, TuiOptions(tz=utc(), bell=False), clock=lambda: T0)


async def settle(pilot: Pilot[None]) -> None:
    """Stop the network workers and cursor blink, so the frame is the same every run."""
    app = pilot.app
    assert isinstance(app, MessengerApp)
    await until(
        pilot,
        lambda: isinstance(app.screen, LoginScreen) or (app.main and app.main.view.layout_),
        "the first screen",
    )
    if app.main is not None:  # the network starts after the first frame
        await until(pilot, lambda: any(w.group == "events" for w in app.workers), "going live")
    for group in ("events", "refresh", "latest", "outbox", "older"):
        app.workers.cancel_group(app, group)
    for widget in app.screen.query("Input, TextArea"):
        if isinstance(widget, Input | TextArea):
            widget.cursor_blink = False
    if app.main is not None:
        app.main.bar.state = ConnectionState("offline")
    await pilot.pause()


def test_login_screen(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = offline_app(tmp_path, with_cache=False)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_main_screen_with_a_few_chats(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = offline_app(tmp_path, with_cache=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_main_screen_with_an_edit_a_reply_reactions_and_a_tombstone(
    snap_compare: SnapCompare, tmp_path: Path
) -> None:
    """Issue 12: "(edited)", a one-line quote above a reply, reaction chips (your own
    highlighted) and a dim "message deleted" in the place of a deleted message."""
    app = offline_app(tmp_path, with_cache=True, annotated=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_main_screen_with_a_code_block_a_quote_and_a_list(
    snap_compare: SnapCompare, tmp_path: Path
) -> None:
    """Issue 12: Markdown in messages -- fenced code highlighted on its own background,
    a block quote with a bar, a bullet list -- in as many lines as the layout counts."""
    app = offline_app(tmp_path, with_cache=True, markdown=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_status_screen(snap_compare: SnapCompare, tmp_path: Path) -> None:
    status = Status(
        user=User("alice", online=True),
        connections=[
            Connection("s1", "127.0.0.1:50412", "messenger TUI", T0, streaming=True, current=True),
            Connection("s2", "10.0.0.7:41022", "phone", T0 - 86400, streaming=True),
        ],
        private_sent=12,
        private_received=9,
        owned_chats=[OwnedChat(Chat(id=2, kind="group", name="team", owner="alice", members=3))],
        member_chats=[
            Chat(id=1, kind="general", name="general"),
            Chat(id=2, kind="group", name="team", owner="alice", members=3, unread=4),
        ],
        logins=[
            LoginRecord(T0 - 86400, "10.0.0.7", "phone"),
            LoginRecord(T0 - 600, "127.0.0.1", "messenger TUI", success=False),
            LoginRecord(T0, "127.0.0.1", "messenger TUI"),
        ],
    )

    async def show_status(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.app.push_screen(StatusScreen(status, tz=utc()))
        await pilot.pause()

    app = offline_app(tmp_path, with_cache=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=show_status)


def test_help_screen(snap_compare: SnapCompare, tmp_path: Path) -> None:
    """Issue 9 item 10: the help screen, filtered to the thread commands and keys."""

    async def show_help(pilot: Pilot[None]) -> None:
        await settle(pilot)
        app = pilot.app
        assert isinstance(app, MessengerApp)
        app.action_help_screen("thread")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        wanted = len(screen.matching("thread"))

        def filled() -> bool:
            tables = screen.query("#help-table").results(DataTable)
            return any(table.row_count == wanted for table in tables)

        await until(pilot, filled, "the filtered rows")
        for widget in app.screen.query(Input):
            widget.cursor_blink = False
        await pilot.pause()

    app = offline_app(tmp_path, with_cache=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=show_help)


def footer_line(app: MessengerApp) -> str:
    """The bottom line of the screen: the footer's key hints."""
    return [strip.text for strip in app.screen._compositor.render_strips()][-1]


async def test_the_footer_shows_f1_help_whole_at_120_columns(tmp_path: Path) -> None:
    """Issue 9 item 4 leftover: at 120 columns the main screen's footer cut "f1 Help" off
    (the app's keys came last); it shows it whole, also with an admin's F3."""
    app = offline_app(tmp_path, with_cache=True)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await until(pilot, lambda: "Quit" in footer_line(app), "the footer")
        footer = footer_line(app)
        for hint in ("f1 Help", "^k Switch", "^q Quit", "^p palette"):
            assert hint in footer, f"{hint!r} not whole in {footer!r}"
        assert app.client is not None
        app.client.session = Session(
            token="token", session_id="s", user=User("alice", is_admin=True)
        )
        app.refresh_bindings()
        await until(pilot, lambda: "f3 Admin" in footer_line(app), "F3 for the admin")
        footer = footer_line(app)
        for hint in ("f1 Help", "^q Quit", "^p palette"):
            assert hint in footer, f"{hint!r} not whole in {footer!r}"


def test_search_screen(snap_compare: SnapCompare, tmp_path: Path) -> None:
    """Issue 12: Ctrl+F with a query typed -- offline, so the hits come from this device's
    cache -- each hit with its chat, author and time, the matched word highlighted."""

    async def search(pilot: Pilot[None]) -> None:
        await settle(pilot)
        app = pilot.app
        assert isinstance(app, MessengerApp)
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), "the search screen")
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        await pilot.press(*"build")
        await until(pilot, lambda: "build" in screen.asked, "the hits")
        for widget in app.screen.query(Input):
            widget.cursor_blink = False
        await pilot.pause()

    app = offline_app(tmp_path, with_cache=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=search)


def test_verification_screen(snap_compare: SnapCompare, tmp_path: Path) -> None:
    """Issue 14: comparing bob's device by emoji -- the seven emoji over their names, the
    same check as three numbers, "They match" and "They don't match" (the latter focused,
    so a stray Enter trusts nothing)."""
    from messenger_client.trust import VerificationUpdate
    from messenger_client.tui.screens.verify import VerifyScreen
    from messenger_client.verification import SAS_EMOJI

    picked = [SAS_EMOJI[i] for i in (0, 9, 23, 31, 47, 52, 63)]
    update = VerificationUpdate(
        login="bob",
        device_id="BOBLAPTOP",
        txn="t1",
        state="showing",
        we_started=True,
        emoji=tuple(e for e, _ in picked),
        emoji_names=tuple(name for _, name in picked),
        decimals=(1234, 5678, 4321),
    )

    async def show_verify(pilot: Pilot[None]) -> None:
        await settle(pilot)
        app = pilot.app
        await app.push_screen(VerifyScreen("bob", "BOBLAPTOP", update))
        await until(pilot, lambda: isinstance(app.screen, VerifyScreen), "the verify screen")
        await pilot.pause()

    app = offline_app(tmp_path, with_cache=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=show_verify)
