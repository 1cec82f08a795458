"""Live events, as they travel in the Server-Sent Events stream.

Each event is one SSE frame::

    id: 1234
    event: message
    data: {"type":"message","message":{...}}

``id`` is a sequence number that only grows for a given user; a client that
reconnects with ``Last-Event-ID: 1234`` receives exactly the events after it.
Ephemeral events (presence, heartbeats) carry no ``id`` and are not replayed.
When a client is further behind than the server keeps, it gets a ``reset``
event and must refetch its state.
"""

from __future__ import annotations

import msgspec

from ._models import Chat, JoinRequest, Message, Pin, Reaction, ScheduledMessage


class BaseEvent(msgspec.Struct, frozen=True, tag_field="type"):
    """Base of events; ``type`` is the tag."""


class MessageCreated(BaseEvent, frozen=True, tag="message"):
    """A new message (or comment, when ``message.thread_root`` is set)."""

    message: Message


class MessageUpdated(BaseEvent, frozen=True, tag="message_updated"):
    """A message changed (e.g. its comment count)."""

    message: Message


class MessageEdited(BaseEvent, frozen=True, tag="message_edited"):
    """A message's text was edited: ``message`` is it now (``edited_at`` set)."""

    message: Message


class MessageDeleted(BaseEvent, frozen=True, tag="message_deleted"):
    """A message was deleted, or disappeared.

    With ``tombstone`` (its author or an admin deleted it) the message stays in view as
    that tombstone; without, it disappeared: remove it from view and from caches.
    """

    chat_id: int
    message_id: int
    tombstone: Message | None = None


class ReactionChanged(BaseEvent, frozen=True, tag="reaction"):
    """``login`` added (or removed) a reaction; ``reactions`` are the message's now."""

    chat_id: int
    message_id: int
    emoji: str
    login: str
    added: bool
    reactions: list[Reaction] = []


class PinChanged(BaseEvent, frozen=True, tag="pin"):
    """A message was pinned (``pin`` set) or unpinned in a chat."""

    chat_id: int
    message_id: int
    pinned: bool
    by: str
    pin: Pin | None = None


class ChatUpdated(BaseEvent, frozen=True, tag="chat"):
    """The user joined a chat, or a chat they are in changed."""

    chat: Chat


class ChatLeft(BaseEvent, frozen=True, tag="chat_left"):
    """The user left or was removed from a chat."""

    chat_id: int
    reason: str = ""


class ReadMarker(BaseEvent, frozen=True, tag="read"):
    """The user read a chat up to a message (on any of their clients)."""

    chat_id: int
    up_to: int
    thread_root: int | None = None


class JoinRequested(BaseEvent, frozen=True, tag="join_request"):
    """Someone asks to join a chat the user owns."""

    request: JoinRequest


class JoinDecided(BaseEvent, frozen=True, tag="join_decision"):
    """The owner approved or rejected ``login``'s join request.

    It reaches the requester and every device of the chat's owner (the one who can act on
    the request), so a device that still shows the request drops it.
    """

    chat_id: int
    chat_name: str
    approved: bool
    login: str
    """Who asked to join."""


class ThreadActivity(BaseEvent, frozen=True, tag="thread"):
    """A comment in a thread the user started or took part in."""

    chat_id: int
    root_id: int
    comment: Message


class Presence(BaseEvent, frozen=True, tag="presence"):
    """A user came online or went offline (ephemeral)."""

    login: str
    online: bool
    last_seen: float | None = None


class Banned(BaseEvent, frozen=True, tag="banned"):
    """The user (or, for admins, someone) was banned or unbanned."""

    login: str
    until: float | None
    reason: str = ""


class ScheduledUpdated(BaseEvent, frozen=True, tag="scheduled"):
    """A scheduled message changed state (sent, failed, cancelled)."""

    scheduled: ScheduledMessage


class SessionEnded(BaseEvent, frozen=True, tag="session_ended"):
    """A session of the user ended: logged out (from another client), or it expired."""

    session_id: str
    expired: bool = False
    """It expired (unused too long, or at its maximum age) rather than being logged out:
    the request that found it so was answered ``session_expired``."""


class Mentioned(BaseEvent, frozen=True, tag="mention"):
    """A message mentions the user (``@login``, or ``@all`` in a group chat), muted or not."""

    chat_id: int
    message: Message


class Typing(BaseEvent, frozen=True, tag="typing"):
    """A member is typing in a chat (ephemeral: never logged nor replayed); show it until
    ``expires_at`` unless another notice renews it."""

    chat_id: int
    login: str
    expires_at: float


class ReadReceipt(BaseEvent, frozen=True, tag="receipt"):
    """A member of a chat of at most ``SEEN_BY_MAX_MEMBERS`` members read it up to
    ``up_to`` (ephemeral: never logged nor replayed; not sent for a user who hides their
    read receipts). A "seen by" on screen asks again (``GET /messages/{id}/seen``)."""

    chat_id: int
    login: str
    up_to: int
    thread_root: int | None = None
    """The thread whose read cursor moved (the "seen by" of its comments); None: the
    chat's cursor (its messages)."""


class ToDeviceWaiting(BaseEvent, frozen=True, tag="to_device"):
    """To-device messages (Olm ciphertext) wait for one of the user's devices (issue 14).

    A logged event of the user, so it keeps its place among the messages: a device that
    sees its ``device_id`` fetches its waiting messages (``GET /keys/to_device``, which
    only that device's session may read) before it reads the events after this one.
    It carries no ciphertext; the user's other devices pass over it.
    """

    device_id: str


class DeviceListChanged(BaseEvent, frozen=True, tag="device_list"):
    """A user registered a device with keys, or took one out of the key directory
    (issue 14; Matrix's ``device_lists.changed``).

    A logged event of that user and of every user who shares a direct chat or an
    encrypted group with them, in order with the chat events: a client that keeps the
    users' device keys in memory forgets ``login``'s (and queries ``POST /keys/query``
    again) before it encrypts the next message, so a new device gets its room key.
    """

    login: str


class Reset(BaseEvent, frozen=True, tag="reset"):
    """The client is too far behind: drop cached state and refetch it."""

    reason: str
    last_event_id: int


Event = (
    MessageCreated
    | MessageUpdated
    | MessageEdited
    | MessageDeleted
    | ReactionChanged
    | PinChanged
    | ChatUpdated
    | ChatLeft
    | ReadMarker
    | JoinRequested
    | JoinDecided
    | ThreadActivity
    | Presence
    | Banned
    | ScheduledUpdated
    | SessionEnded
    | Mentioned
    | Typing
    | ReadReceipt
    | ToDeviceWaiting
    | DeviceListChanged
    | Reset
)
"""Every event a stream may carry."""

EVENT_TYPES: tuple[type[BaseEvent], ...] = (
    MessageCreated,
    MessageUpdated,
    MessageEdited,
    MessageDeleted,
    ReactionChanged,
    PinChanged,
    ChatUpdated,
    ChatLeft,
    ReadMarker,
    JoinRequested,
    JoinDecided,
    ThreadActivity,
    Presence,
    Banned,
    ScheduledUpdated,
    SessionEnded,
    Mentioned,
    Typing,
    ReadReceipt,
    ToDeviceWaiting,
    DeviceListChanged,
    Reset,
)


def event_name(event: BaseEvent) -> str:
    """The SSE ``event:`` name of an event (its tag)."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag
