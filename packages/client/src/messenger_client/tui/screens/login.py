"""The login/register screen: server, login, password, "remember me"."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Input, Label, Static

from messenger_protocol import limits

from ..messages import LoginRequested
from ..robust import Guarded
from ..widgets.footer import KeysFooter

__all__ = ["LoginScreen", "server_url"]


def server_url(text: str) -> str | None:
    """``host:port`` or a URL as a base URL, or None if it is not one."""
    text = text.strip()
    if not text:
        return None
    parts = urlsplit(text if "://" in text else f"http://{text}")
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.hostname}:{port or limits.DEFAULT_PORT}"


def server_label(url: str) -> str:
    """``host:port`` of a base URL (what the server field shows)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or limits.DEFAULT_PORT}"


class LoginScreen(Guarded, Screen[None]):
    """Log in or register; errors show under the form.

    Keys typed in a burst (a password manager's autotype: login, Tab, password, Enter)
    land where they were aimed: the first field has focus from the moment the form
    exists (``AUTO_FOCUS``, not a focus call that waits its turn behind the typed keys:
    the login, or the password when the login is known),
    and Tab moves on in the order the keys came (a priority binding, run as the app
    reads the key, not after the characters before it were forwarded to a field).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "register", "Register", id="login.register",
                tooltip="Create the account and log in"),
        Binding("ctrl+q", "app.quit", "Quit", id="login.quit"),
        Binding("tab", "app.focus_next", "Next field", show=False, priority=True,
                id="login.next"),
        Binding("shift+tab", "app.focus_previous", "Previous field", show=False,
                priority=True, id="login.previous"),
    ]  # fmt: skip
    AUTO_FOCUS = ".first-field"

    def __init__(self, server: str, login: str = "", error: str = "") -> None:
        super().__init__()
        self._server = server
        self._login = login
        self._error = error

    def compose(self) -> ComposeResult:
        """The form."""
        with Vertical(id="login-form"):
            yield Static("messenger", id="login-title")
            yield Label("Server (host:port)")
            yield Input(server_label(self._server), id="server")
            yield Label("Login")
            first = "first-field"
            yield Input(self._login, placeholder="letters, digits, _ . -", id="login",
                        max_length=limits.MAX_LOGIN,
                        classes="" if self._login else first)  # fmt: skip
            yield Label("Password")
            yield Input(placeholder=f"at least {limits.MIN_PASSWORD} characters", password=True,
                        id="password", max_length=limits.MAX_PASSWORD,
                        classes=first if self._login else "")  # fmt: skip
            yield Checkbox("Remember me on this computer", True, id="remember")
            with Horizontal(id="login-buttons"):
                yield Button("Log in", variant="primary", id="do-login")
                yield Button("Register", id="do-register")
            yield Static(self._error, id="login-error")
        yield KeysFooter()

    def show_error(self, text: str) -> None:
        """Show why logging in failed, and let the user try again."""
        self.query_one("#login-error", Static).update(text)
        self.set_busy(False)

    def set_busy(self, busy: bool) -> None:
        """Disable the buttons while a request is under way."""
        for button in self.query(Button):
            button.disabled = busy
        if busy:
            self.query_one("#login-error", Static).update("Connecting…")

    def _request(self, register: bool) -> None:
        server = server_url(self.query_one("#server", Input).value)
        login = self.query_one("#login", Input).value.strip()
        password = self.query_one("#password", Input).value
        if server is None:
            self.show_error("The server must look like host:port, e.g. 127.0.0.1:8000")
            return
        if not login:
            self.show_error("Enter your login")
            self.query_one("#login", Input).focus()
            return
        if len(password) < limits.MIN_PASSWORD:
            self.show_error(f"The password needs at least {limits.MIN_PASSWORD} characters")
            self.query_one("#password", Input).focus()
            return
        self.set_busy(True)
        remember = self.query_one("#remember", Checkbox).value
        self.post_message(
            LoginRequested(server, login, password, register=register, remember=remember)
        )

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "server":
            self.query_one("#login", Input).focus()
        elif event.input.id == "login":
            self.query_one("#password", Input).focus()
        else:
            self._request(register=False)

    @on(Button.Pressed, "#do-login")
    def _login_pressed(self) -> None:
        self._request(register=False)

    @on(Button.Pressed, "#do-register")
    def _register_pressed(self) -> None:
        self._request(register=True)

    def action_register(self) -> None:
        """Register with what is typed."""
        self._request(register=True)
