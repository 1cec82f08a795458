"""The one table of endpoints. The server routes from it; the client calls from it.

Each :class:`Endpoint` names its method, path template, the types of its body,
query string and response, and whether it needs a bearer token. ``body`` says how
the request body travels: ``json`` (a typed model), ``raw`` (file bytes, streamed),
or ``none``. ``stream`` marks responses that are not a JSON model (the SSE event
stream, file downloads).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote, unquote

from . import _keys as k
from . import _models as m
from ._errors import ApiError, ErrorCode
from ._limits import ID_PATTERN, LOGIN_PATTERN, MAX_INT

API = "/api/v1"

PATH_PARAM_TYPES: dict[str, type] = {
    "chat_id": int,
    "message_id": int,
    "scheduled_id": int,
    "complaint_id": int,
    "login": str,
    "file_id": str,
    "key": str,
    "chat_name": str,
    "emoji": str,
}
"""Type of every path parameter, by name."""

_PARAM = re.compile(r"\{([a-z_]+)\}")
_LOGIN = re.compile(LOGIN_PATTERN)
_ID = re.compile(ID_PATTERN)


def parse_id(text: str) -> int | None:
    """An id written as decimal digits, 1 to :data:`~messenger_protocol.limits.MAX_INT`."""
    if not _ID.fullmatch(text):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_INT else None


Req = TypeVar("Req")
"""The type of an endpoint's JSON body (None: it takes none)."""
Resp = TypeVar("Resp")
"""The type of an endpoint's JSON answer (None: a stream or a download)."""
Query = TypeVar("Query")
"""The type of an endpoint's query string (None: it takes none)."""
Method = Literal["GET", "POST", "DELETE"]


@dataclass(frozen=True)
class Endpoint(Generic[Req, Resp, Query]):
    """One operation of the API, generic in its body, answer and query types, so a
    client call from the table (``client.call(SEND, body, chat_id=1)``) is typed."""

    name: str
    method: Method
    path: str
    response: type[Resp] | None
    request: type[Req] | None = None
    query: type[Query] | None = None
    auth: bool = True
    body: Literal["json", "raw", "none"] = "none"
    stream: bool = False
    summary: str = ""
    tag: str = ""
    params: tuple[str, ...] = field(init=False)
    pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        params = tuple(_PARAM.findall(self.path))
        for p in params:
            if p not in PATH_PARAM_TYPES:
                raise ValueError(f"{self.name}: unknown path parameter {p!r}")
        regex = "^" + _PARAM.sub(lambda mt: f"(?P<{mt.group(1)}>[^/]+)", self.path) + "$"
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "pattern", re.compile(regex))
        if self.request is not None and self.body != "json":
            raise ValueError(f"{self.name}: a request type needs body='json'")

    def url(self, **params: object) -> str:
        """The path of this endpoint with ``params`` filled in (percent-encoded)."""
        missing = set(self.params) - params.keys()
        if missing:
            raise TypeError(f"{self.name}: missing path parameters {sorted(missing)}")
        return _PARAM.sub(lambda mt: quote(str(params[mt.group(1)]), safe=""), self.path)


AnyEndpoint = Endpoint[Any, Any, Any]
"""An endpoint of any types (the table as a whole)."""


def _e(
    name: str,
    method: Method,
    path: str,
    response: type[Resp] | None,
    request: type[Req] | None = None,
    *,
    query: type[Query] | None = None,
    auth: bool = True,
    body: Literal["json", "raw", "none"] = "none",
    stream: bool = False,
    summary: str = "",
    tag: str = "",
) -> Endpoint[Req, Resp, Query]:
    return Endpoint(name, method, path, response, request, query, auth, body, stream, summary, tag)


# service
HEALTH: Endpoint[None, m.Health, None] = _e(
    "health", "GET", "/healthz", m.Health, auth=False, summary="Liveness", tag="service"
)
READY: Endpoint[None, m.Readiness, None] = _e(
    "ready",
    "GET",
    "/readyz",
    m.Readiness,
    auth=False,
    summary="Readiness: the store and the event bus answer, not shutting down (else 503)",
    tag="service",
)
OPENAPI: Endpoint[None, None, None] = _e(
    "openapi",
    "GET",
    f"{API}/openapi.json",
    None,
    auth=False,
    stream=True,
    summary="This API as an OpenAPI 3.1 document",
    tag="service",
)

