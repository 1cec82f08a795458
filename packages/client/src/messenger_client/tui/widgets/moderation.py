"""Moderation and time in the TUI: the banned banner and the rate-limit wait (both
count down to the moment sending works again), the scheduled-messages panel with
cancel buttons, and the fading of messages that are about to disappear."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import tzinfo
from typing import ClassVar, Protocol

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Static

from messenger_protocol import (
    ApiError,
    MessengerError,
    ScheduledList,
    ScheduledMessage,
    format_duration,
    format_time,
)

from ..robust import Guarded

__all__ = [
    "FADE_SECONDS",
    "Countdown",
    "ModerationBar",
    "ScheduledApi",
    "ScheduledPanel",
    "ScheduledScreen",
    "fade_level",
]

FADE_SECONDS = 300.0
"""A message starts fading this long before it disappears."""


def fade_level(disappears_at: float | None, now: float, window: float = FADE_SECONDS) -> float:
    """How faded a message is: 0 (normal) until ``window`` s before it goes, then up to 1."""
    if disappears_at is None:
        return 0.0
    left = disappears_at - now
    if left >= window:
        return 0.0
    return min(1.0, max(0.0, 1.0 - left / window))


class Countdown(Guarded, Static):
    """A one-line banner that counts down to a moment and hides itself when it is over."""

    def __init__(
        self,
        text: str,
        *,
        clock: Callable[[], float] = time.time,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__("", id=id, classes=classes)
        self.text = text
        self.clock = clock
        self.until: float | None = None
        self.reason = ""
        self.display = False

    def on_mount(self) -> None:
        """Tick once a second (hidden until started)."""
        self.set_interval(1.0, self.tick)
        self.tick()

    def start(self, until: float | None, reason: str = "") -> None:
        """Count down to ``until`` (None hides the banner)."""
        self.until, self.reason = until, reason
        self.tick()

    @property
    def active(self) -> bool:
        """Still counting."""
        return self.until is not None and self.until > self.clock()

    def tick(self) -> None:
        """Redraw the time left, or hide when it is over."""
        if not self.active:
            self.until = None
            self.display = False
            return
        assert self.until is not None
        why = f" ({self.reason})" if self.reason else ""
        self.update(f"{self.text}{why} -- {format_duration(self.until - self.clock())} left")
        self.display = True


class ModerationBar(Guarded, Vertical):
    """The banned banner and the rate-limit wait, above the composer."""

    DEFAULT_CSS = """
    ModerationBar { height: auto; }
    ModerationBar Countdown { height: 1; padding: 0 1; }
    ModerationBar #banned { background: $error 30%; color: $text; }
    ModerationBar #rate-wait { background: $warning 30%; color: $text; }
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, id: str | None = None) -> None:
        super().__init__(id=id)
        self.clock = clock
        # attributes, not queries: the app may call in before this is mounted
        self.banned_banner = Countdown("Banned from sending", clock=clock, id="banned")
        self.rate_wait = Countdown(
            "Rate limit reached: you can send again", clock=clock, id="rate-wait"
        )

    def compose(self) -> ComposeResult:
        """Two banners, both hidden at first."""
        yield self.banned_banner
        yield self.rate_wait

    def banned(self, until: float | None, reason: str = "") -> None:
        """Show (or, with None, hide) the banned banner."""
        self.banned_banner.start(until, reason)

    def rate_limited(self, retry_after: float) -> None:
        """Show how long until the general chat takes messages again."""
        self.rate_wait.start(self.clock() + retry_after)


