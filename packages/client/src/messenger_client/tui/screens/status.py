"""The status screen (``/status``, F2): connections, counts, chats, login history."""

from __future__ import annotations

import time
from datetime import tzinfo
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from messenger_protocol import Status, format_time

from ..robust import Guarded

__all__ = ["StatusScreen", "render_status"]


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", expand=True,
                  box=None, header_style="dim", pad_edge=False)  # fmt: skip
    for column in columns:
        table.add_column(column)
    return table


def render_status(status: Status, tz: tzinfo | None = None) -> RenderableType:
    """Everything ``/status`` says, as tables."""
    user = status.user
    head = Text()
    head.append(user.login, "bold")
    if user.is_admin:
        head.append("  admin", "#e5c07b")
    head.append(f"\nprivate messages: {status.private_sent} sent, "
                f"{status.private_received} received")  # fmt: skip
    if status.banned_until:
        until = format_time(status.banned_until, now=time.time(), tz=tz, relative=True)
        head.append(f"\nbanned from sending until {until}", "#e06c75")
    if status.session_expires_at is not None:
        expires = format_time(status.session_expires_at, now=time.time(), tz=tz, relative=True)
        head.append(f"\nthis session expires {expires} if left unused", "dim")
    connections = _table("Connections", "address", "device", "since", "")
    for c in status.connections:
        marks = ("this one " if c.current else "") + ("live" if c.streaming else "")
        connections.add_row(c.address, c.device or "-", format_time(c.connected_at, tz=tz), marks)
    owned = _table("Chats you own", "chat", "members", "invite links", "requests")
    for o in status.owned_chats:
        links = ", ".join(link.link for link in o.links) or "-"
        requests = ", ".join(r.login for r in o.pending_requests) or "-"
        owned.add_row(o.chat.name, str(o.chat.members), links, requests)
    member = _table("Chats you are in", "chat", "kind", "unread")
    for chat in status.member_chats:
        member.add_row(chat.name, chat.kind, str(chat.unread or ""))
    logins = _table("Login history", "time", "address", "device", "result")
    for record in status.logins[-20:]:
        logins.add_row(format_time(record.at, tz=tz), record.address, record.device or "-",
                       "ok" if record.success else "failed")  # fmt: skip
    parts: list[RenderableType] = [head, Text(""), connections, Text("")]
    if status.owned_chats:
        parts += [owned, Text("")]
    parts += [member, Text(""), logins]
    return Group(*parts)


class StatusScreen(Guarded, ModalScreen[None]):
    """A modal with the user's status; Esc closes, r reloads."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="status.close"),
        Binding("r", "app.status", "Reload", id="status.reload"),
    ]

    def __init__(self, status: Status | None = None, tz: tzinfo | None = None) -> None:
        super().__init__()
        self._status = status
        self._tz = tz

    def compose(self) -> ComposeResult:
        """A scrollable panel."""
        with VerticalScroll(id="status-panel"):
            yield Static(self._body(), id="status-body")
        yield Footer()

    def _body(self) -> RenderableType:
        if self._status is None:
            return Text("Loading…", "dim")
        return render_status(self._status, self._tz)

    def show_status(self, status: Status) -> None:
        """Show a fresh status."""
        self._status = status
        self.query_one("#status-body", Static).update(self._body())

    def show_error(self, text: str) -> None:
        """The status could not be loaded."""
        self.query_one("#status-body", Static).update(Text(text, "#e06c75"))

    async def action_dismiss(self, result: None = None) -> None:
        """Close."""
        self.dismiss(result)