# accounts
REGISTER: Endpoint[m.Credentials, m.Session, None] = _e(
    "register",
    "POST",
    f"{API}/auth/register",
    m.Session,
    m.Credentials,
    auth=False,
    body="json",
    summary="Create an account and log in (/auth)",
    tag="accounts",
)
LOGIN: Endpoint[m.Credentials, m.Session, None] = _e(
    "login",
    "POST",
    f"{API}/auth/login",
    m.Session,
    m.Credentials,
    auth=False,
    body="json",
    summary="Log in (/login)",
    tag="accounts",
)
LOGOUT: Endpoint[None, m.Ok, None] = _e(
    "logout", "POST", f"{API}/auth/logout", m.Ok, summary="End this session", tag="accounts"
)
LOGOUT_ALL: Endpoint[None, m.Ok, None] = _e(
    "logout_all",
    "POST",
    f"{API}/auth/logout_all",
    m.Ok,
    summary="End every session of this user",
    tag="accounts",
)
SESSION: Endpoint[None, m.Session, None] = _e(
    "session",
    "GET",
    f"{API}/auth/session",
    m.Session,
    summary="This session (a client resuming from a saved token); token is empty",
    tag="accounts",
)
STATUS: Endpoint[None, m.Status, None] = _e(
    "status",
    "GET",
    f"{API}/status",
    m.Status,
    summary="Connections, counts, chats, logins",
    tag="accounts",
)
USERS: Endpoint[None, m.UserList, None] = _e(
    "users", "GET", f"{API}/users", m.UserList, summary="All users with presence", tag="accounts"
)
USER: Endpoint[None, m.User, None] = _e(
    "user",
    "GET",
    f"{API}/users/{{login}}",
    m.User,
    summary="One user with presence",
    tag="accounts",
)
CONTACTS: Endpoint[None, m.ContactList, None] = _e(
    "contacts", "GET", f"{API}/contacts", m.ContactList, summary="Contact list", tag="contacts"
)
ADD_CONTACT: Endpoint[m.AddContact, m.Contact, None] = _e(
    "add_contact",
    "POST",
    f"{API}/contacts",
    m.Contact,
    m.AddContact,
    body="json",
    summary="Add a contact",
    tag="contacts",
)
DEL_CONTACT: Endpoint[None, m.Ok, None] = _e(
    "del_contact",
    "DELETE",
    f"{API}/contacts/{{login}}",
    m.Ok,
    summary="Remove a contact",
    tag="contacts",
)

# chats and messages
CHATS: Endpoint[None, m.ChatList, None] = _e(
    "chats",
    "GET",
    f"{API}/chats",
    m.ChatList,
    summary="Chats of this user with unread counts",
    tag="chats",
)
CHAT: Endpoint[None, m.Chat, None] = _e(
    "chat", "GET", f"{API}/chats/{{chat_id}}", m.Chat, summary="One chat", tag="chats"
)
OPEN_DIRECT: Endpoint[m.OpenDirect, m.Chat, None] = _e(
    "open_direct",
    "POST",
    f"{API}/direct",
    m.Chat,
    m.OpenDirect,
    body="json",
    summary="Find or create the private conversation with a user",
    tag="chats",
)
CREATE_CHAT: Endpoint[m.CreateChat, m.Chat, None] = _e(
    "create_chat",
    "POST",
    f"{API}/chats",
    m.Chat,
    m.CreateChat,
    body="json",
    summary="Create a private group chat (/create)",
    tag="chats",
)
HISTORY: Endpoint[None, m.MessagePage, m.HistoryQuery] = _e(
    "history",
    "GET",
    f"{API}/chats/{{chat_id}}/messages",
    m.MessagePage,
    query=m.HistoryQuery,
    summary="A page of history, oldest first",
    tag="messages",
)
SEND: Endpoint[m.SendMessage, m.Message, None] = _e(
    "send",
    "POST",
    f"{API}/chats/{{chat_id}}/messages",
    m.Message,
    m.SendMessage,
    body="json",
    summary="Post a message; committed before the answer; idempotent by client_id",
    tag="messages",
)
MESSAGE: Endpoint[None, m.Message, None] = _e(
    "message",
    "GET",
    f"{API}/messages/{{message_id}}",
    m.Message,
    summary="One message",
    tag="messages",
)
MARK_READ: Endpoint[m.MarkRead, m.Chat, None] = _e(
    "mark_read",
    "POST",
    f"{API}/chats/{{chat_id}}/read",
    m.Chat,
    m.MarkRead,
    body="json",
    summary="Mark a chat read up to a message",
    tag="messages",
)
UNREAD: Endpoint[None, m.Unread, m.UnreadQuery] = _e(
    "unread",
    "GET",
    f"{API}/unread",
    m.Unread,
    query=m.UnreadQuery,
    summary="Unread messages per chat, paged (/unread)",
    tag="messages",
)
COMMENT: Endpoint[m.SendMessage, m.Message, None] = _e(
    "comment",
    "POST",
    f"{API}/messages/{{message_id}}/comments",
    m.Message,
    m.SendMessage,
    body="json",
    summary="Comment on a message (/comment)",
    tag="threads",
)
THREAD: Endpoint[None, m.Thread, None] = _e(
    "thread",
    "GET",
    f"{API}/messages/{{message_id}}/thread",
    m.Thread,
    summary="A message and its comments (/thread)",
    tag="threads",
)
MARK_THREAD_READ: Endpoint[m.MarkRead, m.Ok, None] = _e(
    "mark_thread_read",
    "POST",
    f"{API}/messages/{{message_id}}/thread/read",
    m.Ok,
    m.MarkRead,
    body="json",
    summary="Mark a thread read",
    tag="threads",
)

