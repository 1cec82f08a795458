"""The top bar: who is logged in where, and the state of the live connection."""

from __future__ import annotations

import time

from rich.text import Text
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget

from messenger_protocol import format_duration

from ...events import ConnectionState
from ..robust import Guarded

__all__ = ["ConnectionBar"]


class ConnectionBar(Guarded, Widget):
    """``messenger · alice @ 127.0.0.1:8000 · ● connected`` (or reconnecting in Ns)."""

    DEFAULT_CSS = """
    ConnectionBar {
        height: 1;
        dock: top;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """

    user: reactive[str] = reactive("")
    server: reactive[str] = reactive("")
    state: reactive[ConnectionState] = reactive(ConnectionState("connecting"))

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._retry_at = 0.0
        self._ticker: Timer | None = None

    def watch_state(self, state: ConnectionState) -> None:
        """Count down to the next reconnect attempt."""
        if state.state == "reconnecting":
            self._retry_at = time.monotonic() + state.in_seconds
            if self._ticker is None:
                self._ticker = self.set_interval(0.5, self.refresh)
        elif self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    @property
    def label(self) -> str:
        """The connection state in words."""
        state = self.state
        if state.state == "connected":
            return "● connected"
        if state.state == "reconnecting":
            left = max(0.0, self._retry_at - time.monotonic())
            return f"◌ reconnecting in {format_duration(left)}"
        if state.state == "offline":
            return "○ offline"
        return "◌ connecting…"

    def render(self) -> Text:
        """Title on the left, user and connection on the right."""
        label = self.label
        color = {"●": "#98c379", "○": "#e06c75"}.get(label[0], "#e5c07b")
        right = Text()
        if self.user:
            right.append(self.user, "bold")
            right.append(f" @ {self.server}  ", "dim")
        right.append(label, color)
        left = Text("messenger", "bold")
        gap = max(1, self.size.width - left.cell_len - right.cell_len)
        return left + Text(" " * gap) + right