class ScheduledPanel(Guarded, VerticalScroll):
    """Scheduled messages, one row each; pending ones have a Cancel button."""

    DEFAULT_CSS = """
    ScheduledPanel { height: auto; max-height: 20; }
    ScheduledPanel .scheduled-row { height: 3; }
    ScheduledPanel .scheduled-row Label { width: 1fr; padding: 1 1 0 1; }
    ScheduledPanel .scheduled-row Button { width: 12; }
    ScheduledPanel #scheduled-empty { padding: 1; color: $text-muted; }
    """

    class CancelRequested(Message):
        """The user pressed Cancel on a pending scheduled message."""

        def __init__(self, scheduled_id: int) -> None:
            super().__init__()
            self.scheduled_id = scheduled_id

    def __init__(
        self,
        items: list[ScheduledMessage] | None = None,
        *,
        chat_names: dict[int, str] | None = None,
        tz: tzinfo | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.items = list(items or [])
        self.chat_names = dict(chat_names or {})
        self.tz = tz
        # A Cancel's answer and its live event both rebuild the rows; one at a time,
        # or the second mounts rows whose ids the first has not removed yet.
        self._rebuilding = asyncio.Lock()

    def compose(self) -> ComposeResult:
        """The rows."""
        yield from self._rows()

    def _rows(self) -> list[Horizontal | Static]:
        if not self.items:
            return [Static("No scheduled messages", id="scheduled-empty")]
        rows: list[Horizontal | Static] = []
        for item in self.items:
            chat = self.chat_names.get(item.chat_id, f"chat {item.chat_id}")
            state = item.state + (f": {item.failure}" if item.failure else "")
            when = format_time(item.send_at, tz=self.tz)
            text = f"#{item.id}  {when}  {chat}  [{state}]  {item.text}"
            children: list[Label | Button] = [Label(text, markup=False)]
            if item.state == "pending":
                children.append(
                    Button("Cancel", id=f"cancel-{item.id}", variant="error", compact=True)
                )
            rows.append(Horizontal(*children, classes="scheduled-row", id=f"scheduled-{item.id}"))
        return rows

    async def show(self, items: list[ScheduledMessage]) -> None:
        """Replace the rows."""
        async with self._rebuilding:
            await self._rebuild(list(items))

    async def _rebuild(self, items: list[ScheduledMessage]) -> None:
        self.items = items
        await self.remove_children()
        await self.mount_all(self._rows())

    async def update_item(self, item: ScheduledMessage) -> None:
        """A scheduled message changed (event): replace or add its row."""
        async with self._rebuilding:
            others = [i for i in self.items if i.id != item.id]
            items = sorted([*others, item], key=lambda i: (i.state != "pending", i.send_at))
            await self._rebuild(items)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        button_id = event.button.id or ""
        if button_id.startswith("cancel-"):
            event.stop()
            self.post_message(self.CancelRequested(int(button_id.removeprefix("cancel-"))))


class ScheduledApi(Protocol):
    """What the scheduled screen needs of :class:`messenger_client.api.Client`."""

    async def scheduled(self) -> ScheduledList: ...
    async def cancel_scheduled(self, scheduled_id: int) -> ScheduledMessage: ...


class ScheduledScreen(Guarded, ModalScreen[None]):
    """A modal with the scheduled-messages panel (``/scheduled``); Esc closes.

    Cancel buttons call the server; :meth:`scheduled_changed` takes live updates.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="scheduled.close"),
        Binding("r", "reload", "Reload", id="scheduled.reload"),
    ]

    def __init__(
        self,
        api: ScheduledApi,
        *,
        chat_names: dict[int, str] | None = None,
        tz: tzinfo | None = None,
    ) -> None:
        super().__init__()
        self.api = api
        self._chat_names = chat_names
        self._tz = tz

    def compose(self) -> ComposeResult:
        """Title, panel, footer."""
        with Vertical(id="scheduled-box"):
            yield Label("Scheduled messages", classes="pane-title")
            yield ScheduledPanel(chat_names=self._chat_names, tz=self._tz, id="scheduled")
        yield Footer()

    def on_mount(self) -> None:
        """Load the list."""
        self.action_reload()

    @property
    def panel(self) -> ScheduledPanel:
        """The panel."""
        return self.query_one(ScheduledPanel)

    def action_reload(self) -> None:
        """Load the list from the server."""
        self._load()

    @work(exclusive=True, group="scheduled-load")
    async def _load(self) -> None:
        try:
            items = await self.api.scheduled()
        except MessengerError as exc:
            self.notify(_error_text(exc), severity="error")
            return
        await self.panel.show(items.scheduled)

    @on(ScheduledPanel.CancelRequested)
    def _cancel_requested(self, event: ScheduledPanel.CancelRequested) -> None:
        self._cancel(event.scheduled_id)

    @work(group="scheduled-cancel")
    async def _cancel(self, scheduled_id: int) -> None:
        try:
            item = await self.api.cancel_scheduled(scheduled_id)
        except MessengerError as exc:
            self.notify(_error_text(exc), severity="error")
            return
        await self.panel.update_item(item)
        self.notify(f"Scheduled #{scheduled_id} cancelled")

    async def scheduled_changed(self, item: ScheduledMessage) -> None:
        """A live ``scheduled`` event: show the new state."""
        await self.panel.update_item(item)

    async def action_dismiss(self, result: None = None) -> None:
        """Close."""
        self.dismiss(result)


def _error_text(exc: Exception) -> str:
    return exc.message if isinstance(exc, ApiError) else "Cannot reach the server"
