"""Messages that screens post to the app (which owns the client and its workers)."""

from __future__ import annotations

from textual.message import Message

from messenger_protocol import Attachment

__all__ = ["FileUploaded", "LoginRequested", "OpenChat", "OpenDirect", "ShowStatus"]


class LoginRequested(Message):
    """The login screen asks to log in (or register) on ``server``."""

    def __init__(
        self, server: str, login: str, password: str, *, register: bool, remember: bool
    ) -> None:
        super().__init__()
        self.server = server
        self.login = login
        self.password = password
        self.register = register
        self.remember = remember


class OpenChat(Message):
    """Open a chat by id (chat switcher, command palette)."""

    def __init__(self, chat_id: int) -> None:
        super().__init__()
        self.chat_id = chat_id


class OpenDirect(Message):
    """Open (or start) the private conversation with ``login``."""

    def __init__(self, login: str) -> None:
        super().__init__()
        self.login = login


class ShowStatus(Message):
    """Show the status screen."""


class FileUploaded(Message):
    """A file is on the server: post it to ``chat_id`` as a message (through the outbox,
    like text: pending at once, retried while offline)."""

    def __init__(self, chat_id: int, attachment: Attachment) -> None:
        super().__init__()
        self.chat_id = chat_id
        self.attachment = attachment