EDIT_MESSAGE: Endpoint[m.EditMessage, m.Message, None] = _e(
    "edit_message",
    "POST",
    f"{API}/messages/{{message_id}}/edit",
    m.Message,
    m.EditMessage,
    body="json",
    summary="Edit the text of your own message (/edit)",
    tag="messages",
)
DELETE_MESSAGE: Endpoint[None, m.Message, None] = _e(
    "delete_message",
    "DELETE",
    f"{API}/messages/{{message_id}}",
    m.Message,
    summary="Delete your message (admins: any); answers its tombstone (/delete)",
    tag="messages",
)
MESSAGE_EDITS: Endpoint[None, m.EditHistory, None] = _e(
    "message_edits",
    "GET",
    f"{API}/messages/{{message_id}}/edits",
    m.EditHistory,
    summary="Every text (or ciphertext) a message had (its author and admins) (/edits)",
    tag="messages",
)
REACT: Endpoint[m.React, m.ReactionList, None] = _e(
    "react",
    "POST",
    f"{API}/messages/{{message_id}}/reactions",
    m.ReactionList,
    m.React,
    body="json",
    summary="Add a reaction (/react)",
    tag="messages",
)
UNREACT: Endpoint[None, m.ReactionList, None] = _e(
    "unreact",
    "DELETE",
    f"{API}/messages/{{message_id}}/reactions/{{emoji}}",
    m.ReactionList,
    summary="Take your reaction back (/unreact)",
    tag="messages",
)
PIN: Endpoint[None, m.Pin, None] = _e(
    "pin",
    "POST",
    f"{API}/messages/{{message_id}}/pin",
    m.Pin,
    summary="Pin a message in its chat (owner, admins) (/pin)",
    tag="messages",
)
UNPIN: Endpoint[None, m.Ok, None] = _e(
    "unpin",
    "DELETE",
    f"{API}/messages/{{message_id}}/pin",
    m.Ok,
    summary="Unpin a message (owner, admins) (/unpin)",
    tag="messages",
)
PINS: Endpoint[None, m.PinList, None] = _e(
    "pins",
    "GET",
    f"{API}/chats/{{chat_id}}/pins",
    m.PinList,
    summary="Messages pinned in a chat (/pins)",
    tag="messages",
)
# search, mentions, mute, typing, read receipts
SEARCH: Endpoint[None, m.SearchResults, m.SearchQuery] = _e(
    "search",
    "GET",
    f"{API}/search",
    m.SearchResults,
    query=m.SearchQuery,
    summary="Full-text search over the messages you may see, newest first (/search)",
    tag="search",
)
MENTIONS: Endpoint[None, m.MentionList, m.MentionsQuery] = _e(
    "mentions",
    "GET",
    f"{API}/mentions",
    m.MentionList,
    query=m.MentionsQuery,
    summary="Recent messages that mention you, newest first (/mentions)",
    tag="search",
)
MUTE: Endpoint[m.SetMute, m.Chat, None] = _e(
    "mute",
    "POST",
    f"{API}/chats/{{chat_id}}/mute",
    m.Chat,
    m.SetMute,
    body="json",
    summary="Mute a chat for you: all, mentions (only mentions get through) or off (/mute)",
    tag="chats",
)
CHAT_OPTIONS: Endpoint[m.ChatOptions, m.Chat, None] = _e(
    "chat_options",
    "POST",
    f"{API}/chats/{{chat_id}}/options",
    m.Chat,
    m.ChatOptions,
    body="json",
    summary="Owner sets a group chat's options (whether @all mentions everyone)",
    tag="groups",
)
TYPING: Endpoint[None, m.TypingResult, None] = _e(
    "typing",
    "POST",
    f"{API}/chats/{{chat_id}}/typing",
    m.TypingResult,
    summary="Tell the chat you are typing (ephemeral; at most one per 3 s, more are dropped)",
    tag="messages",
)
SEEN_BY: Endpoint[None, m.SeenBy, None] = _e(
    "seen_by",
    "GET",
    f"{API}/messages/{{message_id}}/seen",
    m.SeenBy,
    summary="Who has read a message (chats of at most 50 members)",
    tag="messages",
)
PRIVACY: Endpoint[None, m.PrivacySettings, None] = _e(
    "privacy",
    "GET",
    f"{API}/privacy",
    m.PrivacySettings,
    summary="Your privacy settings",
    tag="accounts",
)
SET_PRIVACY: Endpoint[m.Privacy, m.PrivacySettings, None] = _e(
    "set_privacy",
    "POST",
    f"{API}/privacy",
    m.PrivacySettings,
    m.Privacy,
    body="json",
    summary="Change your privacy settings (hide your read receipts)",
    tag="accounts",
)

