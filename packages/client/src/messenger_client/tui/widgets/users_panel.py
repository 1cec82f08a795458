"""The people panel: everyone on the server, online first, contacts marked; Enter or a
click opens a private conversation, ``+``/``-`` add or remove a contact, ``v`` shows
their devices to verify one."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message as TextualMessage
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from messenger_protocol import Contact, User

from ..robust import Guarded

__all__ = ["UsersPanel", "last_seen"]

_ONLINE = Style(color="#98c379")
_OFFLINE = Style(color="#5c6370")


def last_seen(ts: float | None, now: float | None = None) -> str:
    """``just now``, ``5m ago``, ``3h ago``, ``2d ago`` or ``never``."""
    if ts is None:
        return "never"
    seconds = max(0.0, (time.time() if now is None else now) - ts)
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    raise AssertionError("unreachable")


class UsersPanel(Guarded, OptionList):
    """Users and contacts with presence; posts the user's choices."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="users.down"),
        Binding("k", "cursor_up", "Up", show=False, id="users.up"),
        Binding("g", "first", "First", show=False, id="users.first"),
        Binding("G", "last", "Last", show=False, id="users.last"),
        Binding("plus", "add_contact", "Add contact", id="users.add_contact",
                tooltip="Add the highlighted user to your contacts"),
        Binding("minus,delete", "remove_contact", "Remove contact", id="users.remove_contact",
                tooltip="Remove the highlighted user from your contacts"),
        Binding("v", "verify", "Devices", id="users.verify",
                tooltip="The highlighted user's devices: verify one by comparing emoji"),
    ]  # fmt: skip

    class UserChosen(TextualMessage):
        """Open a private conversation with ``login``."""

        def __init__(self, login: str) -> None:
            super().__init__()
            self.login = login

    class ContactAction(TextualMessage):
        """Add (``add`` True) or remove ``login`` as a contact."""

        def __init__(self, login: str, add: bool) -> None:
            super().__init__()
            self.login = login
            self.add = add

    class VerifyWanted(TextualMessage):
        """Show ``login``'s devices, to verify one."""

        def __init__(self, login: str) -> None:
            super().__init__()
            self.login = login

    def __init__(self, me: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.me = me
        self.logins: list[str] = []

    def update_users(self, users: dict[str, User], contacts: dict[str, Contact]) -> None:
        """Redraw: contacts first, then online users, then the rest."""
        everyone = dict(users)
        for login, contact in contacts.items():
            if login not in everyone:
                everyone[login] = User(login, online=contact.online, last_seen=contact.last_seen)
        people = sorted(
            (u for u in everyone.values() if u.login != self.me),
            key=lambda u: (u.login not in contacts, not u.online, u.login.lower()),
        )
        highlighted = self.highlighted_option.id if self.highlighted_option else None
        self.logins = [u.login for u in people]
        self.set_options([Option(self._row(u, u.login in contacts), id=u.login) for u in people])
        if highlighted in self.logins:
            self.highlighted = self.logins.index(highlighted)
        elif self.logins:
            # Enter must do something from the start: open a chat with the first person.
            self.highlighted = 0

    def _row(self, user: User, contact: bool) -> Table:
        left = Text(no_wrap=True, overflow="ellipsis")
        left.append("● " if user.online else "○ ", _ONLINE if user.online else _OFFLINE)
        left.append(user.login, "bold" if contact else "")
        if contact:
            left.append(" ★", "#e5c07b")
        right = Text("online" if user.online else last_seen(user.last_seen), "dim")
        grid = Table.grid(expand=True, padding=0)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        grid.add_row(left, right)
        return grid

    def _highlighted_login(self) -> str | None:
        option = self.highlighted_option
        return option.id if option is not None else None

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Open a private conversation with the chosen user."""
        event.stop()
        if event.option.id is not None:
            self.post_message(self.UserChosen(event.option.id))

    def action_add_contact(self) -> None:
        """Add the highlighted user to the contacts."""
        login = self._highlighted_login()
        if login is not None:
            self.post_message(self.ContactAction(login, add=True))

    def action_remove_contact(self) -> None:
        """Remove the highlighted user from the contacts."""
        login = self._highlighted_login()
        if login is not None:
            self.post_message(self.ContactAction(login, add=False))

    def action_verify(self) -> None:
        """The highlighted user's devices, to verify one."""
        login = self._highlighted_login()
        if login is not None:
            self.post_message(self.VerifyWanted(login))
