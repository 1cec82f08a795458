"""The async client library: every endpoint of the protocol's table as a method.

All calls go through :meth:`Client.call`, which takes the method, path and types
from the endpoint table (``messenger_protocol.endpoints``) and is typed from it:
``await client.call(endpoints.CHAT, chat_id=1)`` is a ``Chat``. The methods below
are that call with the body built from plain arguments; nothing about the wire is
written here twice.
Errors the server sends come back as :class:`~messenger_protocol.ApiError` with the
server's code; a server that cannot be reached raises :class:`ServerUnavailable`::

    async with Client("http://127.0.0.1:8000") as client:
        await client.login("alice", "secret1")
        msg = await client.send(GENERAL_CHAT_ID, "hello")
        async for item in client.events(client.session.last_event_id):
            ...

File transfers run on their own HTTP connection pool, so a 5 MiB upload never makes
a chat message wait behind it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import re
import ssl
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

import aiofiles
import aiofiles.os
import msgspec

from messenger_protocol import (
    STATUS_OF,
    AddContact,
    AdminUserList,
    AnyEndpoint,
    ApiError,
    Attachment,
    BanUser,
    Chat,
    ChatList,
    ChatOptions,
    Complaint,
    ComplaintList,
    ComplaintResult,
    Contact,
    ContactList,
    CreateChat,
    CreateLink,
    Credentials,
    EditHistory,
    EditMessage,
    Endpoint,
    ErrorCode,
    FileComplaint,
    FileList,
    Health,
    HistoryQuery,
    InviteLink,
    InviteUser,
    JoinChat,
    JoinRequestList,
    JoinResult,
    MarkRead,
    Members,
    MentionList,
    MentionsQuery,
    Message,
    MessagePage,
    MessengerError,
    Mute,
    Ok,
    OpenDirect,
    Pin,
    PinList,
    Privacy,
    PrivacySettings,
    React,
    ReactionList,
    ScheduledList,
    ScheduledMessage,
    ScheduleMessage,
    SearchQuery,
    SearchResults,
    SeenBy,
    SendMessage,
    ServerStats,
    Session,
    SetMute,
    Settings,
    Status,
    Thread,
    TypingResult,
    Unread,
    UnreadChat,
    UnreadQuery,
    UploadQuery,
    User,
    UserList,
    decode,
    decode_error,
    encode,
    limits,
)
from messenger_protocol import endpoints as ep

if TYPE_CHECKING:
    import httpx

    from .events import EventStream, StreamItem

# httpx is imported where a request is made (``import httpx`` in the methods that use it):
# its import, ~25 ms, and the TLS context it builds run after a UI's first frame, not
# before it.

__all__ = [
    "DEFAULT_SERVER",
    "Client",
    "Progress",
    "ServerUnavailable",
    "new_client_id",
    "numbered_name",
    "prepare_tls",
    "tls_context",
]

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Query = TypeVar("Query")

DEFAULT_SERVER = f"http://{limits.DEFAULT_HOST}:{limits.DEFAULT_PORT}"
"""Where the client connects unless told otherwise."""

CHUNK_SIZE = 64 * 1024
"""Bytes read from disk (upload) or written to disk (download) at a time."""

Progress = Callable[[int, int | None], None]
"""Transfer progress callback: ``(bytes_done, bytes_total or None)``."""

_CODE_OF_STATUS: dict[int, ErrorCode] = {}
for _code, _status in STATUS_OF.items():
    _CODE_OF_STATUS.setdefault(_status, _code)
for _status in (501, 502, 503, 504):
    _CODE_OF_STATUS[_status] = ErrorCode.UNAVAILABLE


class ServerUnavailable(MessengerError, ConnectionError):
    """The server could not be reached, or the connection broke before an answer.

    ``client_id`` is set when a :meth:`Client.send` or :meth:`Client.comment` failed
    this way: calling it again with the same ``client_id`` is safe (idempotent).
    """

    def __init__(self, message: str, *, client_id: str | None = None) -> None:
        super().__init__(message)
        self.client_id = client_id


def new_client_id() -> str:
    """A fresh idempotency id for a send (a UI keeps it to retry the same message)."""
    return uuid.uuid4().hex


def error_from_response(status: int, content: bytes) -> ApiError:
    """The :class:`ApiError` of an error answer (typed body, or guessed from the status)."""
    error = decode_error(content) if content else None
    if error is not None:
        return error
    code = _CODE_OF_STATUS.get(status, ErrorCode.INTERNAL if status >= 500 else ErrorCode.INVALID)
    text = content[:200].decode(errors="replace").strip() or "no details"
    return ApiError(code, f"HTTP {status}: {text}")


def _query_params(query: object) -> dict[str, str] | None:
    if query is None:
        return None
    raw = msgspec.to_builtins(query)
    return {k: str(v) for k, v in raw.items() if v is not None}


_FILENAME_STAR = re.compile(r"filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)")
_FILENAME = re.compile(r'filename\s*=\s*"?([^";]+)"?')


def _filename_from(disposition: str | None) -> str | None:
    if not disposition:
        return None
    found = _FILENAME_STAR.search(disposition)
    name = unquote(found.group(1)) if found else None
    if name is None:
        plain = _FILENAME.search(disposition)
        name = plain.group(1) if plain else None
    if not name:
        return None
    # Never let a server-chosen name climb out of the target directory.
    name = os.path.basename(name.replace("\\", "/")).strip()
    return name if name not in ("", ".", "..") else None


def numbered_name(path: Path, n: int) -> Path:
    """The ``n``-th alternative to ``path`` when it is taken, as browsers name them:
    ``report.pdf`` → ``report (1).pdf``, ``backup.tar.gz`` → ``backup (1).tar.gz``,
    ``.bashrc`` → ``.bashrc (1)``. ``n == 0`` is ``path`` itself."""
    if n == 0:
        return path
    name = path.name
    stem, dot, ext = name.rpartition(".")
    if not stem:  # no dot, or a leading dot only: nothing to keep as the extension
        stem, dot, ext = name, "", ""
    elif stem.endswith(".tar"):
        stem, ext = stem.removesuffix(".tar"), "tar." + ext
    return path.with_name(f"{stem} ({n}){dot}{ext}")


async def _place(part: Path, target: Path) -> Path:
    """Move a finished download to ``target`` or, when that is taken, to the first free
    ``name (n).ext`` beside it; never overwrites. Returns where it went."""
    n = 0
    while True:
        candidate = numbered_name(target, n)
        try:
            # A hard link fails if the name exists, so two downloads never take one name.
            await aiofiles.os.link(part, candidate)
        except FileExistsError:
            n += 1
            continue
        except OSError:  # no hard links on this file system (FAT, some shares)
            if await asyncio.to_thread(os.path.lexists, candidate):
                n += 1
                continue
            await aiofiles.os.replace(part, candidate)
            return candidate
        await aiofiles.os.remove(part)
        return candidate


_tls_lock = threading.Lock()
_tls: concurrent.futures.Future[ssl.SSLContext] | None = None


def prepare_tls() -> None:
    """Start building the process's TLS context in a thread, once (see :func:`tls_context`).

    OpenSSL reads the CA bundle without holding the GIL, so the event loop goes on while
    it is built (a client's first request awaits it: :func:`tls_ready`)."""
    global _tls
    with _tls_lock:
        if _tls is not None:
            return
        future: concurrent.futures.Future[ssl.SSLContext] = concurrent.futures.Future()
        # Running: a request cancelled while it waits (its asyncio wrapper cancels this
        # future) cannot cancel the process's one context for every later client.
        future.set_running_or_notify_cancel()
        _tls = future

    def build() -> None:
        try:
            import httpx

            future.set_result(httpx.create_ssl_context())
        except BaseException as exc:  # handed to whoever needs the context
            future.set_exception(exc)

    threading.Thread(target=build, name="tls-context", daemon=True).start()


def tls_context() -> ssl.SSLContext:
    """httpx's default TLS settings (certifi's CAs, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``),
    built once per process and shared by every HTTP client: building one loads the whole CA
    bundle, 20-70 ms of CPU that each client paid before, on every start of a client."""
    prepare_tls()
    assert _tls is not None
    return _tls.result()


async def tls_ready() -> None:
    """Wait, off the event loop, until the TLS context is built (started if need be)."""
    prepare_tls()
    assert _tls is not None
    if not _tls.done():
        await asyncio.wrap_future(_tls)


class Client:
    """An async client of one messenger server, for one user at a time.

    ``token`` resumes an existing session; :meth:`login`/:meth:`register` set it.
    ``device`` labels this client in the user's ``/status``.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_SERVER,
        token: str | None = None,
        *,
        device: str = "",
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.device = device
        self.session: Session | None = None
        self._timeout = timeout
        self._http_client: httpx.AsyncClient | None = None
        """Made at the first request: a UI makes its client before its first frame (the
        TLS context too is built from the first request on, in a thread)."""
        self._files: httpx.AsyncClient | None = None
        self._watchers: list[Callable[[StreamItem], None]] = []
        self._live_streams = 0

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._http_client is None:
            self._http_client = self._new_http()
        return self._http_client

    @_http.setter
    def _http(self, http: httpx.AsyncClient) -> None:
        self._http_client = http

    def _new_http(self, timeout: httpx.Timeout | None = None) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(
            base_url=self.base_url,
            verify=tls_context(),
            timeout=timeout or httpx.Timeout(self._timeout, connect=min(self._timeout, 10.0)),
            headers={"User-Agent": "messenger-client/0.1"},
        )

    @property
    def login_name(self) -> str | None:
        """Login of the logged-in user, or None."""
        return self.session.user.login if self.session is not None else None

    # --- plumbing -----------------------------------------------------------

    def _headers(
        self, endpoint: AnyEndpoint, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        headers = dict(extra or {})
        if endpoint.auth:
            if self.token is None:
                raise ApiError(ErrorCode.UNAUTHORIZED, "not logged in")
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def call(
        self,
        endpoint: Endpoint[Req, Resp, Query],
        body: Req | None = None,
        query: Query | None = None,
        **params: object,
    ) -> Resp:
        """Call an endpoint of the protocol table (``messenger_protocol.endpoints``) and
        return its decoded answer, typed from the table.

        Raises :class:`ApiError` for an error answer and :class:`ServerUnavailable`
        when the server cannot be reached.
        """
        if endpoint.response is None:
            raise TypeError(f"{endpoint.name} does not answer a JSON model")
        content = await self._request(endpoint, body, query, params)
        return decode(endpoint.response, content)

    async def _request(
        self,
        endpoint: AnyEndpoint,
        body: object,
        query: object,
        params: dict[str, object],
    ) -> bytes:
        import httpx

        headers = self._headers(endpoint)
        content: bytes | None = None
        if body is not None:
            content = encode(body)
            headers["Content-Type"] = "application/json"
        await self.ready()
        try:
            response = await self._http.request(
                endpoint.method,
                endpoint.url(**params),
                content=content,
                params=_query_params(query),
                headers=headers,
            )
        except httpx.RequestError as exc:
            raise ServerUnavailable(f"server {self.base_url} unavailable: {exc!r}") from exc
        if response.status_code >= 300:
            raise error_from_response(response.status_code, response.content)
        return response.content

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran (a closed client makes no more requests)."""
        return self._http_client is not None and self._http_client.is_closed

    async def close(self) -> None:
        """Close every connection of this client (a closed client makes no requests)."""
        await self._http.aclose()
        if self._files is not None:
            await self._files.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def ready(self) -> None:
        """Before a request: the TLS context is built (the first waits for it off the loop)."""
        if _tls is None or not _tls.done():
            await tls_ready()

    def _files_http(self) -> httpx.AsyncClient:
        import httpx

        if self._files is None:
            self._files = self._new_http(timeout=httpx.Timeout(self._timeout, connect=10.0))
        return self._files

    # --- service ------------------------------------------------------------

    async def health(self) -> Health:
        """Liveness of the server."""
        return await self.call(ep.HEALTH)

    async def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI 3.1 document."""
        document: dict[str, Any] = msgspec.json.decode(
            await self._request(ep.OPENAPI, None, None, {})
        )
        return document

    # --- accounts -----------------------------------------------------------

    def _start_session(self, session: Session) -> Session:
        self.session = session
        self.token = session.token
        return session

    async def register(self, login: str, password: str) -> Session:
        """Create an account and log in to it (``/auth``)."""
        creds = Credentials(login=login, password=password, device=self.device)
        return self._start_session(await self.call(ep.REGISTER, creds))

    async def login(self, login: str, password: str) -> Session:
        """Log in to an existing account (``/login``)."""
        creds = Credentials(login=login, password=password, device=self.device)
        return self._start_session(await self.call(ep.LOGIN, creds))

    async def resume(self) -> Session:
        """Learn about the session behind the saved token (its id, the user, admin or
        not, server settings), as :meth:`login` would have; ``unauthorized`` if it ended."""
        session = await self.call(ep.SESSION)
        return self._start_session(msgspec.structs.replace(session, token=self.token or ""))

    async def logout(self) -> Ok:
        """End this session; the client forgets its token."""
        result = await self.call(ep.LOGOUT)
        self.token, self.session = None, None
        return result

    async def logout_all(self) -> Ok:
        """End every session of this user, this one included."""
        result = await self.call(ep.LOGOUT_ALL)
        self.token, self.session = None, None
        return result

    async def status(self) -> Status:
        """Connections, private-message counts, chats and login history (``/status``)."""
        return await self.call(ep.STATUS)

    async def users(self) -> UserList:
        """All users with presence (``/users``)."""
        return await self.call(ep.USERS)

    async def user(self, login: str) -> User:
        """One user with presence."""
        return await self.call(ep.USER, login=login)

    # --- contacts -----------------------------------------------------------

    async def contacts(self) -> ContactList:
        """The contact list (``/contacts``)."""
        return await self.call(ep.CONTACTS)

    async def add_contact(self, login: str) -> Contact:
        """Add a contact (``/add_contact``)."""
        return await self.call(ep.ADD_CONTACT, AddContact(login=login))

    async def del_contact(self, login: str) -> Ok:
        """Remove a contact (``/del_contact``)."""
        return await self.call(ep.DEL_CONTACT, login=login)

    # --- chats and messages -------------------------------------------------

    async def chats(self) -> ChatList:
        """Chats of this user with unread counts."""
        return await self.call(ep.CHATS)

    async def chat(self, chat_id: int) -> Chat:
        """One chat."""
        return await self.call(ep.CHAT, chat_id=chat_id)

    async def open_direct(self, login: str) -> Chat:
        """Find or create the private conversation with ``login``."""
        return await self.call(ep.OPEN_DIRECT, OpenDirect(login=login))

    async def create_chat(self, name: str, *, encrypted: bool = False) -> Chat:
        """Create a private group chat owned by this user (``/create``); ``encrypted``:
        end-to-end encrypted, for good (issue 14)."""
        return await self.call(ep.CREATE_CHAT, CreateChat(name=name, encrypted=encrypted))

    async def history(
        self,
        chat_id: int,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = limits.HISTORY_ON_CONNECT,
    ) -> MessagePage:
        """A page of a chat's history, oldest first: the newest ``limit`` messages
        older than ``before`` (or newer than ``after``)."""
        query = HistoryQuery(before=before, after=after, limit=limit)
        return await self.call(ep.HISTORY, query=query, chat_id=chat_id)

    async def _post_text(
        self,
        endpoint: Endpoint[SendMessage, Message, None],
        text: str,
        client_id: str | None,
        attachments: Sequence[str],
        retries: int,
        reply_to: int | None = None,
        **params: object,
    ) -> Message:
        client_id = client_id or new_client_id()
        body = SendMessage(
            text=text, client_id=client_id, attachments=list(attachments), reply_to=reply_to
        )
        attempt = 0
        while True:
            try:
                return await self.call(endpoint, body, None, **params)
            except ServerUnavailable as exc:
                # Same client_id: the server stores the message at most once.
                if attempt >= retries:
                    raise ServerUnavailable(str(exc), client_id=client_id) from exc
                attempt += 1
                log.info(
                    "%s failed (%s); retry %d with client_id %s",
                    endpoint.name,
                    exc,
                    attempt,
                    client_id,
                )

    async def send(
        self,
        chat_id: int,
        text: str,
        *,
        client_id: str | None = None,
        attachments: Sequence[str] = (),
        retries: int = 0,
        reply_to: int | None = None,
    ) -> Message:
        """Post a message; it is committed when this returns.

        ``client_id`` (a fresh one by default) makes the send idempotent: after a
        :class:`ServerUnavailable` (which carries the id) call again with the same id.
        ``retries`` does that here, immediately, that many times. ``reply_to`` names the
        message of the same chat this one answers (``/reply``).
        """
        return await self._post_text(
            ep.SEND, text, client_id, attachments, retries, reply_to, chat_id=chat_id
        )

    async def message(self, message_id: int) -> Message:
        """One message."""
        return await self.call(ep.MESSAGE, message_id=message_id)

    async def mark_read(self, chat_id: int, up_to: int) -> Chat:
        """Mark a chat read up to and including message ``up_to``."""
        return await self.call(ep.MARK_READ, MarkRead(up_to=up_to), chat_id=chat_id)

    async def unread(
        self,
        *,
        chat_id: int | None = None,
        after: int | None = None,
        limit: int = limits.UNREAD_PAGE_MAX,
    ) -> Unread:
        """A page of what is unread: every chat with its oldest unread messages, or (with
        ``chat_id``) one chat's unread messages after message ``after``. Never marks read."""
        query = UnreadQuery(chat_id=chat_id, after=after, limit=limit)
        return await self.call(ep.UNREAD, query=query)

    async def all_unread(self) -> Unread:
        """Everything unread, per chat, every page fetched (``/unread``). Never marks read."""
        first = await self.unread()
        chats: list[UnreadChat] = []
        for entry in first.chats:
            messages = list(entry.messages)
            more = entry.has_more
            while more and messages:
                page = await self.unread(chat_id=entry.chat.id, after=messages[-1].id)
                if not page.chats:
                    break
                messages += page.chats[0].messages
                more = page.chats[0].has_more
            chats.append(msgspec.structs.replace(entry, messages=messages, has_more=False))
        return Unread(chats=chats, total=first.total)

    async def edit(self, message_id: int, text: str) -> Message:
        """Replace the text of your own message (``/edit``); answers it as edited."""
        return await self.call(ep.EDIT_MESSAGE, EditMessage(text=text), message_id=message_id)

    async def delete_message(self, message_id: int) -> Message:
        """Delete your message (admins: any) (``/delete``); answers its tombstone."""
        return await self.call(ep.DELETE_MESSAGE, message_id=message_id)

    async def edits(self, message_id: int) -> EditHistory:
        """Every text a message had, oldest first (its author and admins)."""
        return await self.call(ep.MESSAGE_EDITS, message_id=message_id)

    async def react(self, message_id: int, emoji: str) -> ReactionList:
        """Add a reaction (``/react``); adding one you have already added changes nothing."""
        return await self.call(ep.REACT, React(emoji=emoji), message_id=message_id)

    async def unreact(self, message_id: int, emoji: str) -> ReactionList:
        """Take your reaction back (``/unreact``)."""
        return await self.call(ep.UNREACT, message_id=message_id, emoji=emoji)

    async def toggle_reaction(self, message_id: int, emoji: str) -> ReactionList:
        """Add the reaction, or take it back if you had added it (a chip clicked)."""
        message = await self.message(message_id)
        me = self.login_name
        mine = any(r.emoji == emoji and me in r.users for r in message.reactions)
        if mine:
            return await self.unreact(message_id, emoji)
        return await self.react(message_id, emoji)

    async def pin(self, message_id: int) -> Pin:
        """Pin a message in its chat (``/pin``; the owner, admins)."""
        return await self.call(ep.PIN, message_id=message_id)

    async def unpin(self, message_id: int) -> Ok:
        """Unpin a message (``/unpin``)."""
        return await self.call(ep.UNPIN, message_id=message_id)

    async def pins(self, chat_id: int) -> PinList:
        """The messages pinned in a chat, newest pin first (``/pins``)."""
        return await self.call(ep.PINS, chat_id=chat_id)

    # --- threads ------------------------------------------------------------

    async def comment(
        self,
        message_id: int,
        text: str,
        *,
        client_id: str | None = None,
        attachments: Sequence[str] = (),
        retries: int = 0,
    ) -> Message:
        """Comment on a message (``/comment``); idempotent by ``client_id`` like :meth:`send`."""
        return await self._post_text(
            ep.COMMENT, text, client_id, attachments, retries, message_id=message_id
        )

    async def thread(self, message_id: int) -> Thread:
        """A message and its comments (``/thread``)."""
        return await self.call(ep.THREAD, message_id=message_id)

    async def mark_thread_read(self, message_id: int, up_to: int) -> Ok:
        """Mark the thread under ``message_id`` read up to comment ``up_to``."""
        return await self.call(ep.MARK_THREAD_READ, MarkRead(up_to=up_to), message_id=message_id)

    # --- search, mentions, mute, typing, read receipts ---------------------------

    async def search(
        self, query: str, *, before: int | None = None, limit: int = limits.SEARCH_PAGE_DEFAULT
    ) -> SearchResults:
        """One page of full-text search hits, newest first (``/search``); page on with
        ``before=results.next_before``."""
        return await self.call(ep.SEARCH, query=SearchQuery(q=query, before=before, limit=limit))

    async def mentions(
        self, *, before: int | None = None, limit: int = limits.SEARCH_PAGE_DEFAULT
    ) -> MentionList:
        """Recent messages that mention this user, newest first (``/mentions``)."""
        return await self.call(ep.MENTIONS, query=MentionsQuery(before=before, limit=limit))

    async def mute(self, chat_id: int, mute: Mute) -> Chat:
        """Mute a chat: ``all``, ``mentions`` (only mentions get through) or ``off``."""
        return await self.call(ep.MUTE, SetMute(mute=mute), chat_id=chat_id)

    async def chat_options(self, chat_id: int, *, mention_all: bool) -> Chat:
        """(Owner) whether ``@all`` mentions every member of a group chat."""
        return await self.call(
            ep.CHAT_OPTIONS, ChatOptions(mention_all=mention_all), chat_id=chat_id
        )

    async def typing(self, chat_id: int) -> TypingResult:
        """Tell the chat this user is typing (dropped, ``sent`` False, within 3 s of the last)."""
        return await self.call(ep.TYPING, chat_id=chat_id)

    async def seen_by(self, message_id: int) -> SeenBy:
        """Who has read a message (chats of at most 50 members)."""
        return await self.call(ep.SEEN_BY, message_id=message_id)

    async def privacy(self) -> PrivacySettings:
        """This user's privacy settings."""
        return await self.call(ep.PRIVACY)

    async def set_privacy(self, *, hide_read_receipts: bool) -> PrivacySettings:
        """Hide (or show again) this user's read receipts."""
        return await self.call(ep.SET_PRIVACY, Privacy(hide_read_receipts=hide_read_receipts))

    # --- group chats --------------------------------------------------------

    async def members(self, chat_id: int) -> Members:
        """Members of a chat."""
        return await self.call(ep.MEMBERS, chat_id=chat_id)

    async def invite(self, chat_id: int, login: str) -> Members:
        """The owner adds ``login`` to a group chat (``/invite``)."""
        return await self.call(ep.INVITE, InviteUser(login=login), chat_id=chat_id)

    async def remove_member(self, chat_id: int, login: str) -> Ok:
        """The owner removes a member, or a member leaves."""
        return await self.call(ep.REMOVE_MEMBER, chat_id=chat_id, login=login)

    async def create_link(
        self, chat_id: int, *, expires_in: int | None = None, max_uses: int | None = None
    ) -> InviteLink:
        """The owner creates an invite key (``/link``)."""
        body = CreateLink(expires_in=expires_in, max_uses=max_uses)
        return await self.call(ep.CREATE_LINK, body, chat_id=chat_id)

    async def revoke_link(self, chat_id: int, key: str) -> Ok:
        """The owner revokes an invite key."""
        return await self.call(ep.REVOKE_LINK, chat_id=chat_id, key=key)

    async def join(self, name: str, key: str | None = None) -> JoinResult:
        """Ask to join group chat ``name``, with an invite key or without (``/join``)."""
        return await self.call(ep.JOIN, JoinChat(name=name, key=key))

    async def join_requests(self, chat_id: int) -> JoinRequestList:
        """Pending join requests of a chat (owner)."""
        return await self.call(ep.JOIN_REQUESTS, chat_id=chat_id)

    async def approve(self, chat_id: int, login: str) -> Members:
        """The owner approves ``login``'s join request (``/approve``)."""
        return await self.call(ep.APPROVE, chat_id=chat_id, login=login)

    async def reject(self, chat_id: int, login: str) -> Ok:
        """The owner rejects ``login``'s join request (``/reject``)."""
        return await self.call(ep.REJECT, chat_id=chat_id, login=login)

    # --- files --------------------------------------------------------------

    async def upload(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        progress: Progress | None = None,
    ) -> Attachment:
        """Upload a file, streamed from disk in chunks; attach the returned id to a message.

        Runs on its own connection. ``progress(sent, total)`` is called per chunk.
        """
        endpoint = ep.UPLOAD
        file_path = Path(path)
        total = (await aiofiles.os.stat(file_path)).st_size
        headers = self._headers(
            endpoint,
            {"Content-Type": "application/octet-stream", "Content-Length": str(total)},
        )

        async def chunks() -> AsyncIterator[bytes]:
            sent = 0
            if progress is not None:
                progress(0, total)
            async with aiofiles.open(file_path, "rb") as f:
                while chunk := await f.read(CHUNK_SIZE):
                    sent += len(chunk)
                    yield chunk
                    if progress is not None:
                        progress(sent, total)

        import httpx

        query = UploadQuery(name=name if name is not None else file_path.name)
        await self.ready()
        try:
            response = await self._files_http().request(
                endpoint.method,
                endpoint.url(),
                content=chunks(),
                params=_query_params(query),
                headers=headers,
            )
        except httpx.RequestError as exc:
            raise ServerUnavailable(f"upload to {self.base_url} failed: {exc!r}") from exc
        if response.status_code >= 300:
            raise error_from_response(response.status_code, response.content)
        return decode(Attachment, response.content)

    async def download(
        self,
        file_id: str,
        dest: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        resume: bool = True,
    ) -> Path:
        """Download a file to ``dest`` (a file path, or a directory to put it in).

        Streams to ``<dest>.part`` and renames it when complete; with ``resume`` a
        ``.part`` left by a broken download continues with a Range request. An existing
        file is never overwritten: the download goes to ``name (1).ext`` (then ``(2)``…)
        instead. Returns the path it went to.
        """
        import httpx

        endpoint = ep.DOWNLOAD
        target = Path(dest)
        url = endpoint.url(file_id=file_id)
        await self.ready()
        http = self._files_http()
        into_dir = await aiofiles.os.path.isdir(target)
        # The name is only known from the answer when dest is a directory, so resume
        # of a directory download keys its partial file by the file id.
        part_name = f".{file_id}.part" if into_dir else target.name + ".part"
        part = (target if into_dir else target.parent) / part_name
        offset = 0
        if resume and await aiofiles.os.path.exists(part):
            offset = (await aiofiles.os.stat(part)).st_size
        headers = self._headers(endpoint)
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            async with http.stream("GET", url, headers=headers) as response:
                if response.status_code == 416 and offset:
                    # The .part is as long as the file (or longer): start over.
                    await response.aread()
                    await aiofiles.os.remove(part)
                    return await self.download(file_id, dest, progress=progress, resume=False)
                if response.status_code >= 300:
                    raise error_from_response(response.status_code, await response.aread())
                if response.status_code != 206:
                    offset = 0
                length = response.headers.get("Content-Length")
                total = offset + int(length) if length and length.isdigit() else None
                if into_dir:
                    name = _filename_from(response.headers.get("Content-Disposition")) or file_id
                    target = target / name
                done = offset
                if progress is not None:
                    progress(done, total)
                async with aiofiles.open(part, "ab" if offset else "wb") as f:
                    async for chunk in response.aiter_bytes(CHUNK_SIZE):
                        await f.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
        except httpx.RequestError as exc:
            raise ServerUnavailable(f"download from {self.base_url} failed: {exc!r}") from exc
        return await _place(part, target)

    async def chat_files(self, chat_id: int) -> FileList:
        """Files posted in a chat, newest first (``/files``)."""
        return await self.call(ep.CHAT_FILES, chat_id=chat_id)

    # --- scheduled ----------------------------------------------------------

    async def schedule(self, chat_id: int, text: str, send_at: float) -> ScheduledMessage:
        """Send ``text`` to a chat at Unix time ``send_at`` (``/schedule``)."""
        body = ScheduleMessage(chat_id=chat_id, text=text, send_at=send_at)
        return await self.call(ep.SCHEDULE, body)

    async def scheduled(self) -> ScheduledList:
        """This user's scheduled messages (``/scheduled``)."""
        return await self.call(ep.SCHEDULED)

    async def cancel_scheduled(self, scheduled_id: int) -> ScheduledMessage:
        """Cancel a scheduled message that has not gone out yet (``/cancel``)."""
        return await self.call(ep.CANCEL_SCHEDULED, scheduled_id=scheduled_id)

    # --- moderation ---------------------------------------------------------

    async def complain(
        self, login: str, reason: str = "", message_id: int | None = None, quoted: str = ""
    ) -> ComplaintResult:
        """Complain about a user (``/complain``), pointing at a message of theirs
        (``/report``); ``quoted``: its text, included by choice (an encrypted message's as
        this device decrypted it: the server cannot read it otherwise)."""
        body = FileComplaint(login=login, reason=reason, message_id=message_id, quoted=quoted)
        return await self.call(ep.COMPLAIN, body)

    async def admin_users(self) -> AdminUserList:
        """All users as an admin sees them."""
        return await self.call(ep.ADMIN_USERS)

    async def admin_complaints(self) -> ComplaintList:
        """The complaint queue (admin)."""
        return await self.call(ep.ADMIN_COMPLAINTS)

    async def admin_dismiss(self, complaint_id: int) -> Complaint:
        """Dismiss a complaint (admin)."""
        return await self.call(ep.ADMIN_DISMISS, complaint_id=complaint_id)

    async def admin_ban(self, login: str, seconds: int, reason: str = "") -> User:
        """Ban a user for ``seconds`` (admin)."""
        body = BanUser(login=login, seconds=seconds, reason=reason)
        return await self.call(ep.ADMIN_BAN, body)

    async def admin_unban(self, login: str) -> User:
        """Lift a ban (admin)."""
        return await self.call(ep.ADMIN_UNBAN, login=login)

    async def admin_stats(self) -> ServerStats:
        """Live server numbers (admin)."""
        return await self.call(ep.ADMIN_STATS)

    async def admin_settings(self) -> Settings:
        """Effective server settings (admin)."""
        return await self.call(ep.ADMIN_SETTINGS)

    # --- events -------------------------------------------------------------

    def events(
        self,
        last_event_id: int | None = None,
        *,
        backoff_base: float = 0.25,
        backoff_cap: float = 10.0,
    ) -> EventStream:
        """The live event stream, resuming after ``last_event_id``; reconnects by itself.

        See :class:`~messenger_client.events.EventStream`.
        """
        from .events import EventStream  # events builds on this module

        return EventStream(self, last_event_id, backoff_base=backoff_base, backoff_cap=backoff_cap)

    def watch_events(self, watcher: Callable[[StreamItem], None]) -> None:
        """Call ``watcher`` with every item of every event stream of this client (events
        and connection states), as the stream reads it and before whoever iterates the
        stream sees it: what keeps state in memory that events invalidate (the device
        keys of :class:`~messenger_client.crypto.DeviceCrypto`) listens here."""
        self._watchers.append(watcher)

    def unwatch_events(self, watcher: Callable[[StreamItem], None]) -> None:
        """Stop calling a ``watcher`` given to :meth:`watch_events` (its owner is done:
        a :class:`~messenger_client.crypto.DeviceCrypto` at logout); nothing if not there."""
        with contextlib.suppress(ValueError):
            self._watchers.remove(watcher)

    @property
    def streaming(self) -> bool:
        """Whether an event stream of this client is connected now (every event the
        server logs for the user reaches the watchers)."""
        return self._live_streams > 0

    def _stream_item(self, item: StreamItem, live: int = 0) -> None:
        """A stream read ``item``; ``live`` +1: it connected, -1: it went offline."""
        self._live_streams += live
        for watcher in self._watchers:
            watcher(item)

    def _stream_request(
        self, last_event_id: int | None, read_timeout: float
    ) -> AbstractAsyncContextManager[httpx.Response]:
        import httpx

        endpoint = ep.EVENTS
        headers = self._headers(endpoint, {"Accept": "text/event-stream"})
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        return self._http.stream(
            endpoint.method,
            endpoint.url(),
            headers=headers,
            timeout=httpx.Timeout(10.0, read=read_timeout),
        )
