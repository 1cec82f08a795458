"""What a command or a live event produces: typed, tagged msgspec Structs.

Each UI renders these its own way (the TUI as notifications, tables and panels; the
plain console as lines). ``--json`` is one :func:`encode_output` per output: the
``kind`` tag and the fields below, data in fields (ids, keys, counts, states), every
moment as a :class:`Time` (Unix seconds and ISO 8601), also inside the protocol's models
an output carries (their time fields, named ``*_at``, ``*_until``, ``at`` and
``last_seen``, are Unix seconds in the model and a Time in the line). Outputs that are a line of
information subclass :class:`InfoOut` and keep a ``text`` summary for people; tables
subclass :class:`TableOut` and keep ``title``/``columns``/``rows`` for display.

docs/api.md ("`--json` output") lists every ``kind`` with its fields; a test keeps
that table and these classes equal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec

from messenger_protocol import (
    Attachment,
    Mention,
    Message,
    MessageVersion,
    Pin,
    Reaction,
    SearchHit,
    Status,
)

__all__ = [
    "ALL_OUTPUTS",
    "BanOut",
    "ChatOut",
    "ComplaintOut",
    "ConnectionOut",
    "ContactOut",
    "ContactRow",
    "ContactsOut",
    "CurrentChatOut",
    "DeletedOut",
    "DeviceOut",
    "DeviceRow",
    "DevicesOut",
    "DownloadOut",
    "EditedOut",
    "EditsOut",
    "EmptyOut",
    "EncryptionOut",
    "ErrorOut",
    "ExitOut",
    "FilesOut",
    "HelpOut",
    "InfoOut",
    "JoinDecisionOut",
    "JoinOut",
    "JoinRequestOut",
    "LinkOut",
    "LogoutOut",
    "MemberOut",
    "MentionOut",
    "MentionsOut",
    "MessageOut",
    "MuteOut",
    "Out",
    "Output",
    "PinOut",
    "PinsOut",
    "PresenceOut",
    "ReactionsOut",
    "ResyncOut",
    "RoomKeysOut",
    "ScheduledListOut",
    "ScheduledOut",
    "ScheduledRow",
    "SearchOut",
    "SessionOut",
    "StatusOut",
    "TableOut",
    "Time",
    "UnreadCount",
    "UnreadOut",
    "UserRow",
    "UsersOut",
    "VerificationOut",
    "at",
    "at_or_none",
    "encode_output",
]


class Time(msgspec.Struct, frozen=True):
    """A moment: Unix seconds and the same in ISO 8601 (UTC)."""

    unix: float
    iso: str


def at(stamp: float) -> Time:
    """The :class:`Time` of Unix seconds ``stamp``."""
    return Time(stamp, datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds"))


def at_or_none(stamp: float | None) -> Time | None:
    """:func:`at`, or None for no moment."""
    return None if stamp is None else at(stamp)


class Out(msgspec.Struct, tag_field="kind"):
    """Base of every output; ``kind`` (the tag) names its type in JSON."""


# --- messages -------------------------------------------------------------------


class MessageOut(Out, tag="message"):
    """A message (or comment) to show; ``chat`` is its chat's display name."""

    message: Message
    chat: str
    live: bool = False
    """True when it arrived as a live event, False when it answers a command."""
    created: Time | None = None
    """When it was posted (filled in from the message)."""

    def __post_init__(self) -> None:
        if self.created is None:
            self.created = at(self.message.created_at)


# --- lines of information ----------------------------------------------------------


class InfoOut(Out, tag="info"):
    """One line of information for people (and the base of every typed line)."""

    text: str


class HelpOut(InfoOut, tag="help", kw_only=True):
    """One command's usage and help (``command`` None: a general hint)."""

    command: str | None
    usage: str


class EmptyOut(InfoOut, tag="empty", kw_only=True):
    """Nothing to list: no messages in a chat, or no comments under a message."""

    chat_id: int | None = None
    chat: str | None = None
    message_id: int | None = None


class UnreadCount(msgspec.Struct, frozen=True):
    """Unread messages of one chat."""

    chat_id: int
    chat: str
    count: int