# group chats
MEMBERS: Endpoint[None, m.Members, None] = _e(
    "members",
    "GET",
    f"{API}/chats/{{chat_id}}/members",
    m.Members,
    summary="Members of a chat",
    tag="groups",
)
INVITE: Endpoint[m.InviteUser, m.Members, None] = _e(
    "invite",
    "POST",
    f"{API}/chats/{{chat_id}}/members",
    m.Members,
    m.InviteUser,
    body="json",
    summary="Owner adds a user (/invite)",
    tag="groups",
)
REMOVE_MEMBER: Endpoint[None, m.Ok, None] = _e(
    "remove_member",
    "DELETE",
    f"{API}/chats/{{chat_id}}/members/{{login}}",
    m.Ok,
    summary="Owner removes a member, or a member leaves",
    tag="groups",
)
CREATE_LINK: Endpoint[m.CreateLink, m.InviteLink, None] = _e(
    "create_link",
    "POST",
    f"{API}/chats/{{chat_id}}/links",
    m.InviteLink,
    m.CreateLink,
    body="json",
    summary="Owner creates an invite key (/link)",
    tag="groups",
)
REVOKE_LINK: Endpoint[None, m.Ok, None] = _e(
    "revoke_link",
    "DELETE",
    f"{API}/chats/{{chat_id}}/links/{{key}}",
    m.Ok,
    summary="Owner revokes an invite key",
    tag="groups",
)
JOIN: Endpoint[m.JoinChat, m.JoinResult, None] = _e(
    "join",
    "POST",
    f"{API}/chats/join",
    m.JoinResult,
    m.JoinChat,
    body="json",
    summary="Ask to join a chat, with or without a key (/join)",
    tag="groups",
)
INVITE_PAGE: Endpoint[None, m.InvitePage, m.InviteQuery] = _e(
    "invite_page",
    "GET",
    "/join/{chat_name}",
    m.InvitePage,
    query=m.InviteQuery,
    auth=False,
    summary="What an invite link's URL answers: the chat and how to join (HTML for browsers)",
    tag="groups",
)
JOIN_REQUESTS: Endpoint[None, m.JoinRequestList, None] = _e(
    "join_requests",
    "GET",
    f"{API}/chats/{{chat_id}}/requests",
    m.JoinRequestList,
    summary="Pending join requests (owner)",
    tag="groups",
)
APPROVE: Endpoint[None, m.Members, None] = _e(
    "approve",
    "POST",
    f"{API}/chats/{{chat_id}}/requests/{{login}}/approve",
    m.Members,
    summary="Owner approves a join request (/approve)",
    tag="groups",
)
REJECT: Endpoint[None, m.Ok, None] = _e(
    "reject",
    "POST",
    f"{API}/chats/{{chat_id}}/requests/{{login}}/reject",
    m.Ok,
    summary="Owner rejects a join request (/reject)",
    tag="groups",
)

# files
UPLOAD: Endpoint[None, m.Attachment, m.UploadQuery] = _e(
    "upload",
    "POST",
    f"{API}/files",
    m.Attachment,
    query=m.UploadQuery,
    body="raw",
    summary="Upload a file as the raw body; attach its id to a message",
    tag="files",
)
DOWNLOAD: Endpoint[None, None, None] = _e(
    "download",
    "GET",
    f"{API}/files/{{file_id}}",
    None,
    stream=True,
    summary="Download a file (Range supported)",
    tag="files",
)
CHAT_FILES: Endpoint[None, m.FileList, None] = _e(
    "chat_files",
    "GET",
    f"{API}/chats/{{chat_id}}/files",
    m.FileList,
    summary="Files posted in a chat",
    tag="files",
)

# time
SCHEDULE: Endpoint[m.ScheduleMessage, m.ScheduledMessage, None] = _e(
    "schedule",
    "POST",
    f"{API}/scheduled",
    m.ScheduledMessage,
    m.ScheduleMessage,
    body="json",
    summary="Schedule a message (/schedule)",
    tag="scheduled",
)
SCHEDULED: Endpoint[None, m.ScheduledList, None] = _e(
    "scheduled",
    "GET",
    f"{API}/scheduled",
    m.ScheduledList,
    summary="This user's scheduled messages (/scheduled)",
    tag="scheduled",
)
CANCEL_SCHEDULED: Endpoint[None, m.ScheduledMessage, None] = _e(
    "cancel_scheduled",
    "DELETE",
    f"{API}/scheduled/{{scheduled_id}}",
    m.ScheduledMessage,
    summary="Cancel a pending scheduled message (/cancel)",
    tag="scheduled",
)

# moderation
COMPLAIN: Endpoint[m.FileComplaint, m.ComplaintResult, None] = _e(
    "complain",
    "POST",
    f"{API}/complaints",
    m.ComplaintResult,
    m.FileComplaint,
    body="json",
    summary="Complain about a user (/complain)",
    tag="moderation",
)
ADMIN_USERS: Endpoint[None, m.AdminUserList, None] = _e(
    "admin_users",
    "GET",
    f"{API}/admin/users",
    m.AdminUserList,
    summary="All users (admin)",
    tag="admin",
)
ADMIN_COMPLAINTS: Endpoint[None, m.ComplaintList, None] = _e(
    "admin_complaints",
    "GET",
    f"{API}/admin/complaints",
    m.ComplaintList,
    summary="Complaint queue (admin)",
    tag="admin",
)
ADMIN_DISMISS: Endpoint[None, m.Complaint, None] = _e(
    "admin_dismiss",
    "POST",
    f"{API}/admin/complaints/{{complaint_id}}/dismiss",
    m.Complaint,
    summary="Dismiss a complaint (admin)",
    tag="admin",
)
ADMIN_BAN: Endpoint[m.BanUser, m.User, None] = _e(
    "admin_ban",
    "POST",
    f"{API}/admin/bans",
    m.User,
    m.BanUser,
    body="json",
    summary="Ban a user (admin)",
    tag="admin",
)
ADMIN_UNBAN: Endpoint[None, m.User, None] = _e(
    "admin_unban",
    "DELETE",
    f"{API}/admin/bans/{{login}}",
    m.User,
    summary="Lift a ban (admin)",
    tag="admin",
)
ADMIN_STATS: Endpoint[None, m.ServerStats, None] = _e(
    "admin_stats",
    "GET",
    f"{API}/admin/stats",
    m.ServerStats,
    summary="Server stats (admin)",
    tag="admin",
)
ADMIN_SETTINGS: Endpoint[None, m.Settings, None] = _e(
    "admin_settings",
    "GET",
    f"{API}/admin/settings",
    m.Settings,
    summary="Effective settings (admin)",
    tag="admin",
)

