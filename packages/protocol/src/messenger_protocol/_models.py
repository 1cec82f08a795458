"""Typed bodies of every request and response.

Request bodies forbid unknown fields, so a typo fails loudly; response bodies and
entities accept new fields, so old clients keep working as the server grows. New
fields always get defaults. Times are Unix seconds (UTC floats).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from . import _limits as L

Login = Annotated[str, Meta(pattern=L.LOGIN_PATTERN, max_length=L.MAX_LOGIN)]
Password = Annotated[str, Meta(min_length=L.MIN_PASSWORD, max_length=L.MAX_PASSWORD)]
ChatName = Annotated[str, Meta(pattern=L.CHAT_NAME_PATTERN, max_length=32)]
Text = Annotated[str, Meta(min_length=1, max_length=L.MAX_MESSAGE_TEXT, pattern=L.TEXT_PATTERN)]
ClientId = Annotated[str, Meta(min_length=1, max_length=L.CLIENT_ID_MAX)]
Reason = Annotated[str, Meta(max_length=L.MAX_REASON)]
Device = Annotated[str, Meta(max_length=L.MAX_DEVICE)]
PageLimit = Annotated[int, Meta(ge=1, le=L.HISTORY_PAGE_MAX)]
PositiveInt = Annotated[int, Meta(ge=1, le=L.MAX_INT)]
"""An id or count: 1 to 2**63-1, so it fits SQLite's INTEGER before it reaches storage."""
NonNegativeInt = Annotated[int, Meta(ge=0, le=L.MAX_INT)]
"""A cursor that may be 0 (nothing yet): 0 to 2**63-1."""
Seconds = Annotated[int, Meta(ge=1, le=L.MAX_INT)]
Emoji = Annotated[str, Meta(min_length=1, max_length=L.MAX_REACTION, pattern=L.REACTION_PATTERN)]
"""A reaction: a short Unicode sequence, no spaces, control or invisible characters."""

ChatKind = Literal["general", "direct", "group"]
ScheduledState = Literal["pending", "sent", "failed", "cancelled"]
ComplaintState = Literal["open", "dismissed", "actioned"]
JoinState = Literal["joined", "requested", "asked_owner", "already_member"]
Mute = Literal["all", "mentions", "off"]
"""What of a chat is muted for a user: everything, everything but mentions, nothing."""

GENERAL_CHAT_ID = 1
"""The general chat every user belongs to."""


