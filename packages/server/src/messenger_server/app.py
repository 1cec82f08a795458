"""The application: routes the endpoint table to the services.

One :class:`App` per server. :meth:`App.handle` finds the endpoint of a request
(:class:`messenger_protocol.Router`), authenticates the bearer token when the
endpoint needs one, decodes the typed body and query, calls the handler named
like the endpoint, and encodes the typed result. An :class:`ApiError` becomes a
typed error body in the transport. Endpoints whose service has not landed yet
answer ``unavailable``; a later service plugs in with :meth:`App.register`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from messenger_protocol import (
    ENDPOINTS,
    ApiError,
    Endpoint,
    ErrorCode,
    Health,
    Ok,
    Router,
    decode,
    decode_query,
    encode,
    limits,
    openapi_document,
)
from messenger_protocol import __version__ as protocol_version

from .clock import Clock
from .config import Settings
from .file_routes import file_handlers
from .http import HttpServer, Request, Response, ResponseStream, StreamResponse
from .hub import Hub
from .invite_page import PAGE_HEADERS, invite_html
from .services import (
    AccountService,
    Actor,
    ChatService,
    ContactService,
    EventService,
    LoginThrottle,
    MessageService,
    StatusService,
    require_member,
)
from .services.admin import AdminService
from .services.files import FileService
from .services.moderation import ModerationService
from .services.retention import RetentionService, Visibility
from .services.scheduler import SchedulerService
from .storage import Store, store_for

__all__ = [
    "NOT_YET",
    "App",
    "Call",
    "EndpointHandler",
    "Services",
    "address_ip",
    "build_services",
]

log = logging.getLogger(__name__)

NOT_YET: frozenset[str] = frozenset()
"""Endpoints whose services land later; until then they answer ``unavailable``."""

_STREAM_HEADERS = [("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")]


@dataclass(slots=True)
class Call:
    """One decoded API call, as a handler sees it."""

    request: Request
    endpoint: Endpoint
    params: dict[str, Any]
    actor_or_none: Actor | None = None
    body: Any = None
    query: Any = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def actor(self) -> Actor:
        """The authenticated user (only for endpoints that need a token)."""
        assert self.actor_or_none is not None
        return self.actor_or_none


EndpointHandler = Callable[[Call], Awaitable[object]]
"""Returns a protocol model (encoded as JSON), a Response or a StreamResponse."""


def address_ip(peer: str) -> str:
    """The IP part of an ``ip:port`` peer address."""
    host, sep, port = peer.rpartition(":")
    if not sep or not port.isdigit():
        return peer
    return host.strip("[]")


@dataclass(frozen=True, slots=True)
class Services:
    """Every service of one server, wired together by :func:`build_services`."""

    store: Store
    events: EventService
    visibility: Visibility
    moderation: ModerationService
    throttle: LoginThrottle
    accounts: AccountService
    chats: ChatService
    files: FileService
    messages: MessageService
    contacts: ContactService
    status: StatusService
    scheduler: SchedulerService
    retention: RetentionService
    admin: AdminService


def build_services(
    settings: Settings,
    clock: Clock,
    hub: Hub,
    store: Store,
    *,
    connections: Callable[[], int] = lambda: 0,
    started_at: Callable[[], float] | None = None,
) -> Services:
    """The composition root: each service gets its collaborators as constructor arguments."""
    visibility = Visibility(store, hub, clock, settings.message_ttl)
    events = EventService(store, hub, clock, settings.event_retention, resumed=visibility.resumed)
    moderation = ModerationService(store, events, clock, settings)
    throttle = LoginThrottle(store, clock, settings)
    accounts = AccountService(
        store, events, clock, throttle, admins=settings.admins,
        history_on_connect=settings.history_on_connect,
        hash_concurrency=settings.login_hash_concurrency,
        session_idle_timeout=settings.session_idle_timeout,
        session_max_age=settings.session_max_age, message_ttl=settings.message_ttl,
    )  # fmt: skip
    hub.on_first_attach = accounts.came_online
    hub.on_last_detach = accounts.went_offline
    files = FileService(
        store, clock, settings.data_dir / "files", max_bytes=settings.max_file_bytes,
        user_quota=settings.user_quota_bytes, allowed_mime=settings.allowed_mime,
    )  # fmt: skip
    messages = MessageService(
        store, events, clock, max_text=settings.max_message_text,
        send_checks=[moderation.check_send], attachments=files, visibility=visibility,
    )  # fmt: skip
    chats = ChatService(
        store, events, accounts, clock, base_url=settings.base_url, visibility=visibility
    )
    return Services(
        store=store,
        events=events,
        visibility=visibility,
        moderation=moderation,
        throttle=throttle,
        accounts=accounts,
        chats=chats,
        files=files,
        messages=messages,
        contacts=ContactService(store, accounts, clock),
        status=StatusService(store, accounts, chats, events, clock),
        scheduler=SchedulerService(store, events, messages, moderation, clock, settings),
        retention=RetentionService(store, events, clock, settings),
        admin=AdminService(
            store,
            events,
            accounts,
            moderation,
            clock,
            settings,
            connections=connections,
            started_at=started_at,
        ),
    )


class App:
    """The messenger API over the services; the transport calls :meth:`handle`."""

    def __init__(
        self, settings: Settings, clock: Clock, hub: Hub, *, store: Store | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.hub = hub
        self.http_server: HttpServer | None = None
        """Set by the serve loop before :meth:`start` (for connection counts)."""
        self.started_at = clock.now()
        services = build_services(
            settings, clock, hub,
            store
            or store_for(
                settings.store, settings.data_dir, sqlite_synchronous=settings.sqlite_synchronous
            ),
            connections=self._connection_count, started_at=lambda: self.started_at,
        )  # fmt: skip
        self.services = services
        self.store = services.store
        self.events = services.events
        self.throttle = services.throttle
        self.accounts = services.accounts
        self.chats = services.chats
        self.messages = services.messages
        self.contacts = services.contacts
        self.status = services.status
        self.files = services.files
        self.moderation = services.moderation
        self.scheduler = services.scheduler
        self.retention = services.retention
        self.admin = services.admin
        self.router = Router(ENDPOINTS)
        self._openapi = encode(openapi_document())
        self.handlers: dict[str, EndpointHandler] = {
            ep.name: self._unavailable for ep in ENDPOINTS if ep.name in NOT_YET
        }
        self.handlers.update(self._own_handlers())
        self.handlers.update(file_handlers(self.files, settings.max_file_bytes))
        self.handlers.update(self._moderation_handlers())
        self.on_close: list[Callable[[], Awaitable[None]]] = []
        """Run at :meth:`close` before the store closes (later services stop here)."""

    def register(self, name: str, handler: EndpointHandler) -> None:
        """Serve the endpoint ``name`` with ``handler`` (replacing ``unavailable``)."""
        if name not in {ep.name for ep in ENDPOINTS}:
            raise KeyError(f"no endpoint named {name!r}")
        self.handlers[name] = handler

    async def start(self) -> None:
        """Open the store (running migrations) and load what the services need."""
        await self.store.open()
        await self.events.start()
        await self.accounts.start()
        self.started_at = self.clock.now()
        await self.files.start()
        self.on_close.append(self.files.close)
        await self.moderation.start()
        await self.scheduler.start()
        await self.retention.start()
        self.on_close.append(self.moderation.close)
        self.on_close.append(self.retention.close)
        self.on_close.append(self.scheduler.close)
        log.info("store open: %s", self.store)

    async def close(self) -> None:
        """Stop later services, save presence, commit and close the store."""
        for stop in reversed(self.on_close):
            try:
                await stop()
            except Exception:
                log.exception("error while closing")
        await self.accounts.close()
        await self.store.close()

    # --- dispatch -------------------------------------------------------------

    async def handle(self, request: Request) -> Response | StreamResponse:
        """Answer one request (errors are raised as ApiError for the transport)."""
        log.debug("%s %s from %s", request.method, request.path, request.peer)
        endpoint, params = self.router.match(request.method, request.path)
        call = Call(request=request, endpoint=endpoint, params=params)
        if endpoint.auth:
            call.actor_or_none = await self._authenticate(request, endpoint)
            request.state["actor"] = call.actor_or_none
            request.mark_authenticated()
        if endpoint.request is not None:
            raw = await request.body.read(self.settings.max_json_body)
            call.body = decode(endpoint.request, raw)
        if endpoint.query is not None:
            query = request.query
            if "access_token" in query:
                query = {k: v for k, v in query.items() if k != "access_token"}
            call.query = decode_query(endpoint.query, query)
        result = await self.handlers[endpoint.name](call)
        if isinstance(result, Response | StreamResponse):
            return result
        return Response(body=encode(result))

    async def _authenticate(self, request: Request, endpoint: Endpoint) -> Actor:
        header = request.headers.get("authorization")
        token: str | None = None
        if header is not None:
            scheme, _, value = header.strip().partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
        elif endpoint.name == "events":
            # a browser's EventSource cannot send headers
            token = request.query.get("access_token") or None
        if token is None:
            raise ApiError(ErrorCode.UNAUTHORIZED, "a bearer token is required")
        return await self.accounts.authenticate(token, request.peer)

    async def _unavailable(self, call: Call) -> object:
        chat_id = call.params.get("chat_id")
        if chat_id is not None and call.actor_or_none is not None:
            user_id = call.actor.user_id  # outsiders learn nothing, not even "not yet"
            await self.store.read(lambda tx: require_member(tx, chat_id, user_id))
        raise ApiError(ErrorCode.UNAVAILABLE, f"{call.endpoint.name}: not available yet")

    def _own_handlers(self) -> dict[str, EndpointHandler]:
        return {
            "health": self._health,
            "openapi": self._openapi_doc,
            "register": self._register,
            "login": self._login,
            "logout": self._logout,
            "logout_all": self._logout_all,
            "session": self._session,
            "status": self._status,
            "users": self._users,
            "user": self._user,
            "contacts": self._contacts,
            "add_contact": self._add_contact,
            "del_contact": self._del_contact,
            "chats": self._chats,
            "chat": self._chat,
            "open_direct": self._open_direct,
            "create_chat": self._create_chat,
            "history": self._history,
            "send": self._send,
            "message": self._message,
            "mark_read": self._mark_read,
            "unread": self._unread,
            "comment": self._comment,
            "thread": self._thread,
            "mark_thread_read": self._mark_thread_read,
            "members": self._members,
            "invite": self._invite,
            "remove_member": self._remove_member,
            "create_link": self._create_link,
            "revoke_link": self._revoke_link,
            "join": self._join,
            "invite_page": self._invite_page,
            "join_requests": self._join_requests,
            "approve": self._approve,
            "reject": self._reject,
            "events": self._events,
        }

    # --- service and accounts -------------------------------------------------

    async def _health(self, call: Call) -> object:
        return Health(status="ok", version=protocol_version)

    async def _openapi_doc(self, call: Call) -> object:
        return Response(body=self._openapi)

    async def _register(self, call: Call) -> object:
        return await self.accounts.register(call.body, address_ip(call.request.peer))

    async def _login(self, call: Call) -> object:
        return await self.accounts.login(call.body, address_ip(call.request.peer))

    async def _logout(self, call: Call) -> object:
        await self.accounts.logout(call.actor)
        return Ok()

    async def _logout_all(self, call: Call) -> object:
        await self.accounts.logout_all(call.actor)
        return Ok()

    async def _session(self, call: Call) -> object:
        return await self.accounts.session(call.actor)

    async def _status(self, call: Call) -> object:
        return await self.status.status(call.actor)

    async def _users(self, call: Call) -> object:
        return await self.accounts.users()

    async def _user(self, call: Call) -> object:
        return await self.accounts.user(call.params["login"])

    async def _contacts(self, call: Call) -> object:
        return await self.contacts.contacts(call.actor)

    async def _add_contact(self, call: Call) -> object:
        return await self.contacts.add(call.actor, call.body)

    async def _del_contact(self, call: Call) -> object:
        await self.contacts.remove(call.actor, call.params["login"])
        return Ok()

    # --- chats and messages ---------------------------------------------------

    async def _chats(self, call: Call) -> object:
        return await self.chats.chats(call.actor)

    async def _chat(self, call: Call) -> object:
        return await self.chats.chat(call.actor, call.params["chat_id"])

    async def _open_direct(self, call: Call) -> object:
        return await self.chats.open_direct(call.actor, call.body)

    async def _create_chat(self, call: Call) -> object:
        return await self.chats.create(call.actor, call.body)

    async def _history(self, call: Call) -> object:
        query = call.query
        if "limit" not in call.request.query:
            # without a limit: the configured history-on-connect page (SPEC F2)
            limit = min(self.settings.history_on_connect, limits.HISTORY_PAGE_MAX)
            query = msgspec.structs.replace(query, limit=limit)
        return await self.messages.history(call.actor, call.params["chat_id"], query)

    async def _send(self, call: Call) -> object:
        return await self.messages.post(call.actor, call.params["chat_id"], call.body)

    async def _message(self, call: Call) -> object:
        return await self.messages.message(call.actor, call.params["message_id"])

    async def _mark_read(self, call: Call) -> object:
        return await self.messages.mark_read(call.actor, call.params["chat_id"], call.body)

    async def _unread(self, call: Call) -> object:
        return await self.messages.unread(call.actor, call.query)

    async def _comment(self, call: Call) -> object:
        return await self.messages.comment(call.actor, call.params["message_id"], call.body)

    async def _thread(self, call: Call) -> object:
        return await self.messages.thread(call.actor, call.params["message_id"])

    async def _mark_thread_read(self, call: Call) -> object:
        await self.messages.mark_thread_read(call.actor, call.params["message_id"], call.body)
        return Ok()

    # --- groups ------------------------------------------------------------------

    async def _members(self, call: Call) -> object:
        return await self.chats.members(call.actor, call.params["chat_id"])

    async def _invite(self, call: Call) -> object:
        return await self.chats.invite(call.actor, call.params["chat_id"], call.body)

    async def _remove_member(self, call: Call) -> object:
        await self.chats.remove_member(call.actor, call.params["chat_id"], call.params["login"])
        return Ok()

    async def _create_link(self, call: Call) -> object:
        return await self.chats.create_link(call.actor, call.params["chat_id"], call.body)

    async def _revoke_link(self, call: Call) -> object:
        await self.chats.revoke_link(call.actor, call.params["chat_id"], call.params["key"])
        return Ok()

    async def _join(self, call: Call) -> object:
        return await self.chats.join(call.actor, call.body)

    async def _invite_page(self, call: Call) -> object:
        # A browser (Accept: text/html) gets a small page; anything else the typed JSON.
        html = "text/html" in (call.request.headers.get("accept") or "")
        try:
            page = await self.chats.invite_page(call.params["chat_name"], call.query.key)
        except ApiError as exc:
            if not html or exc.code != ErrorCode.FORBIDDEN:
                raise
            body, status = invite_html(None, exc.message), 403
        else:
            if not html:
                return page
            body, status = invite_html(page), 200
        return Response(
            status=status,
            body=body,
            content_type="text/html; charset=utf-8",
            headers=list(PAGE_HEADERS),
        )

    async def _join_requests(self, call: Call) -> object:
        return await self.chats.join_requests(call.actor, call.params["chat_id"])

    async def _approve(self, call: Call) -> object:
        return await self.chats.approve(call.actor, call.params["chat_id"], call.params["login"])

    async def _reject(self, call: Call) -> object:
        await self.chats.reject(call.actor, call.params["chat_id"], call.params["login"])
        return Ok()

    # --- moderation and time ------------------------------------------------------

    def _connection_count(self) -> int:
        return 0 if self.http_server is None else self.http_server.connections

    def _moderation_handlers(self) -> dict[str, EndpointHandler]:
        return {
            "schedule": self._schedule,
            "scheduled": self._scheduled,
            "cancel_scheduled": self._cancel_scheduled,
            "complain": self._complain,
            "admin_users": self._admin_users,
            "admin_complaints": self._admin_complaints,
            "admin_dismiss": self._admin_dismiss,
            "admin_ban": self._admin_ban,
            "admin_unban": self._admin_unban,
            "admin_stats": self._admin_stats,
            "admin_settings": self._admin_settings,
        }

    async def _schedule(self, call: Call) -> object:
        return await self.scheduler.schedule(call.actor, call.body)

    async def _scheduled(self, call: Call) -> object:
        return await self.scheduler.scheduled(call.actor)

    async def _cancel_scheduled(self, call: Call) -> object:
        return await self.scheduler.cancel(call.actor, call.params["scheduled_id"])

    async def _complain(self, call: Call) -> object:
        return await self.moderation.complain(call.actor, call.body)

    async def _admin_users(self, call: Call) -> object:
        return await self.admin.users(call.actor)

    async def _admin_complaints(self, call: Call) -> object:
        return await self.admin.complaints(call.actor)

    async def _admin_dismiss(self, call: Call) -> object:
        return await self.admin.dismiss(call.actor, call.params["complaint_id"])

    async def _admin_ban(self, call: Call) -> object:
        return await self.admin.ban(call.actor, call.body)

    async def _admin_unban(self, call: Call) -> object:
        return await self.admin.unban(call.actor, call.params["login"])

    async def _admin_stats(self, call: Call) -> object:
        return await self.admin.stats(call.actor)

    async def _admin_settings(self, call: Call) -> object:
        return await self.admin.effective_settings(call.actor)

    # --- the event stream ---------------------------------------------------------

    async def _events(self, call: Call) -> object:
        actor = call.actor
        after: int | None = call.query.last_event_id if call.query is not None else None
        header = call.request.headers.get("last-event-id")
        if header is not None and header.strip():
            text = header.strip()
            if not text.isascii() or not text.isdigit() or len(text) > 18:
                raise ApiError(ErrorCode.INVALID, "Last-Event-ID must be an event id")
            after = int(text)
        limit = self.settings.event_queue_max_bytes

        async def produce(stream: ResponseStream) -> None:
            sub = self.events.attach(actor.user_id, actor.session_id, stream)
            try:
                if after is not None:
                    sub.hold()

                    async def send(frames: list[bytes]) -> None:
                        stream.writelines(frames)
                        if stream.buffer_size() > limit:
                            await stream.drain()

                    sub.release(await self.events.catch_up(actor.user_id, after, send))
                # heartbeats come from the hub's one shared timer (started by serve)
                await stream.wait_closed()
            finally:
                self.events.detach(sub)

        return StreamResponse(
            produce, content_type="text/event-stream", headers=list(_STREAM_HEADERS)
        )