class UnreadOut(InfoOut, tag="unread", kw_only=True):
    """How many messages are unread, per chat (``/unread``, and right after a login).

    ``after_login``: shown after the history on connect, which marks nothing read.
    """

    total: int
    chats: tuple[UnreadCount, ...] = ()
    after_login: bool = False

    @classmethod
    def of(cls, counts: tuple[UnreadCount, ...], *, after_login: bool = False) -> UnreadOut:
        """The output of these per-chat counts, with its line of text."""
        total = sum(c.count for c in counts)
        text = f"{total} unread"
        if counts:
            text += ": " + ", ".join(f"{c.chat} {c.count}" for c in counts)
            text += " (/unread shows them)" if after_login else ""
        return cls(text, total=total, chats=counts, after_login=after_login)


class CurrentChatOut(InfoOut, tag="current_chat", kw_only=True):
    """Plain text now goes to this chat (the plain console follows where you wrote)."""

    chat_id: int
    chat: str


ChatChange = Literal["created", "member", "private", "left"]


class ChatOut(InfoOut, tag="chat", kw_only=True):
    """A chat of yours changed: you ``created`` it, became a ``member``, someone opened a
    ``private`` chat with you, or you ``left`` it (``reason`` says why)."""

    change: ChatChange
    chat_id: int
    chat: str
    reason: str | None = None


MemberChange = Literal["added", "approved", "rejected"]


class MemberOut(InfoOut, tag="member", kw_only=True):
    """The owner added a user, or approved or rejected their join request."""

    change: MemberChange
    chat_id: int
    chat: str
    login: str


class LinkOut(InfoOut, tag="link", kw_only=True):
    """A new invite link of a group chat."""

    chat_id: int
    chat: str
    key: str
    link: str
    expires_at: Time | None = None
    max_uses: int | None = None


class JoinOut(InfoOut, tag="join", kw_only=True):
    """What ``/join`` did: ``joined``, ``requested``, ``asked_owner`` or ``already_member``."""

    state: str
    chat: str
    chat_id: int | None = None


class JoinRequestOut(InfoOut, tag="join_request", kw_only=True):
    """Someone asks to join a chat you own."""

    chat_id: int
    chat: str
    login: str
    with_key: bool
    created: Time


class JoinDecisionOut(InfoOut, tag="join_decision", kw_only=True):
    """The owner decided on a join request: yours, or (to the owner) ``login``'s."""

    chat_id: int
    chat: str
    approved: bool
    login: str


class ScheduledOut(InfoOut, tag="scheduled", kw_only=True):
    """One scheduled message: scheduled, sent (``message_id``), failed or cancelled."""

    id: int
    chat_id: int
    chat: str
    state: str
    send_at: Time
    message_id: int | None = None
    failure: str | None = None


class ComplaintOut(InfoOut, tag="complaint", kw_only=True):
    """A complaint was filed; ``banned_until`` when it banned the user."""

    complaint_id: int
    login: str
    distinct_complaints: int
    banned_until: Time | None = None


class BanOut(InfoOut, tag="ban", kw_only=True):
    """A user (maybe you) was banned from sending until ``until``, or unbanned (None)."""

    login: str
    until: Time | None
    reason: str = ""


class DeletedOut(InfoOut, tag="message_deleted", kw_only=True):
    """A message disappeared, or (``tombstone``) was deleted and stays as a tombstone."""

    chat_id: int
    chat: str
    message_id: int
    tombstone: Message | None = None


class EditedOut(Out, tag="message_edited", kw_only=True):
    """A message as edited (``/edit``, or the live event of an edit)."""

    message: Message
    chat: str
    live: bool = False


class ReactionsOut(InfoOut, tag="reactions", kw_only=True):
    """The reactions of a message after ``/react``, ``/unreact`` or someone's change
    (``login`` reacted with ``emoji``, ``added`` or taken back; None for your command)."""

    chat_id: int
    chat: str
    message_id: int
    reactions: tuple[Reaction, ...]
    login: str | None = None
    emoji: str | None = None
    added: bool | None = None


class PinOut(InfoOut, tag="pin", kw_only=True):
    """A message was pinned or unpinned in a chat (``/pin``, ``/unpin``, or an event)."""

    chat_id: int
    chat: str
    message_id: int
    pinned: bool
    by: str


class MuteOut(InfoOut, tag="mute", kw_only=True):
    """``/mute``: what of a chat is muted now (``all``, ``mentions`` or ``off``)."""

    chat_id: int
    chat: str
    mute: str


class EncryptionOut(InfoOut, tag="encryption", kw_only=True):
    """``/encryption``: whether what this device sends in a chat is end-to-end encrypted."""

    chat_id: int
    chat: str
    encrypted: bool


class MentionOut(InfoOut, tag="mention", kw_only=True):
    """Someone mentioned you in a message (live), muted chat or not."""

    chat_id: int
    chat: str
    message_id: int
    author: str


class PresenceOut(InfoOut, tag="presence", kw_only=True):
    """A user came online or went offline."""

    login: str
    online: bool
    last_seen: Time | None = None


class DownloadOut(InfoOut, tag="download", kw_only=True):
    """A file was saved."""

    file_id: str
    path: str


class ContactOut(InfoOut, tag="contact", kw_only=True):
    """A login was added to (or removed from) your contacts."""

    login: str
    added: bool


class ResyncOut(InfoOut, tag="resync", kw_only=True):
    """The client was too far behind and reloaded its state."""

    reason: str


# --- device trust (end-to-end encryption) --------------------------------------------


class VerificationOut(InfoOut, tag="verification", kw_only=True):
    """A verification with another device moved on (``/verify``, ``/confirm``,
    ``/mismatch``, and what the other device did)."""

    login: str
    device_id: str
    state: str
    we_started: bool
    emoji: tuple[str, ...] = ()
    emoji_names: tuple[str, ...] = ()
    decimals: tuple[int, ...] = ()
    code: str | None = None
    reason: str | None = None


class DeviceOut(InfoOut, tag="device", kw_only=True):
    """A device of a user appeared (``new``) or showed other keys (``key_changed``)."""

    change: Literal["new", "key_changed"]
    login: str
    device_id: str
    chat_id: int | None = None
    chat: str | None = None


class RoomKeysOut(InfoOut, tag="room_keys", kw_only=True):
    """Keys of earlier messages between this user's devices: ``received`` from
    ``device_id``, ``withheld`` by it, or ``refused`` to it (it is not verified)."""

    change: Literal["received", "withheld", "refused"]
    device_id: str
    sessions: int = 0
    chat_ids: tuple[int, ...] = ()


# --- errors ----------------------------------------------------------------------


class ErrorOut(Out, tag="error"):
    """A failed command. ``code`` is the server's error code, ``usage`` for a bad line,
    ``offline`` when the server cannot be reached, ``local`` for a local file."""

    code: str
    text: str
    retry_after: float | None = None
    until: Time | None = None


# --- tables -----------------------------------------------------------------------


class TableOut(Out, tag="table"):
    """Rows of a listing for display; subclasses add the typed items."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


class UserRow(msgspec.Struct, frozen=True):
    """One user in ``/users``."""

    login: str
    online: bool
    last_seen: Time | None
    is_admin: bool
    banned_until: Time | None


class UsersOut(TableOut, tag="users", kw_only=True):
    """``/users``."""

    users: tuple[UserRow, ...]


class ContactRow(msgspec.Struct, frozen=True):
    """One contact in ``/contacts``."""

    login: str
    online: bool
    last_seen: Time | None


class ContactsOut(TableOut, tag="contacts", kw_only=True):
    """``/contacts``."""

    contacts: tuple[ContactRow, ...]


class DeviceRow(msgspec.Struct, frozen=True):
    """One device in ``/devices``."""

    device_id: str
    ed25519: str
    verified: bool
    key_changed: bool
    current: bool


class DevicesOut(TableOut, tag="devices", kw_only=True):
    """``/devices [login]``: a user's devices and whether this device verified them."""

    login: str
    devices: tuple[DeviceRow, ...]


class ScheduledRow(msgspec.Struct, frozen=True):
    """One scheduled message in ``/scheduled``."""

    id: int
    chat_id: int
    chat: str
    state: str
    send_at: Time
    text: str
    message_id: int | None
    failure: str | None


class ScheduledListOut(TableOut, tag="scheduled_list", kw_only=True):
    """``/scheduled``."""

    scheduled: tuple[ScheduledRow, ...]