# events
EVENTS: Endpoint[None, None, m.EventsQuery] = _e(
    "events",
    "GET",
    f"{API}/events",
    None,
    query=m.EventsQuery,
    stream=True,
    summary="Server-Sent Events; resume with Last-Event-ID",
    tag="events",
)
# end-to-end encryption (issue 14): the key directory and to-device messages
UPLOAD_KEYS: Endpoint[k.UploadKeys, k.KeyCount, None] = _e(
    "upload_keys",
    "POST",
    f"{API}/keys/upload",
    k.KeyCount,
    k.UploadKeys,
    body="json",
    summary="Register this session's device: identity keys and signed one-time keys",
    tag="keys",
)
QUERY_KEYS: Endpoint[k.QueryKeys, k.DeviceKeyList, None] = _e(
    "query_keys",
    "POST",
    f"{API}/keys/query",
    k.DeviceKeyList,
    k.QueryKeys,
    body="json",
    summary="The identity keys of every device of these users",
    tag="keys",
)
CLAIM_KEYS: Endpoint[k.ClaimKeys, k.ClaimedKeys, None] = _e(
    "claim_keys",
    "POST",
    f"{API}/keys/claim",
    k.ClaimedKeys,
    k.ClaimKeys,
    body="json",
    summary="Take one one-time key of each device (each key is handed out once)",
    tag="keys",
)
SEND_TO_DEVICE: Endpoint[k.SendToDevice, k.ToDeviceSent, None] = _e(
    "send_to_device",
    "POST",
    f"{API}/keys/to_device",
    k.ToDeviceSent,
    k.SendToDevice,
    body="json",
    summary="Send Olm ciphertexts to devices of users",
    tag="keys",
)
TO_DEVICE: Endpoint[None, k.ToDeviceList, None] = _e(
    "to_device",
    "GET",
    f"{API}/keys/to_device",
    k.ToDeviceList,
    summary="The to-device messages waiting for this session's device",
    tag="keys",
)
ACK_TO_DEVICE: Endpoint[k.AckToDevice, m.Ok, None] = _e(
    "ack_to_device",
    "POST",
    f"{API}/keys/to_device/ack",
    m.Ok,
    k.AckToDevice,
    body="json",
    summary="Delete this device's to-device messages up to an id (handled)",
    tag="keys",
)
DELETE_DEVICE_KEYS: Endpoint[None, m.Ok, None] = _e(
    "delete_device_keys",
    "DELETE",
    f"{API}/keys/device",
    m.Ok,
    summary="Remove this session's device from the key directory (at logout): its keys,"
    " one-time keys and waiting to-device messages",
    tag="keys",
)

ENDPOINTS: tuple[AnyEndpoint, ...] = (
    HEALTH,
    READY,
    OPENAPI,
    REGISTER,
    LOGIN,
    LOGOUT,
    LOGOUT_ALL,
    SESSION,
    STATUS,
    USERS,
    USER,
    CONTACTS,
    ADD_CONTACT,
    DEL_CONTACT,
    CHATS,
    CHAT,
    OPEN_DIRECT,
    CREATE_CHAT,
    HISTORY,
    SEND,
    MESSAGE,
    MARK_READ,
    UNREAD,
    EDIT_MESSAGE,
    DELETE_MESSAGE,
    MESSAGE_EDITS,
    REACT,
    UNREACT,
    PIN,
    UNPIN,
    PINS,
    COMMENT,
    THREAD,
    MARK_THREAD_READ,
    SEARCH,
    MENTIONS,
    MUTE,
    CHAT_OPTIONS,
    TYPING,
    SEEN_BY,
    PRIVACY,
    SET_PRIVACY,
    MEMBERS,
    INVITE,
    REMOVE_MEMBER,
    CREATE_LINK,
    REVOKE_LINK,
    JOIN,
    INVITE_PAGE,
    JOIN_REQUESTS,
    APPROVE,
    REJECT,
    UPLOAD,
    DOWNLOAD,
    CHAT_FILES,
    SCHEDULE,
    SCHEDULED,
    CANCEL_SCHEDULED,
    COMPLAIN,
    ADMIN_USERS,
    ADMIN_COMPLAINTS,
    ADMIN_DISMISS,
    ADMIN_BAN,
    ADMIN_UNBAN,
    ADMIN_STATS,
    ADMIN_SETTINGS,
    UPLOAD_KEYS,
    QUERY_KEYS,
    CLAIM_KEYS,
    SEND_TO_DEVICE,
    TO_DEVICE,
    ACK_TO_DEVICE,
    DELETE_DEVICE_KEYS,
    EVENTS,
)


