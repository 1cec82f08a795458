"""The admin screen (F21), only for admins: users, the complaint queue with actions,
live server stats and the effective settings."""

from __future__ import annotations

import logging
import time
from datetime import tzinfo
from typing import ClassVar, Protocol

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import (
    Button,
    DataTable,
    Input,
    Label,
    Static,
    TabbedContent,
    TabPane,
)

from messenger_protocol import (
    AdminUserList,
    ApiError,
    Complaint,
    ComplaintList,
    LoopLag,
    MessengerError,
    ServerStats,
    Settings,
    User,
    format_duration,
    format_latency,
    format_size,
    format_time,
    limits,
)

from ..robust import Guarded
from ..widgets.footer import KeysFooter

__all__ = ["STATS_EVERY", "AdminApi", "AdminScreen"]

log = logging.getLogger(__name__)

STATS_EVERY = 2.0
"""Seconds between two refreshes of the live stats."""


class AdminApi(Protocol):
    """What the screen needs of :class:`messenger_client.api.Client`."""

    async def admin_users(self) -> AdminUserList: ...
    async def admin_complaints(self) -> ComplaintList: ...
    async def admin_dismiss(self, complaint_id: int) -> Complaint: ...
    async def admin_ban(self, login: str, seconds: int, reason: str = "") -> User: ...
    async def admin_unban(self, login: str) -> User: ...
    async def admin_stats(self) -> ServerStats: ...
    async def admin_settings(self) -> Settings: ...


class AdminScreen(Guarded, Screen[None]):
    """Users, complaints, stats, settings; actions go straight to the server."""

    DEFAULT_CSS = """
    AdminScreen DataTable { height: 1fr; }
    AdminScreen .admin-actions { height: 3; }
    AdminScreen .admin-actions Button { margin: 0 1 0 0; }
    AdminScreen #stats-body { padding: 1 2; }
    AdminScreen #ban-length { height: 1; padding: 0 1; }
    AdminScreen #ban-hours { width: 12; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="admin.close", tooltip="Back to the chats"),
        Binding("r", "reload", "Reload", id="admin.reload", tooltip="Load everything again"),
    ]

    def __init__(
        self,
        api: AdminApi,
        *,
        tz: tzinfo | None = None,
        ban_seconds: int = limits.BAN_SECONDS,
    ) -> None:
        super().__init__()
        self.api = api
        self.tz = tz
        self.ban_seconds = ban_seconds
        self.complaints: list[Complaint] = []
        self.user_logins: list[str] = []

    def compose(self) -> ComposeResult:
        """The ban length, then four tabs."""
        with Horizontal(id="ban-length"):
            yield Label("Ban length (hours): ")
            yield Input(f"{self.ban_seconds / 3600:g}", id="ban-hours", type="number", compact=True)
        with TabbedContent(id="admin-tabs"):
            with TabPane("Users", id="tab-users"), Vertical():
                yield DataTable(id="users-table", cursor_type="row", zebra_stripes=True)
                with Horizontal(classes="admin-actions"):
                    yield Button("Ban", id="user-ban", variant="error")
                    yield Button("Unban", id="user-unban")
            with TabPane("Complaints", id="tab-complaints"), Vertical():
                yield DataTable(id="complaints-table", cursor_type="row", zebra_stripes=True)
                with Horizontal(classes="admin-actions"):
                    yield Button("Dismiss", id="complaint-dismiss")
                    yield Button("Ban target", id="complaint-ban", variant="error")
                    yield Button("Unban target", id="complaint-unban")
            with TabPane("Stats", id="tab-stats"):
                yield Static("Loading…", id="stats-body")
            with TabPane("Settings", id="tab-settings"):
                yield DataTable(id="settings-table", cursor_type="row", zebra_stripes=True)
        yield KeysFooter()

    def on_mount(self) -> None:
        """Columns, first load, and the live stats timer."""
        users = self.query_one("#users-table", DataTable)
        users.add_columns(
            "login", "online", "last login", "address", "messages", "complaints", "banned until",
            "role",
        )  # fmt: skip
        complaints = self.query_one("#complaints-table", DataTable)
        complaints.add_columns("#", "when", "from", "about", "message", "reason", "text quoted")
        self.query_one("#settings-table", DataTable).add_columns("setting", "value")
        self.action_reload()
        self.set_interval(STATS_EVERY, self._load_stats)

    # --- loading ----------------------------------------------------------------

    def action_reload(self) -> None:
        """Load every tab."""
        self._load_all()

    def action_close(self) -> None:
        """Back to where we came from."""
        self.dismiss(None)

    def _failed(self, exc: Exception) -> None:
        text = exc.message if isinstance(exc, ApiError) else "Cannot reach the server"
        self.notify(text, severity="error")

    @work(exclusive=True, group="admin-load")
    async def _load_all(self) -> None:
        try:
            users = await self.api.admin_users()
            complaints = await self.api.admin_complaints()
            settings = await self.api.admin_settings()
            stats = await self.api.admin_stats()
        except MessengerError as exc:
            self._failed(exc)
            return
        self.show_users(users)
        self.show_complaints(complaints)
        self.show_settings(settings)
        self.show_stats(stats)

    @work(exclusive=True, group="admin-stats")
    async def _load_stats(self) -> None:
        try:
            stats = await self.api.admin_stats()
        except MessengerError as exc:
            log.info("admin stats: %s", exc)
            return
        self.show_stats(stats)

    def show_users(self, users: AdminUserList) -> None:
        """Fill the users table."""
        table = self.query_one("#users-table", DataTable)
        selected = self._selected_login()
        table.clear()
        self.user_logins = []
        for u in users.users:
            table.add_row(
                u.login,
                "online" if u.online else "",
                format_time(u.last_login_at, tz=self.tz) if u.last_login_at else "-",
                u.last_login_address or "-",
                str(u.messages),
                str(u.complaints or ""),
                format_time(u.banned_until, tz=self.tz) if u.banned_until else "",
                "admin" if u.is_admin else "",
                key=u.login,
            )
            self.user_logins.append(u.login)
        if selected in self.user_logins:  # a reload keeps the cursor on the same user
            table.move_cursor(row=self.user_logins.index(selected))

    def show_complaints(self, complaints: ComplaintList) -> None:
        """Fill the complaint queue."""
        table = self.query_one("#complaints-table", DataTable)
        table.clear()
        self.complaints = list(complaints.complaints)
        for c in self.complaints:
            table.add_row(
                str(c.id),
                format_time(c.created_at, tz=self.tz),
                c.author,
                c.target,
                "-" if c.message_id is None else str(c.message_id),
                c.reason or "-",
                _short(c.quoted) or "-",  # the reporter's word: the server cannot check it
                key=str(c.id),
            )
        tabs = self.query_one(TabbedContent)
        tabs.get_tab("tab-complaints").label = f"Complaints ({len(self.complaints)})"

    def show_stats(self, stats: ServerStats) -> None:
        """Show the live numbers."""
        body = (
            f"uptime          {format_duration(stats.uptime)}\n"
            f"connections     {stats.connections}  (event streams {stats.streams})\n"
            f"users           {stats.users}  (online {stats.users_online})\n"
            f"messages        {stats.messages}  ({stats.messages_per_second:.2f}/s)\n"
            f"database        {format_size(stats.storage_bytes)}\n"
            f"files           {format_size(stats.files_bytes)}\n"
            f"{_loop_lag_line(stats.loop_lag)}"
        )
        try:
            target = self.query_one("#stats-body", Static)
        except NoMatches:  # the screen closed while the timer's request was out
            return
        target.update(body)

    def show_settings(self, settings: Settings) -> None:
        """Fill the read-only settings table."""
        table = self.query_one("#settings-table", DataTable)
        table.clear()
        for name, value in sorted(settings.values.items()):
            table.add_row(name, "" if value is None else str(value))

    # --- actions ------------------------------------------------------------------

    def chosen_ban_seconds(self) -> int | None:
        """The ban length typed above the tabs, in whole seconds (None if it is not valid)."""
        try:
            hours = float(self.query_one("#ban-hours", Input).value)
        except ValueError:
            return None
        seconds = round(hours * 3600)
        return seconds if 0 < seconds <= 10 * 365 * 86400 else None

    def _selected_complaint(self) -> Complaint | None:
        table = self.query_one("#complaints-table", DataTable)
        if not self.complaints or table.cursor_row < 0:
            return None
        return self.complaints[min(table.cursor_row, len(self.complaints) - 1)]

    def _selected_login(self) -> str | None:
        table = self.query_one("#users-table", DataTable)
        if not self.user_logins or table.cursor_row < 0:
            return None
        return self.user_logins[min(table.cursor_row, len(self.user_logins) - 1)]

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        match event.button.id:
            case "complaint-dismiss":
                if (c := self._selected_complaint()) is not None:
                    self._act("dismiss", str(c.id))
            case "complaint-ban":
                if (c := self._selected_complaint()) is not None:
                    self._act("ban", c.target)
            case "complaint-unban":
                if (c := self._selected_complaint()) is not None:
                    self._act("unban", c.target)
            case "user-ban":
                if (login := self._selected_login()) is not None:
                    self._act("ban", login)
            case "user-unban":
                if (login := self._selected_login()) is not None:
                    self._act("unban", login)
            case _:
                pass

    @work(group="admin-act")
    async def _act(self, action: str, what: str) -> None:
        try:
            match action:
                case "dismiss":
                    await self.api.admin_dismiss(int(what))
                    self.notify(f"Complaint #{what} dismissed")
                case "ban":
                    seconds = self.chosen_ban_seconds()
                    if seconds is None:
                        self.notify("The ban length must be a number of hours", severity="error")
                        return
                    user = await self.api.admin_ban(what, seconds, "banned by an admin")
                    self.notify(f"{what} banned until {_until(user.banned_until, self.tz)}")
                case _:
                    await self.api.admin_unban(what)
                    self.notify(f"{what} unbanned")
        except MessengerError as exc:
            self._failed(exc)
            return
        self._load_all()


def _loop_lag_line(lag: LoopLag) -> str:
    """The server's event-loop lag of the last minute: how long a request waited for it."""
    if not lag.recent_samples:  # a server without the meter, or just started
        return "loop lag        -"
    return (
        f"loop lag        p50 {format_latency(lag.recent_p50_ms)}"
        f"  p99 {format_latency(lag.recent_p99_ms)}"
        f"  max {format_latency(lag.recent_max_ms)}  (last {format_duration(lag.recent_seconds)})"
    )


def _until(ts: float | None, tz: tzinfo | None) -> str:
    return "-" if ts is None else format_time(ts, now=time.time(), tz=tz, relative=True)


def _short(text: str, most: int = 60) -> str:
    """A quoted text on one line of the complaint table (cut with … past ``most``)."""
    line = " ".join(text.split())
    return line if len(line) <= most else line[: most - 1] + "…"