class PinsOut(TableOut, tag="pins", kw_only=True):
    """``/pins``: the messages pinned in a chat, newest pin first."""

    chat_id: int
    chat: str
    pins: tuple[Pin, ...]


class EditsOut(TableOut, tag="edits", kw_only=True):
    """``/edits``: every text a message had, oldest first (the last is the current one);
    an encrypted message's decrypted on this device. ``chat_id`` and ``chat`` are None
    for an admin outside the message's chat."""

    chat_id: int | None
    chat: str | None
    message_id: int
    versions: tuple[MessageVersion, ...]


class SearchOut(TableOut, tag="search", kw_only=True):
    """``/search``: hits newest first; ``offline``: searched this device's cache instead of
    the server; ``next_before``: where the next page starts (None: no more)."""

    query: str
    hits: tuple[SearchHit, ...]
    offline: bool = False
    next_before: int | None = None


class MentionsOut(TableOut, tag="mentions", kw_only=True):
    """``/mentions``: recent messages that mention you, newest first."""

    mentions: tuple[Mention, ...]
    next_before: int | None = None


class FilesOut(TableOut, tag="files", kw_only=True):
    """``/files``: the files posted in a chat, newest first."""

    chat_id: int
    chat: str
    files: tuple[Attachment, ...]


# --- sessions and the rest ----------------------------------------------------------


class StatusOut(Out, tag="status"):
    """The answer of ``/status``; in ``--json`` every time inside it is a Time."""

    status: Status


class SessionOut(Out, tag="session", kw_only=True):
    """A session started (``/auth``, ``/login``): the UI starts its event stream.

    The token stays in the client; it is never part of an output.
    """

    login: str
    session_id: str
    registered: bool
    is_admin: bool
    last_event_id: int
    history_on_connect: int


class LogoutOut(Out, tag="logout"):
    """The session ended (``/logout``, or ended from another client)."""

    reason: str = ""


class ExitOut(Out, tag="exit"):
    """The user asked to quit (``/exit``)."""


class ConnectionOut(Out, tag="connection", kw_only=True):
    """The event stream went ``offline``, is ``reconnecting`` or is ``connected`` again."""

    state: str
    in_seconds: float | None = None
    attempt: int | None = None
    error: str | None = None


Output = Out
"""Everything a command or an event can produce."""

ALL_OUTPUTS: tuple[type[Out], ...] = (
    MessageOut, InfoOut, HelpOut, EmptyOut, UnreadOut, CurrentChatOut, ChatOut, MemberOut,
    LinkOut, JoinOut, JoinRequestOut, JoinDecisionOut, ScheduledOut, ComplaintOut, BanOut,
    DeletedOut, PresenceOut, DownloadOut, ContactOut, ResyncOut, ErrorOut, TableOut, UsersOut,
    ContactsOut, ScheduledListOut, FilesOut, StatusOut, EditedOut, ReactionsOut, PinOut,
    PinsOut, EditsOut, SessionOut, LogoutOut, ExitOut,
    ConnectionOut, MuteOut, EncryptionOut, MentionOut, SearchOut, MentionsOut, VerificationOut,
    DeviceOut, RoomKeysOut, DevicesOut,
)  # fmt: skip
"""Every output type (docs/api.md documents each ``kind``)."""

_encoder = msgspec.json.Encoder()


def _is_time_field(name: str) -> bool:
    """Whether a protocol model's field holds a moment (Unix seconds)."""
    return name.endswith(("_at", "_until")) or name in ("at", "last_seen")


def _times_as_time(value: object) -> object:
    """``value`` (builtins) with every Unix-seconds time field nested in it as a Time."""
    if isinstance(value, dict):
        return {
            key: (
                msgspec.to_builtins(at(float(item)))
                if _is_time_field(key)
                and isinstance(item, int | float)
                and not isinstance(item, bool)
                else _times_as_time(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_times_as_time(item) for item in value]
    return value


def encode_output(out: Out) -> str:
    """The one JSON line of an output (what ``--json`` prints): every time a Time."""
    return _encoder.encode(_times_as_time(msgspec.to_builtins(out))).decode()
