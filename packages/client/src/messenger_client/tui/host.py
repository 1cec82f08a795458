"""The app as its screens, widgets and helpers know it.

They import this module, never the app module (an import contract in pyproject.toml
says so): :class:`Host` names what they may use of the app -- the session's client,
the store, the main screen and a few calls -- and :class:`~messenger_client.tui.app.
MessengerApp` is the one class that provides it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events
from textual.app import App

from .robust import Guarded

if TYPE_CHECKING:
    from messenger_protocol import Chat, Session

    from .. import commands as slash
    from ..api import Client
    from ..events import ConnectionState
    from .devices import DeviceTrust
    from .e2ee import Encryption
    from .finding import Finding
    from .groups import Groups
    from .receipts import Receipts
    from .screens.main import MainScreen
    from .store import ChatStore
    from .threads import Threads

__all__ = ["Host", "TakesEarlyKeys"]


class TakesEarlyKeys:
    """A screen that types the keys which arrive before its field has the focus (the
    rest of a burst that opened it: ``/`` and the words to search)."""

    def take_early_key(self, event: events.Key) -> bool:
        """Type ``event`` if the screen's field cannot yet (True: it is taken)."""
        return False


class Host(Guarded, App[None]):
    """What screens and widgets may use of the app (the app module subclasses it)."""

    client: Client | None
    """The logged-in session's client (None while logged out)."""
    store: ChatStore | None
    """What the session knows: chats, timelines, users."""
    main: MainScreen | None
    """The main screen of the session."""
    runner: slash.CommandRunner | None
    """The session's slash-command runner."""
    connection: ConnectionState
    """The live connection's state."""
    server: str
    """The server's base URL."""
    threads: Threads
    """The thread panel's contents and the threads' read state."""
    groups: Groups
    """Join requests and group membership as live events change them."""
    finding: Finding
    """Search, the Mentions view, and jumps to a message."""
    receipts: Receipts
    """Typing notices and "seen by"."""
    trust: DeviceTrust
    """Verifying devices; new-device and changed-key notices (issue 14)."""
    e2ee: Encryption | None
    """The session's device keys and encrypted chats (None while logged out)."""

    async def on_event(self, event: events.Event) -> None:
        """A printable key meant for the composer while a list has focus moves the focus
        there before the key is handed on (:meth:`MainScreen.steer_key`): here, in the
        order keys arrive, so none of a burst is taken by the list."""
        if isinstance(event, events.Key) and not event.is_forwarded:
            main, screen = self.main, self.screen
            if main is screen:
                if main.steer_key(event):
                    return
            elif isinstance(screen, TakesEarlyKeys) and screen.take_early_key(event):
                return
        await super().on_event(event)

    async def known_session(self) -> Session | None:
        """This session as a login answers it (asked of the server after a resume)."""
        raise NotImplementedError

    def open_chat(self, chat_id: int, *, connect: bool = False) -> None:
        """Show a chat (and bring it up to date)."""
        raise NotImplementedError

    def refresh_chat_list(self) -> None:
        """Redraw the chat list from the store."""
        raise NotImplementedError

    def run_command(self, parsed: slash.ParsedCommand, chat_id: int) -> None:
        """Do what a composer line asks, in ``chat_id``."""
        raise NotImplementedError

    def chats(self) -> list[Chat]:
        """Chats in list order."""
        raise NotImplementedError

    # The app's actions that the command palette offers.

    def action_help_screen(self, query: str = "") -> None:
        """The help screen (F1)."""
        raise NotImplementedError

    def action_status(self) -> None:
        """The status screen (F2)."""
        raise NotImplementedError

    def action_next_chat(self) -> None:
        """Open the next chat in the list."""
        raise NotImplementedError

    def action_previous_chat(self) -> None:
        """Open the previous chat in the list."""
        raise NotImplementedError

    def action_next_active(self) -> None:
        """Open the next chat with unread messages."""
        raise NotImplementedError

    def action_switch_chat(self) -> None:
        """The chat switcher."""
        raise NotImplementedError
