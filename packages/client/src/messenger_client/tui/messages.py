"""Messages between the app and its screens.

Screens post what the user does to the app (which owns the client and its workers);
the app's parts post what the store learned to the main screen, which redraws its
widgets (the parts never call into widgets)."""

from __future__ import annotations

from textual.message import Message

from messenger_protocol import Attachment, Chat, Contact, User
from messenger_protocol import Message as ChatMessage

from ..trust import VerificationUpdate

__all__ = [
    "BanChanged",
    "ChatsChanged",
    "FileUploaded",
    "LoginRequested",
    "OpenChat",
    "OpenDirect",
    "PeopleChanged",
    "RateLimited",
    "ReceiptArrived",
    "SeenByChanged",
    "ShowStatus",
    "ThreadChanged",
    "TrustChanged",
    "TypingChanged",
    "VerificationChanged",
]


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


# --- what the store learned, to the main screen --------------------------------------


class ChatsChanged(Message):
    """The chat list changed (order, names, unread counts, presence of private peers)."""

    def __init__(
        self, chats: list[Chat], presence: dict[str, User], encrypted: frozenset[int] = frozenset()
    ) -> None:
        super().__init__()
        self.chats = chats
        """Chats in list order."""
        self.presence = presence
        """Users as shown (nobody online while disconnected)."""
        self.encrypted = encrypted
        """Chats that are end-to-end encrypted (shown with a lock)."""


class PeopleChanged(Message):
    """Who is online, or the contacts, changed."""

    def __init__(self, presence: dict[str, User], contacts: dict[str, Contact]) -> None:
        super().__init__()
        self.presence = presence
        """Users as shown (nobody online while disconnected)."""
        self.contacts = contacts


class ThreadChanged(Message):
    """A thread's root changed (its comment count): the panel's title follows."""

    def __init__(self, root: ChatMessage) -> None:
        super().__init__()
        self.root = root


class BanChanged(Message):
    """The user's ban started, changed or ended (``until`` None): the banner follows."""

    def __init__(self, until: float | None, reason: str = "") -> None:
        super().__init__()
        self.until = until
        self.reason = reason


class RateLimited(Message):
    """A send was refused for the rate limit: the wait shows for ``retry_after`` s."""

    def __init__(self, retry_after: float) -> None:
        super().__init__()
        self.retry_after = retry_after


class TypingChanged(Message):
    """Who is typing in a chat changed: the typing line under its timeline follows."""

    def __init__(self, chat_id: int, expires: dict[str, float]) -> None:
        super().__init__()
        self.chat_id = chat_id
        self.expires = expires
        """Login -> when their typing notice expires."""


class SeenByChanged(Message):
    """Who has read a message, as the server said (for the "seen by" line)."""

    def __init__(self, message_id: int, seen_by: list[str], members: int) -> None:
        super().__init__()
        self.message_id = message_id
        self.seen_by = seen_by
        self.members = members


class TrustChanged(Message):
    """What this device knows of other devices changed: the line above the timeline
    (a new device, changed keys, a verification request) and the verified mark in the
    title of a private chat follow."""

    def __init__(self, lines: dict[int | None, str], verified: frozenset[str]) -> None:
        super().__init__()
        self.lines = lines
        """Chat id -> its one-line notice (None: shown in every chat)."""
        self.verified = verified
        """Users every device of whom this device verified."""


class VerificationChanged(Message):
    """A verification with another device moved on, or a step of it was refused
    (``error``): to its screen."""

    def __init__(self, update: VerificationUpdate | None = None, error: str = "") -> None:
        super().__init__()
        self.verification = update
        self.error = error


class ReceiptArrived(Message):
    """A member read ``chat_id`` (or its thread ``thread_root``) up to ``up_to`` (a
    ``receipt`` event): a "seen by" on screen for a message up to there is asked again."""

    def __init__(self, chat_id: int, login: str, up_to: int, thread_root: int | None) -> None:
        super().__init__()
        self.chat_id = chat_id
        self.login = login
        self.up_to = up_to
        self.thread_root = thread_root