class Request(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of request bodies and query strings: unknown fields are an error.

    A field left at its default is not sent, so a client newer than its server talks to
    it as long as it uses nothing the server does not know (an optional field added to
    a request, sent as ``null``, was refused by an older server as an unknown field)."""


class Model(msgspec.Struct, frozen=True, omit_defaults=False):
    """Base of responses and entities: unknown fields are ignored by readers."""


# --- entities -------------------------------------------------------------


class User(Model, frozen=True):
    """A user as others see them."""

    login: str
    online: bool = False
    last_seen: float | None = None
    is_admin: bool = False
    banned_until: float | None = None


class Attachment(Model, frozen=True):
    """A file attached to a message."""

    id: str
    name: str
    size: int
    mime: str
    sha256: str
    width: int | None = None
    height: int | None = None


class Quote(Model, frozen=True):
    """The excerpt of the message a reply answers: enough to render the quote."""

    id: int
    author: str
    text: str = ""
    """The first line of its text, cut at ``QUOTE_MAX`` characters ("" once deleted)."""
    deleted: bool = False


def quote_of(message_id: int, author: str | None, text: str | None, deleted: bool) -> Quote:
    """The excerpt a reply carries of the message it answers: its first line, cut at
    ``QUOTE_MAX`` (the server builds it; a client rebuilds it when the original changes)."""
    if author is None or text is None:  # gone from the server (disappeared)
        return Quote(id=message_id, author=author or "", deleted=True)
    if deleted:
        return Quote(id=message_id, author=author, deleted=True)
    line = text.strip().split("\n", 1)[0].strip()
    if len(line) > L.QUOTE_MAX:
        line = line[: L.QUOTE_MAX - 1].rstrip() + "…"
    return Quote(id=message_id, author=author, text=line)


class Reaction(Model, frozen=True):
    """One kind of reaction on a message: how many users added it, and who."""

    emoji: str
    count: int
    users: list[str] = []
    """Logins of those who reacted, in the order they did."""


MegolmAlgorithm = Literal["m.megolm.v1.aes-sha2"]
PublicKey = Annotated[str, Meta(pattern=L.KEY_PATTERN)]
"""A Curve25519 or Ed25519 public key (unpadded base64 of 32 bytes)."""
DeviceId = Annotated[str, Meta(pattern=L.DEVICE_ID_PATTERN)]
"""A device id of the key directory (chosen by the client, kept in its data dir)."""
DevicesDigest = Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]
"""Hex SHA-256 of a set of devices (:func:`~messenger_protocol.device_set_digest`)."""


class Encrypted(Model, frozen=True):
    """The end-to-end encrypted body of a message (issue 14): a Megolm ciphertext.

    The server stores and relays it as it is; only devices that were given the Megolm
    session (over Olm, as a to-device message) can read it. The plaintext inside is a
    JSON object the client defines (``{"text": ..., "chat_id": ...}``).
    """

    algorithm: MegolmAlgorithm
    sender_key: PublicKey
    """The Curve25519 identity key of the sending device."""
    device_id: DeviceId
    """The sending device."""
    session_id: PublicKey
    """The Megolm session (its id is the session's Ed25519 key)."""
    ciphertext: Annotated[
        str, Meta(max_length=L.MAX_ENCRYPTED_CIPHERTEXT, pattern=L.CIPHERTEXT_PATTERN)
    ]


class Message(Model, frozen=True):
    """A message in a chat, or a comment under a root message (``thread_root``).

    A deleted message stays as a tombstone (``deleted_at`` set, no text, no
    attachments) so threads and replies keep their shape.
    """

    id: int
    chat_id: int
    author: str
    text: str
    created_at: float
    client_id: str | None = None
    thread_root: int | None = None
    comment_count: int = 0
    last_comment_at: float | None = None
    attachments: list[Attachment] = []
    scheduled_id: int | None = None
    expires_at: float | None = None
    """When it disappears for the user who fetched it (None: never, or not said)."""
    edited_at: float | None = None
    """When its text was last edited (None: never)."""
    deleted_at: float | None = None
    """When it was deleted (None: it was not): a tombstone."""
    reply_to: Quote | None = None
    """The message this one answers, as a short excerpt."""
    reactions: list[Reaction] = []
    encrypted: Encrypted | None = None
    """End-to-end encrypted: ``text`` is empty and this carries the ciphertext."""


class MessageVersion(Model, frozen=True):
    """One text a message had, from ``at`` until the next version."""

    text: str
    at: float
    encrypted: Encrypted | None = None
    """An encrypted message's ciphertext of this version (``text`` is then empty): only
    the devices that hold its Megolm session read it."""


class Pin(Model, frozen=True):
    """A message pinned in its chat."""

    message: Message
    pinned_by: str
    pinned_at: float


class Chat(Model, frozen=True):
    """A chat as one user sees it (``unread`` and ``name`` are per user)."""

    id: int
    kind: ChatKind
    name: str
    """``general``, ``@peer`` for a private conversation, or the group's name."""
    owner: str | None = None
    peer: str | None = None
    members: int = 0
    unread: int = 0
    last_read: int = 0
    last_message_at: float | None = None
    last_message_id: int = 0
    """Id of the chat's newest message (comments aside) when this view was read: a live
    message with an id up to this one is already counted in ``unread``."""
    mentions: int = 0
    """Unread messages that mention this user (``@login``, or ``@all``), muted or not."""
    mute: Mute = "off"
    """This user's mute setting of the chat (the same on all their devices)."""
    mention_all: bool = True
    """``@all`` mentions every member (group chats; the owner decides)."""
    encrypted: bool = False
    """An end-to-end encrypted group: its owner chose it at creation, for good (issue 14);
    the server refuses messages in the clear there."""


class InviteLink(Model, frozen=True):
    """An invite key of a group chat; joining with it files a request."""

    key: str
    chat_id: int
    chat_name: str
    link: str
    created_at: float
    expires_at: float | None = None
    max_uses: int | None = None
    uses: int = 0


class JoinRequest(Model, frozen=True):
    """A user asking to join a group chat."""

    chat_id: int
    chat_name: str
    login: str
    created_at: float
    with_key: bool = False


class Connection(Model, frozen=True):
    """One live session of a user."""

    session_id: str
    address: str
    device: str
    connected_at: float
    streaming: bool = False
    current: bool = False


class LoginRecord(Model, frozen=True):
    """One login attempt."""

    at: float
    address: str
    device: str = ""
    success: bool = True


class OwnedChat(Model, frozen=True):
    """A group chat the user owns, with its active invite keys."""

    chat: Chat
    links: list[InviteLink] = []
    pending_requests: list[JoinRequest] = []


class Contact(Model, frozen=True):
    """A login in the user's contact list."""

    login: str
    online: bool = False
    last_seen: float | None = None
    added_at: float = 0.0


class ScheduledMessage(Model, frozen=True):
    """A message waiting to go out at ``send_at``."""

    id: int
    chat_id: int
    text: str
    send_at: float
    created_at: float
    state: ScheduledState = "pending"
    failure: str | None = None
    message_id: int | None = None


class Complaint(Model, frozen=True):
    """A complaint of one user about another."""

    id: int
    author: str
    target: str
    reason: str
    created_at: float
    message_id: int | None = None
    state: ComplaintState = "open"
    quoted: str = ""
    """The message's text as the reporter quoted it (empty: not included)."""


class AdminUser(Model, frozen=True):
    """A user as an admin sees them."""

    login: str
    online: bool
    created_at: float
    last_login_at: float | None = None
    last_login_address: str | None = None
    messages: int = 0
    complaints: int = 0
    banned_until: float | None = None
    is_admin: bool = False


class LoopLag(Model, frozen=True):
    """How late the server's event loop ran a callback that was due, in milliseconds: what
    a request arriving then waited before the server looked at it. Sampled every
    ``interval_ms``; ``counts[i]`` samples were at most ``bounds_ms[i]`` late (and above
    the bound before), the last count is above the last bound. The counts grow from the
    server's start, so two readings subtract to the histogram of the time between them;
    the ``recent_`` figures are of the last ``recent_seconds`` (a percentile is the upper
    bound of its bucket, never above the maximum). ``busy_counts`` is the same histogram
    of each sample's busy part: the smaller of its lateness and the CPU time the loop's
    thread used since the sample before (the rest of a late sample the loop waited: for
    a core of a busy machine, for the GIL, in a blocking call)."""

    interval_ms: float = 0.0
    samples: int = 0
    max_ms: float = 0.0
    bounds_ms: list[float] = msgspec.field(default_factory=list)
    counts: list[int] = msgspec.field(default_factory=list)
    busy_counts: list[int] = msgspec.field(default_factory=list)
    busy_max_ms: float = 0.0
    recent_seconds: int = 0
    recent_samples: int = 0
    recent_p50_ms: float = 0.0
    recent_p99_ms: float = 0.0
    recent_max_ms: float = 0.0


class ServerStats(Model, frozen=True):
    """Live numbers of a running server."""

    uptime: float
    connections: int
    streams: int
    users: int
    users_online: int
    messages: int
    messages_per_second: float
    storage_bytes: int
    files_bytes: int
    loop_lag: LoopLag = msgspec.field(default_factory=LoopLag)
    """This node's event-loop lag (an older server sends none: all zero)."""


# --- requests -------------------------------------------------------------


class Credentials(Request, frozen=True):
    """Login and password, for registering and for logging in."""

    login: Login
    password: Password
    device: Device = ""


class SendMessage(Request, frozen=True):
    """A message to post. ``client_id`` makes a retried send idempotent."""

    text: Annotated[str, Meta(max_length=L.MAX_MESSAGE_TEXT, pattern=L.TEXT_PATTERN)]
    client_id: ClientId | None = None
    attachments: Annotated[list[str], Meta(max_length=L.MAX_ATTACHMENTS)] = []
    reply_to: PositiveInt | None = None
    """The message of the same chat this one answers (refused like an unknown id when the
    sender cannot see it)."""
    encrypted: Encrypted | None = None
    """End-to-end encrypted (issue 14): ``text`` must be empty; attachments named with it
    are files encrypted by the client (opaque bytes to the server)."""
    mentions: Annotated[list[Login], Meta(max_length=L.MAX_NAMED_MENTIONS)] = []
    """Whom an encrypted message mentions, as its sender says (the server cannot read its
    text; ``all`` where the group allows it); ignored for a message in the clear."""
    devices: DevicesDigest | None = None
    """The devices an encrypted message's sender looked at (every device with keys of
    the chat's members the key directory showed, its own included, as
    :func:`~messenger_protocol.device_set_digest`): the server refuses the message with
    ``devices_changed`` when the members' devices are others now (one registered
    meanwhile would miss its key). Ignored for a message in the clear."""


class EditMessage(Request, frozen=True):
    """The new text of one's own message (attachments stay)."""

    text: Annotated[str, Meta(max_length=L.MAX_MESSAGE_TEXT, pattern=L.TEXT_PATTERN)]
    encrypted: Encrypted | None = None
    """The new ciphertext of an end-to-end encrypted message (issue 14): ``text`` must
    then be empty; an encrypted message is edited this way only."""
    devices: DevicesDigest | None = None
    """As :attr:`SendMessage.devices`: the devices the new ciphertext's sender looked at
    (refused ``devices_changed`` when the chat's members have others now)."""


class React(Request, frozen=True):
    """Add a reaction to a message."""

    emoji: Emoji


class OpenDirect(Request, frozen=True):
    """Open (find or create) the private conversation with a user."""

    login: Login


class CreateChat(Request, frozen=True):
    """Create a private group chat; the creator owns it."""

    name: ChatName
    encrypted: bool = False
    """End-to-end encrypted (issue 14): members' devices share Megolm keys over Olm; the
    server keeps ciphertext only and refuses messages in the clear. Chosen for good."""


class InviteUser(Request, frozen=True):
    """The owner adds a user to a group chat."""

    login: Login


class CreateLink(Request, frozen=True):
    """The owner creates an invite key."""

    expires_in: Seconds | None = None
    max_uses: PositiveInt | None = None


class JoinChat(Request, frozen=True):
    """Ask to join a group chat, with an invite key or without one."""

    name: ChatName
    key: Annotated[str, Meta(max_length=128)] | None = None


class MarkRead(Request, frozen=True):
    """Everything up to and including message ``up_to`` has been read."""

    up_to: NonNegativeInt


class AddContact(Request, frozen=True):
    """Add a login to the contact list."""

    login: Login


class ScheduleMessage(Request, frozen=True):
    """Send ``text`` to chat ``chat_id`` at ``send_at`` (Unix seconds)."""

    chat_id: PositiveInt
    text: Text
    send_at: float


class FileComplaint(Request, frozen=True):
    """Complain about a user, optionally pointing at a message."""

    login: Login
    reason: Reason = ""
    message_id: PositiveInt | None = None
    quoted: Annotated[str, Meta(max_length=L.MAX_MESSAGE_TEXT, pattern=L.TEXT_PATTERN)] = ""
    """The text of ``message_id`` as the reporter's device shows it, included by the
    reporter's choice: the only way an admin reads an end-to-end encrypted message. The
    server cannot check it against the ciphertext (it is the reporter's word); it needs
    ``message_id``."""


class BanUser(Request, frozen=True):
    """An admin bans a user for ``seconds``."""

    login: Login
    seconds: Seconds
    reason: Reason = ""


class SetMute(Request, frozen=True):
    """Mute a chat for this user: ``all``, ``mentions`` (only mentions get through), ``off``."""

    mute: Mute


class ChatOptions(Request, frozen=True):
    """The owner's options of a group chat."""

    mention_all: bool


class Privacy(Request, frozen=True):
    """This user's privacy settings."""

    hide_read_receipts: bool


# --- query strings --------------------------------------------------------


class HistoryQuery(Request, frozen=True):
    """Paging of history: messages older than ``before`` (newest first).

    Without ``limit`` the page is the server's ``history_on_connect`` (SPEC F2).
    """

    before: PositiveInt | None = None
    after: NonNegativeInt | None = None
    limit: PageLimit | None = None


class UnreadQuery(Request, frozen=True):
    """Paging of ``/unread``: every chat's first page, or the page of one chat after a cursor.

    Without ``chat_id`` the answer has every chat with unread messages, each with its
    oldest ``limit`` unread messages. With ``chat_id`` (and ``after``, the id of the last
    message already fetched) only that chat, with the next ``limit`` unread messages.
    """

    chat_id: PositiveInt | None = None
    after: NonNegativeInt | None = None
    limit: Annotated[int, Meta(ge=1, le=L.UNREAD_PAGE_MAX)] = L.UNREAD_PAGE_MAX


class InviteQuery(Request, frozen=True):
    """The key of an invite link's URL (``/join/<chat>?key=<key>``)."""

    key: Annotated[str, Meta(max_length=128)] | None = None


class UploadQuery(Request, frozen=True):
    """Display name of an uploaded file (the type is sniffed, never taken from it)."""

    name: Annotated[str, Meta(max_length=1024)] = ""


class EventsQuery(Request, frozen=True):
    """Where an event stream resumes (``Last-Event-ID`` wins when both are given)."""

    last_event_id: NonNegativeInt | None = None


class SearchQuery(Request, frozen=True):
    """A search: ``q`` in the query syntax of :func:`~messenger_protocol.parse_search`,
    paged newest first: hits older than message ``before``."""

    q: Annotated[str, Meta(max_length=L.SEARCH_QUERY_MAX)]
    before: PositiveInt | None = None
    limit: Annotated[int, Meta(ge=1, le=L.SEARCH_PAGE_MAX)] = L.SEARCH_PAGE_DEFAULT


class MentionsQuery(Request, frozen=True):
    """Paging of ``/mentions``, newest first: mentions in messages older than ``before``."""

    before: PositiveInt | None = None
    limit: Annotated[int, Meta(ge=1, le=L.SEARCH_PAGE_MAX)] = L.SEARCH_PAGE_DEFAULT


# --- responses ------------------------------------------------------------


class Ok(Model, frozen=True):
    """A request that has nothing else to say succeeded."""

    ok: bool = True


class Session(Model, frozen=True):
    """A logged-in session; send ``token`` as ``Authorization: Bearer``."""

    token: str
    session_id: str
    user: User
    last_event_id: int = 0
    """Id of the newest event at login: a stream that starts here misses nothing."""
    message_ttl: int = 0
    """Seconds a message lives after it reached this user (0: messages do not disappear)."""
    history_on_connect: int = L.HISTORY_ON_CONNECT
    """Messages of the general chat a client shows right after it connects (server setting)."""


class MessagePage(Model, frozen=True):
    """A page of history, oldest first."""

    messages: list[Message]
    has_more: bool


class Thread(Model, frozen=True):
    """A root message and its comments, oldest first."""

    root: Message
    comments: list[Message]
    unread: int = 0


class ChatList(Model, frozen=True):
    """The chats a user belongs to."""

    chats: list[Chat]


class UserList(Model, frozen=True):
    """All users with their presence."""

    users: list[User]


class ContactList(Model, frozen=True):
    """A user's contacts."""

    contacts: list[Contact]


class Members(Model, frozen=True):
    """Members of a chat."""

    chat_id: int
    members: list[User]


class UnreadChat(Model, frozen=True):
    """Unread messages of one chat: the exact ``count``, and a page of them, oldest first.

    ``has_more``: more unread messages follow the last one here; ask for them with
    ``GET /unread?chat_id=<id>&after=<id of the last message>``.
    """

    chat: Chat
    count: int
    messages: list[Message]
    has_more: bool = False


class Unread(Model, frozen=True):
    """Everything unread, per chat."""

    chats: list[UnreadChat]
    total: int


class Status(Model, frozen=True):
    """What ``/status`` shows (SPEC F7)."""

    user: User
    connections: list[Connection]
    private_sent: int
    private_received: int
    owned_chats: list[OwnedChat]
    member_chats: list[Chat]
    logins: list[LoginRecord]
    banned_until: float | None = None
    session_expires_at: float | None = None
    """Unix time this session expires if unused from now on, or at its maximum age if that
    comes first (every request moves the idle expiry on)."""


class JoinResult(Model, frozen=True):
    """Outcome of a join: joined at once, a request filed, or the owner asked."""

    state: JoinState
    chat: Chat | None = None


class InvitePage(Model, frozen=True):
    """What the URL of a usable invite link answers: the chat and how to join it.

    A link that is not usable (unknown chat or key, revoked, expired, used up) answers
    403 ``forbidden`` instead, the same for every reason.
    """

    chat_name: str
    link: str
    join_command: str
    """What to type in the client: ``/join <link>`` (or ``/join <chat> <key>``)."""
    expires_at: float | None = None
    uses_left: int | None = None


class JoinRequestList(Model, frozen=True):
    """Pending join requests of a chat."""

    requests: list[JoinRequest]


class FileList(Model, frozen=True):
    """Files posted in a chat, newest first."""

    files: list[Attachment]


class ScheduledList(Model, frozen=True):
    """A user's scheduled messages."""

    scheduled: list[ScheduledMessage]


class ComplaintResult(Model, frozen=True):
    """Outcome of a complaint: how many distinct users complained, and any ban."""

    complaint: Complaint
    distinct_complaints: int
    banned_until: float | None = None


class ComplaintList(Model, frozen=True):
    """The complaint queue."""

    complaints: list[Complaint]


class AdminUserList(Model, frozen=True):
    """All users as an admin sees them."""

    users: list[AdminUser]


class EditHistory(Model, frozen=True):
    """Every text a message had, oldest first; the last is the current one (of an
    encrypted message, every ciphertext it had)."""

    message_id: int
    versions: list[MessageVersion]


class ReactionList(Model, frozen=True):
    """The reactions of a message after a change."""

    message_id: int
    reactions: list[Reaction]


class PinList(Model, frozen=True):
    """The messages pinned in a chat, newest pin first."""

    chat_id: int
    pins: list[Pin]


class Settings(Model, frozen=True):
    """Effective server settings (read-only)."""

    values: dict[str, str | int | float | bool | None]


class Health(Model, frozen=True):
    """Liveness."""

    status: str = "ok"
    version: str = ""


class Readiness(Model, frozen=True):
    """Readiness: this node's store and event bus answer (a balancer routes to it)."""

    status: str = "ready"
    node: str = ""
    bus: str = "local"


class Span(Model, frozen=True):
    """A piece of a snippet; ``match``: it is a word the search asked for."""

    text: str
    match: bool = False


class SearchHit(Model, frozen=True):
    """A message a search found, with the chat's name for the user and a snippet."""

    message: Message
    chat_name: str
    snippet: list[Span]


class SearchResults(Model, frozen=True):
    """A page of search hits, newest first; ``next_before`` pages on (None: no more)."""

    hits: list[SearchHit]
    has_more: bool = False
    next_before: int | None = None


class Mention(Model, frozen=True):
    """A message that mentions the user."""

    message: Message
    chat_name: str
    unread: bool = False


class MentionList(Model, frozen=True):
    """Recent mentions of the user, newest first; ``next_before`` pages on."""

    mentions: list[Mention]
    has_more: bool = False
    next_before: int | None = None


class TypingResult(Model, frozen=True):
    """A typing notice: ``sent`` False when one went out less than 3 s ago (dropped)."""

    sent: bool
    expires_at: float


class SeenBy(Model, frozen=True):
    """Who has read a message (their read cursor is at or past it), by login.

    Only for chats of at most ``SEEN_BY_MAX_MEMBERS`` members; the author and users
    who hide their read receipts are never listed.
    """

    message_id: int
    chat_id: int
    seen_by: list[str]
    members: int


class PrivacySettings(Model, frozen=True):
    """This user's privacy settings."""

    hide_read_receipts: bool = False
