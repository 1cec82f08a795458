"""The devices screen and the verification screen (issue 14).

:class:`DevicesScreen` lists a user's devices as this device knows them (verified,
unverified, keys changed); Enter or a click on one verifies it. :class:`VerifyScreen`
follows one verification (the library's state machine,
:data:`messenger_client.verification.TRANSITIONS`, says where it is; this screen only
shows it): waiting for the other device, the request to accept, the seven emoji with
their names (and the same as three numbers) with "They match" / "They don't match",
and the end -- verified, or cancelled and why. Closing it while the verification is
still open cancels it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, Static
from textual.widgets.option_list import Option

from ...trust import DeviceInfo, VerificationState, VerificationUpdate
from .. import host
from ..messages import VerificationChanged
from ..robust import Guarded

if TYPE_CHECKING:
    from ..devices import DeviceTrust

__all__ = ["DevicesScreen", "VerifyScreen", "emoji_table"]

_OPEN: tuple[VerificationState, ...] = (
    "requested", "incoming", "ready", "key_sent", "showing", "confirmed", "their_mac",
)  # fmt: skip

_BUTTONS: dict[VerificationState | None, tuple[str, ...]] = {
    None: ("verify-cancel",),
    "requested": ("verify-cancel",),
    "incoming": ("verify-accept", "verify-cancel"),
    "ready": ("verify-cancel",),
    "key_sent": ("verify-cancel",),
    "showing": ("verify-match", "verify-mismatch"),
    "confirmed": ("verify-mismatch",),
    "their_mac": ("verify-match", "verify-mismatch"),
    "verified": ("verify-close",),
    "cancelled": ("verify-close",),
}
"""Which buttons each state of the verification offers."""


def emoji_table(update: VerificationUpdate) -> Table:
    """The seven emoji over their names, one column each."""
    grid = Table.grid(padding=(0, 1), expand=True)
    for _ in update.emoji:
        grid.add_column(justify="center", ratio=1)
    grid.add_row(*(Text(e, style="bold") for e in update.emoji))
    grid.add_row(*(Text(name, style="dim") for name in update.emoji_names))
    return grid


class VerifyScreen(Guarded, ModalScreen[None]):
    """One verification with one device of one user, as it goes."""

    DEFAULT_CSS = """
    VerifyScreen { align: center middle; }
    VerifyScreen #verify-panel {
        width: 84; height: auto; border: thick $primary; background: $surface; padding: 1 2;
    }
    VerifyScreen #verify-state { margin-bottom: 1; }
    VerifyScreen #verify-emoji { height: auto; margin-bottom: 1; }
    VerifyScreen #verify-numbers { color: $text-muted; margin-bottom: 1; }
    VerifyScreen #verify-error { color: $error; }
    VerifyScreen #verify-buttons { height: auto; align-horizontal: right; }
    VerifyScreen Button { margin-left: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="verify.close",
                tooltip="Close (an open verification is cancelled)"),
    ]  # fmt: skip

    def __init__(
        self, login: str, device_id: str | None, update: VerificationUpdate | None = None
    ) -> None:
        super().__init__()
        self.login = login
        self.device_id = device_id
        """The other device (None until the library picks the only unverified one)."""
        self.update_: VerificationUpdate | None = update
        self.title_label = Label("", id="verify-title", classes="pane-title")
        self.state_line = Static("", id="verify-state")
        self.emoji = Static("", id="verify-emoji")
        self.numbers = Static("", id="verify-numbers")
        self.error_line = Static("", id="verify-error")
        self.error = ""
        """Why the last step was refused ("" : it was not)."""

    @property
    def state(self) -> VerificationState | None:
        """Where the verification is (None: not started yet)."""
        return self.update_.state if self.update_ is not None else None

    def shows(self, login: str, device_id: str | None) -> bool:
        """Whether this screen follows that device's verification."""
        return login == self.login and (
            self.device_id is None or device_id is None or device_id == self.device_id
        )

    def compose(self) -> ComposeResult:
        """Title, where it is, the emoji, the numbers, the buttons."""
        with Vertical(id="verify-panel"):
            yield self.title_label
            yield self.state_line
            yield self.emoji
            yield self.numbers
            yield self.error_line
            with Horizontal(id="verify-buttons"):
                yield Button("Accept", id="verify-accept", variant="primary")
                yield Button("They match", id="verify-match", variant="success")
                yield Button("They don't match", id="verify-mismatch", variant="error")
                yield Button("Cancel", id="verify-cancel")
                yield Button("Close", id="verify-close")

    def on_mount(self) -> None:
        """Show where the verification is."""
        self._redraw()

    def _whose(self) -> str:
        device = self.device_id or "(the unverified one)"
        app = self.app
        store = app.store if isinstance(app, host.Host) else None
        if store is not None and store.me == self.login:
            return f"your device {device}"
        return f"{self.login}'s device {device}"

    def _redraw(self) -> None:
        update, whose = self.update_, self._whose()
        self.title_label.update(f"Verify {whose}")
        texts: dict[VerificationState | None, str] = {
            None: f"Asking {whose} to verify…",
            "requested": f"Waiting for {whose} to accept (it sees a request).",
            "incoming": f"{whose} asks to verify this device. Accept, then compare the"
            " emoji both devices show.",
            "ready": "Exchanging keys…",
            "key_sent": "Exchanging keys…",
            "showing": f"Do these emoji, in this order, show on {whose}?",
            "confirmed": f"You said they match. Waiting for {whose} to say so too…",
            "their_mac": f"{self.login} says they match. Do you see the same?",
            "verified": f"✔ {whose} is verified: messages to and from it are trusted.",
            "cancelled": "Not verified: "
            + (update.reason if update is not None and update.reason else "cancelled"),
        }
        self.state_line.update(texts[self.state])
        with_emoji = update is not None and bool(update.emoji) and self.state in (
            "showing", "confirmed", "their_mac",
        )  # fmt: skip
        self.emoji.display = self.numbers.display = with_emoji
        if with_emoji and update is not None:
            self.emoji.update(emoji_table(update))
            numbers = "  ".join(str(n) for n in update.decimals)
            self.numbers.update(f"or compare the numbers  {numbers}")
        self.error_line.update(self.error)
        self.error_line.display = bool(self.error)
        wanted = _BUTTONS[self.state]
        for button in self.query(Button):
            button.display = button.id in wanted
        focus = {"incoming": "#verify-accept", "verified": "#verify-close",
                 "cancelled": "#verify-close"}.get(self.state or "")  # fmt: skip
        if focus is not None:
            self.query_one(focus, Button).focus()
        elif self.state in ("showing", "their_mac"):
            self.query_one("#verify-mismatch", Button).focus()  # a stray Enter trusts nothing

    @on(VerificationChanged)
    def _changed(self, event: VerificationChanged) -> None:
        event.stop()
        update = event.verification
        if update is None:
            self.error = event.error
            self.error_line.update(event.error)
            self.error_line.display = True
            if self.state is None:  # it never started: nothing to wait for
                self.state_line.update(f"Not started: {event.error}")
                for button in self.query(Button):
                    button.display = button.id == "verify-close"
            return
        if not self.shows(update.login, update.device_id):
            return
        self.device_id = update.device_id
        self.update_ = update
        self.error = ""
        self._redraw()

    def _trust(self) -> DeviceTrust | None:
        app = self.app
        return app.trust if isinstance(app, host.Host) else None

    @on(Button.Pressed, "#verify-accept")
    def _accept(self) -> None:
        trust = self._trust()
        if trust is not None:
            trust.accept(self.login, self.device_id)

    @on(Button.Pressed, "#verify-match")
    def _match(self) -> None:
        trust = self._trust()
        if trust is not None:
            trust.confirm(self.login, self.device_id)

    @on(Button.Pressed, "#verify-mismatch")
    @on(Button.Pressed, "#verify-cancel")
    def _mismatch(self) -> None:
        trust = self._trust()
        if trust is not None:
            trust.mismatch(self.login, self.device_id)

    @on(Button.Pressed, "#verify-close")
    def action_close(self) -> None:
        """Close; a verification still open is cancelled."""
        trust = self._trust()
        if trust is not None and self.state in _OPEN:
            trust.mismatch(self.login, self.device_id)
        self.dismiss(None)


class DevicesScreen(Guarded, ModalScreen[str | None]):
    """A user's devices; Enter or a click verifies one (dismissed with its id)."""

    DEFAULT_CSS = """
    DevicesScreen { align: center middle; }
    DevicesScreen #devices-panel {
        width: 84; height: auto; max-height: 80%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    DevicesScreen OptionList { height: auto; max-height: 16; margin: 1 0; }
    DevicesScreen #devices-buttons { height: auto; align-horizontal: right; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="devices.close"),
    ]

    def __init__(self, login: str, devices: list[DeviceInfo]) -> None:
        super().__init__()
        self.login = login
        self.devices = devices

    def compose(self) -> ComposeResult:
        """The devices, marked; a hint; Close."""
        with Vertical(id="devices-panel"):
            yield Label(f"Devices of {self.login}", classes="pane-title")
            options = [
                Option(self._row(d), id=d.device_id, disabled=d.current) for d in self.devices
            ]
            yield OptionList(*options, id="devices-list")
            hint = "Enter or a click on a device compares emoji with it, to verify it"
            yield Label(hint if self.devices else f"{self.login} has no device with keys")
            with Horizontal(id="devices-buttons"):
                yield Button("Close", id="devices-close")

    def on_mount(self) -> None:
        """Start on the first device that is not this one."""
        listing = self.query_one(OptionList)
        listing.focus()
        for n, device in enumerate(self.devices):
            if not device.current:
                listing.highlighted = n
                break

    def _row(self, device: DeviceInfo) -> Text:
        fingerprint = " ".join(device.ed25519[i : i + 4] for i in range(0, 24, 4))
        if device.current:
            mark, style = "● this device", "dim"
        elif device.key_changed:
            mark, style = "⚠ KEYS CHANGED", "bold red"
        elif device.verified:
            mark, style = "✔ verified", "green"
        else:
            mark, style = "○ not verified", "yellow"
        row = Text(no_wrap=True, overflow="ellipsis")
        row.append(f"{mark:<16}", style)
        row.append(f"{device.device_id:<18}", "bold")
        row.append(f" {fingerprint}…", "dim")
        return row

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    @on(Button.Pressed, "#devices-close")
    def action_close(self) -> None:
        """Close without verifying."""
        self.dismiss(None)
