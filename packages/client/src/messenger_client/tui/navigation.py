"""Moving between chats with keys and the palette: next, previous, next with unread,
the chat switcher.

:class:`ChatNavigation` is the part of the app that steps through the chats in list
order (the order the chat list shows).
"""

from __future__ import annotations

from textual.command import CommandPalette

from messenger_protocol import Chat

from .commands import ChatsProvider
from .host import Host

__all__ = ["ChatNavigation"]


class ChatNavigation:
    """Chat to chat, in list order, for one app."""

    def __init__(self, app: Host) -> None:
        self.app = app

    def chats(self) -> list[Chat]:
        """Chats in list order."""
        store = self.app.store
        return store.sorted_chats() if store is not None else []

    def step(self, step: int) -> None:
        """Open the chat ``step`` places down the list (up when negative), round."""
        order = [c.id for c in self.chats()]
        main = self.app.main
        if not order or main is None:
            return
        index = order.index(main.current_chat) if main.current_chat in order else 0
        self.app.open_chat(order[(index + step) % len(order)])

    def next_active(self) -> None:
        """Open the next chat with unread messages."""
        store, main = self.app.store, self.app.main
        if store is None or main is None:
            return
        order = [c.id for c in self.chats()]
        start = order.index(main.current_chat) if main.current_chat in order else -1
        for offset in range(1, len(order) + 1):
            chat_id = order[(start + offset) % len(order)]
            if store.chats[chat_id].unread and chat_id != main.current_chat:
                self.app.open_chat(chat_id)
                return
        self.app.notify("No unread messages", timeout=2)

    def switcher(self) -> None:
        """The chat switcher: chats and people by name."""
        palette = CommandPalette(providers=[ChatsProvider], placeholder="Go to chat or person…")
        self.app.push_screen(palette)