BY_NAME: dict[str, AnyEndpoint] = {e.name: e for e in ENDPOINTS}


KNOWN_METHODS: frozenset[str] = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
"""Methods of RFC 9110, PATCH and QUERY: on a known path one we do not serve is 405 with
``Allow``. Methods are case-sensitive (RFC 9110 §9.1): ``get`` is an unknown method, 501."""


_FOUND_MAX = 4096
"""Most matches of paths with parameters one :class:`Router` keeps."""
_FOUND_PATH_MAX = 256
"""Longest path whose match is kept (so the kept matches stay within about 1 MiB)."""


class Router:
    """Finds the endpoint of a request line; sans-I/O, built once from the table."""

    def __init__(self, endpoints: tuple[AnyEndpoint, ...] = ENDPOINTS) -> None:
        self._static: dict[str, dict[str, AnyEndpoint]] = {}
        # a parameter never holds a "/": only paths with as many can match (table order kept)
        self._by_depth: dict[int, list[AnyEndpoint]] = {}
        for ep in endpoints:
            if ep.params:
                self._by_depth.setdefault(ep.path.count("/"), []).append(ep)
            else:
                self._static.setdefault(ep.path, {})[ep.method] = ep
        self._found: dict[tuple[str, str], tuple[AnyEndpoint, dict[str, Any]]] = {}
        """Matches of paths with parameters, by method and path: a send to a chat asked
        every pattern of its depth before its own at every request (5 us)."""

    def match(self, method: str, path: str) -> tuple[AnyEndpoint, dict[str, Any]]:
        """The endpoint and typed path parameters, or ``not_found``/``method_not_allowed``
        (with the allowed methods) or ``not_implemented`` for a method nobody knows."""
        if method not in KNOWN_METHODS:
            raise ApiError(ErrorCode.NOT_IMPLEMENTED, "unknown method (methods are case-sensitive)")
        by_method = self._static.get(path)
        if by_method is not None:
            ep = by_method.get(method) or (by_method.get("GET") if method == "HEAD" else None)
            if ep is None:
                raise _not_allowed(method, path, by_method)
            return ep, {}
        found_before = self._found.get((method, path))
        if found_before is not None:
            return found_before[0], dict(found_before[1])
        allowed: dict[str, AnyEndpoint] = {}
        for ep in self._by_depth.get(path.count("/"), ()):
            found = ep.pattern.match(path)
            if found is None:
                continue
            if ep.method != method and not (method == "HEAD" and ep.method == "GET"):
                allowed[ep.method] = ep
                continue
            params = _convert_params(found.groupdict())
            if len(path) <= _FOUND_PATH_MAX:
                if len(self._found) >= _FOUND_MAX:
                    self._found.clear()  # many distinct paths: start over (bounded memory)
                self._found[(method, path)] = (ep, dict(params))
            return ep, params
        if allowed:
            raise _not_allowed(method, path, allowed)
        raise ApiError(ErrorCode.NOT_FOUND, f"no such endpoint: {path[:200]}")


def _not_allowed(method: str, path: str, by_method: dict[str, AnyEndpoint]) -> ApiError:
    methods = set(by_method)
    if "GET" in methods:
        methods.add("HEAD")
    return ApiError(
        ErrorCode.METHOD_NOT_ALLOWED,
        f"{method} is not allowed on {path[:200]}",
        allow=tuple(sorted(methods)),
    )


def _convert_params(raw: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in raw.items():
        text = unquote(value) if "%" in value else value
        kind = PATH_PARAM_TYPES[name]
        if kind is int:
            number = parse_id(text)
            if number is None:
                raise ApiError(ErrorCode.INVALID, f"{name} must be an integer from 1 to {MAX_INT}")
            out[name] = number
        else:
            if name == "login" and not _LOGIN.match(text):
                raise ApiError(ErrorCode.NOT_FOUND, f"no such user: {text[:40]!r}")
            if len(text) > 256:
                raise ApiError(ErrorCode.INVALID, f"{name} is too long")
            out[name] = text
    return out
