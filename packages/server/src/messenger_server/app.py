"""The application: the composition root, and the endpoint table bound to the services.

:func:`build_services` is the one place that builds the services, each with its
collaborators as constructor arguments. One :class:`App` per server:
:meth:`App.handle` finds the endpoint of a request (:class:`messenger_protocol.Router`),
authenticates the bearer token when the endpoint needs one, decodes the typed body
and query, calls the service method the endpoint is bound to (:func:`bind`), and
encodes the typed result. An :class:`ApiError` becomes a typed error body in the
transport.
"""

from __future__ import annotations

import inspect
import logging
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from argon2 import PasswordHasher

from messenger_protocol import (
    ENDPOINTS,
    AnyEndpoint,
    ApiError,
    ErrorCode,
    Health,
    LoopLag,
    Ok,
    Router,
    decode,
    decode_query,
    encode,
    openapi_document,
)
from messenger_protocol import __version__ as protocol_version
from messenger_protocol import endpoints as ep

from .blobs import open_blobs
from .bus import is_local_bus, test_fault
from .bus.factory import bus_for
from .clock import Clock
from .config import Settings
from .file_routes import file_handlers
from .http import HttpServer, Request, Response, ResponseStream, StreamResponse
from .hub import Hub, HubStream, Subscription
from .invite_page import PAGE_HEADERS, invite_html
from .loglimit import LogLimiter
from .looplag import LoopLagMeter
from .services import (
    AccountService,
    Actor,
    ChatService,
    ContactService,
    EventService,
    LoginThrottle,
    MessageService,
    StatusService,
)
from .services.actor import address_ip
from .services.admin import AdminService
from .services.annotations import AnnotationService
from .services.files import FileService
from .services.keys import KeyService
from .services.moderation import ModerationService
from .services.notify import NotifyService
from .services.presence import PresenceService
from .services.retention import RetentionService, Visibility
from .services.scheduler import SchedulerService
from .services.search import SearchService
from .storage import Store, store_for

__all__ = [
    "App",
    "Call",
    "EndpointHandler",
    "LiveStream",
    "ServiceMethod",
    "Services",
    "address_ip",
    "bind",
    "build_services",
]

log = logging.getLogger(__name__)
_store_log_limit = LogLimiter(logger=log)
"""A database that is away fails every request: a few lines per window say so."""

_STREAM_HEADERS = [("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")]
_ANSWERS = (Response, StreamResponse)
"""What a handler returns as it is (the union ``Response | StreamResponse`` was built
anew at every request)."""


@dataclass(slots=True)
class Call:
    """One decoded API call, as a handler sees it."""

    request: Request
    endpoint: AnyEndpoint
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

ServiceMethod = Callable[..., Awaitable[object]]
"""A service method an endpoint is bound to (see :func:`bind`)."""


def bind(endpoint: AnyEndpoint, method: ServiceMethod, *, actor: bool = True) -> EndpointHandler:
    """The handler that answers ``endpoint`` with ``method``.

    The method is called with the acting user (unless ``actor`` is False), then the
    path parameters in the order of the path, then the body, then the query, as the
    table declares them; a method that returns None answers :class:`Ok`. Its
    parameters and its return type are checked against the table here, at start,
    not at the first request.
    """
    names = endpoint.params
    count = int(actor) + len(names) + (endpoint.request is not None) + (endpoint.query is not None)
    try:
        inspect.signature(method).bind(*range(count))
    except TypeError as exc:
        raise TypeError(f"{endpoint.name}: {method.__qualname__} cannot take {count} args") from exc
    returns = typing.get_type_hints(method).get("return")
    answers = Ok if returns is type(None) else returns
    if answers is not endpoint.response:
        raise TypeError(
            f"{endpoint.name}: {method.__qualname__} returns {returns}, the table says"
            f" {endpoint.response}"
        )
    with_body = endpoint.request is not None
    with_query = endpoint.query is not None

    async def handler(call: Call) -> object:
        args: list[Any] = [call.actor] if actor else []
        args += [call.params[name] for name in names]
        if with_body:
            args.append(call.body)
        if with_query:
            args.append(call.query)
        result = await method(*args)
        return Ok() if result is None else result

    handler.__qualname__ = f"bind({endpoint.name})"
    return handler


@dataclass(frozen=True, slots=True)
class LiveStream:
    """A live event stream as the app opened it (:meth:`App.open_stream`)."""

    sub: Subscription
    stream_id: str
    """Its id for presence."""

    @property
    def stream(self) -> HubStream:
        """Where its frames go."""
        return self.sub.stream


@dataclass(frozen=True, slots=True)
class Services:
    """Every service of one server, wired together by :func:`build_services`."""

    store: Store
    events: EventService
    presence: PresenceService
    visibility: Visibility
    moderation: ModerationService
    throttle: LoginThrottle
    accounts: AccountService
    chats: ChatService
    files: FileService
    messages: MessageService
    annotations: AnnotationService
    contacts: ContactService
    status: StatusService
    scheduler: SchedulerService
    retention: RetentionService
    admin: AdminService
    notify: NotifyService
    search: SearchService
    keys: KeyService


def build_services(
    settings: Settings,
    clock: Clock,
    hub: Hub,
    store: Store,
    *,
    connections: Callable[[], int] = lambda: 0,
    started_at: Callable[[], float] | None = None,
    loop_lag: Callable[[], LoopLag] = LoopLag,
) -> Services:
    """The composition root: each service gets its collaborators as constructor arguments."""
    visibility = Visibility(store, clock, settings.message_ttl, node=settings.node_name,
                            several_nodes=not is_local_bus(settings.bus),
                            span_delay=test_fault("delay_spans_ms") / 1000)  # fmt: skip
    bus = bus_for(settings.bus, settings.bus_channel, settings.store)
    events = EventService(
        store, hub, clock, settings.event_retention, bus=bus, node_id=settings.node_name,
        resumed=visibility.resumed,
    )  # fmt: skip
    # the stream handler tells presence of each stream (the hub knows nothing of it)
    presence = PresenceService(
        store, events, clock, visibility, node=settings.node_name,
        leased=not is_local_bus(settings.bus), lease=settings.node_lease,
    )  # fmt: skip
    moderation = ModerationService(store, events, clock, settings)
    throttle = LoginThrottle(store, clock, settings)
    accounts = AccountService(
        store, events, clock, throttle, presence, admins=settings.admins,
        history_on_connect=settings.history_on_connect,
        hash_concurrency=settings.login_hash_concurrency,
        hasher=PasswordHasher(
            time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib
        ),
        session_idle_timeout=settings.session_idle_timeout,
        session_max_age=settings.session_max_age, message_ttl=settings.message_ttl,
        cache_sessions=is_local_bus(settings.bus),
    )  # fmt: skip
    files_dir = settings.data_dir / "files"
    files = FileService(
        store, clock, files_dir, max_bytes=settings.max_file_bytes,
        user_quota=settings.user_quota_bytes, allowed_mime=settings.allowed_mime,
        blobs=open_blobs(settings.blob_store, files_dir, s3_endpoint=settings.s3_endpoint),
        delete_delay=test_fault("delay_blob_delete_ms") / 1000,
    )  # fmt: skip
    notify = NotifyService(store, events, clock, visibility=visibility)
    messages = MessageService(
        store, events, clock, max_text=settings.max_message_text,
        history_on_connect=settings.history_on_connect,
        send_checks=[moderation.check_send], attachments=files, visibility=visibility,
        mentions=notify,
    )  # fmt: skip
    chats = ChatService(
        store, events, accounts, clock, base_url=settings.base_url, visibility=visibility
    )
    annotations = AnnotationService(
        store, events, clock, messages, edit_window=settings.edit_window, files=files,
        ban_check=moderation.require_not_banned,
    )  # fmt: skip
    return Services(
        store=store,
        events=events,
        presence=presence,
        visibility=visibility,
        moderation=moderation,
        throttle=throttle,
        accounts=accounts,
        chats=chats,
        files=files,
        messages=messages,
        annotations=annotations,
        contacts=ContactService(store, accounts, clock),
        status=StatusService(store, accounts, chats, events, presence, clock),
        scheduler=SchedulerService(
            store,
            events,
            messages,
            moderation,
            clock,
            settings,
            exit_mid_pass=test_fault("exit_mid_schedule"),
        ),
        retention=RetentionService(
            store, events, clock, settings, exit_mid_pass=test_fault("exit_mid_retention")
        ),
        admin=AdminService(
            store,
            events,
            accounts,
            moderation,
            clock,
            settings,
            connections=connections,
            started_at=started_at,
            loop_lag=loop_lag,
        ),
        notify=notify,
        search=SearchService(store, attachments=files, visibility=visibility),
        keys=KeyService(store, events, clock),
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
        self.loop_lag = LoopLagMeter()
        """This node's event-loop lag (sampled from :meth:`start` to :meth:`close`)."""
        services = build_services(
            settings, clock, hub,
            store
            or store_for(
                settings.store, settings.data_dir, sqlite_synchronous=settings.sqlite_synchronous
            ),
            connections=self._connection_count, started_at=lambda: self.started_at,
            loop_lag=self.loop_lag.snapshot,
        )  # fmt: skip
        self.services = services
        self.store = services.store
        self.events = services.events
        self.presence = services.presence
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
        self.visibility = services.visibility
        self.admin = services.admin
        self.router = Router(ENDPOINTS)
        self._openapi = encode(openapi_document())
        self.handlers = self._handlers()
        self.on_close: list[Callable[[], Awaitable[None]]] = []
        """Run at :meth:`close` before the store closes (later services stop here)."""

    async def start(self) -> None:
        """Open the store (running migrations) and load what the services need."""
        self.loop_lag.start()
        await self.store.open()
        await self.events.start()
        await self.presence.start()
        await self.accounts.start()
        self.started_at = self.clock.now()
        await self.files.start()
        self.on_close.append(self.files.close)
        await self.moderation.start()
        await self.scheduler.start()
        await self.visibility.start()
        await self.retention.start()
        self.on_close.append(self.moderation.close)
        self.on_close.append(self.visibility.close)
        self.on_close.append(self.retention.close)
        self.on_close.append(self.scheduler.close)
        log.info("store open at %s", self.settings.data_dir)

    def drain(self) -> None:
        """Shutdown begins (SIGTERM): not ready any more, every event stream closed after
        what is queued for it; running requests go on (the serve loop waits for them)."""
        log.info("draining: not ready, closing %d event streams", self.hub.stream_count())
        self.events.drain()

    async def close(self) -> None:
        """Stop later services, save presence, commit and close the store."""
        for stop in reversed(self.on_close):
            try:
                await stop()
            except Exception:
                log.exception("error while closing")
        await self.presence.close()
        await self.accounts.close()
        await self.events.close()
        await self.store.close()
        self.loop_lag.stop()

    # --- dispatch -------------------------------------------------------------

    async def handle(self, request: Request) -> Response | StreamResponse:
        """Answer one request (errors are raised as ApiError for the transport); while the
        database does not answer, 503 ``unavailable``: nothing was stored, try again."""
        try:
            return await self._answer(request)
        except self.store.unavailable as exc:
            if _store_log_limit.allow("database unavailable"):
                log.warning("%s %s: the database did not answer: %s",
                            request.method, request.path, exc)  # fmt: skip
            raise ApiError(
                ErrorCode.UNAVAILABLE, "the database is not reachable; nothing was stored"
            ) from None

    async def _answer(self, request: Request) -> Response | StreamResponse:
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
        if isinstance(result, _ANSWERS):
            return result
        return Response(body=encode(result))

    async def _authenticate(self, request: Request, endpoint: AnyEndpoint) -> Actor:
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

    def _handlers(self) -> dict[str, EndpointHandler]:
        """Every endpoint of the table bound to the service method that answers it."""
        s = self.services
        # (actor, *path params in path order, body, query) -> the answer (None: Ok)
        bound: dict[AnyEndpoint, ServiceMethod] = {
            ep.LOGOUT: s.accounts.logout,
            ep.LOGOUT_ALL: s.accounts.logout_all,
            ep.SESSION: s.accounts.session,
            ep.STATUS: s.status.status,
            ep.CONTACTS: s.contacts.contacts,
            ep.ADD_CONTACT: s.contacts.add,
            ep.DEL_CONTACT: s.contacts.remove,
            ep.CHATS: s.chats.chats,
            ep.CHAT: s.chats.chat,
            ep.OPEN_DIRECT: s.chats.open_direct,
            ep.CREATE_CHAT: s.chats.create,
            ep.SEND: s.messages.post,
            ep.HISTORY: s.messages.history,
            ep.MESSAGE: s.messages.message,
            ep.MARK_READ: s.messages.mark_read,
            ep.UNREAD: s.messages.unread,
            ep.EDIT_MESSAGE: s.annotations.edit,
            ep.DELETE_MESSAGE: s.annotations.delete,
            ep.MESSAGE_EDITS: s.annotations.edits,
            ep.REACT: s.annotations.react,
            ep.UNREACT: s.annotations.unreact,
            ep.PIN: s.annotations.pin,
            ep.UNPIN: s.annotations.unpin,
            ep.PINS: s.annotations.pins,
            ep.COMMENT: s.messages.comment,
            ep.THREAD: s.messages.thread,
            ep.MARK_THREAD_READ: s.messages.mark_thread_read,
            ep.SEARCH: s.search.search,
            ep.MENTIONS: s.notify.mentions,
            ep.MUTE: s.notify.mute,
            ep.CHAT_OPTIONS: s.notify.chat_options,
            ep.TYPING: s.notify.typing,
            ep.SEEN_BY: s.notify.seen_by,
            ep.PRIVACY: s.notify.privacy,
            ep.SET_PRIVACY: s.notify.set_privacy,
            ep.MEMBERS: s.chats.members,
            ep.INVITE: s.chats.invite,
            ep.REMOVE_MEMBER: s.chats.remove_member,
            ep.CREATE_LINK: s.chats.create_link,
            ep.REVOKE_LINK: s.chats.revoke_link,
            ep.JOIN: s.chats.join,
            ep.JOIN_REQUESTS: s.chats.join_requests,
            ep.APPROVE: s.chats.approve,
            ep.REJECT: s.chats.reject,
            ep.SCHEDULE: s.scheduler.schedule,
            ep.SCHEDULED: s.scheduler.scheduled,
            ep.CANCEL_SCHEDULED: s.scheduler.cancel,
            ep.COMPLAIN: s.moderation.complain,
            ep.ADMIN_USERS: s.admin.users,
            ep.ADMIN_COMPLAINTS: s.admin.complaints,
            ep.ADMIN_DISMISS: s.admin.dismiss,
            ep.ADMIN_BAN: s.admin.ban,
            ep.ADMIN_UNBAN: s.admin.unban,
            ep.ADMIN_STATS: s.admin.stats,
            ep.ADMIN_SETTINGS: s.admin.effective_settings,
            ep.UPLOAD_KEYS: s.keys.upload,
            ep.QUERY_KEYS: s.keys.query,
            ep.CLAIM_KEYS: s.keys.claim,
            ep.SEND_TO_DEVICE: s.keys.send,
            ep.TO_DEVICE: s.keys.inbox,
            ep.ACK_TO_DEVICE: s.keys.ack,
            ep.DELETE_DEVICE_KEYS: s.keys.remove_device,
        }
        # the same, without the actor: what anyone logged in may see
        public: dict[AnyEndpoint, ServiceMethod] = {
            ep.USERS: s.accounts.users,
            ep.USER: s.accounts.user,
            ep.READY: s.events.ready,
        }
        handlers = {e.name: bind(e, m) for e, m in bound.items()}
        handlers.update({e.name: bind(e, m, actor=False) for e, m in public.items()})
        # what needs the request itself: its address, its query string, a stream
        handlers.update(
            {
                ep.HEALTH.name: self._health,
                ep.OPENAPI.name: self._openapi_doc,
                ep.REGISTER.name: self._register,
                ep.LOGIN.name: self._login,
                ep.INVITE_PAGE.name: self._invite_page,
                ep.EVENTS.name: self._events,
            }
        )
        handlers.update(file_handlers(s.files, self.settings.max_file_bytes))
        missing = {e.name for e in ENDPOINTS} - handlers.keys()
        if missing:
            raise RuntimeError(f"endpoints without a handler: {sorted(missing)}")
        return handlers

    async def _health(self, call: Call) -> object:
        return Health(status="ok", version=protocol_version)

    async def _openapi_doc(self, call: Call) -> object:
        return Response(body=self._openapi)

    async def _register(self, call: Call) -> object:
        return await self.accounts.register(call.body, address_ip(call.request.peer))

    async def _login(self, call: Call) -> object:
        return await self.accounts.login(call.body, address_ip(call.request.peer))

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

    def _connection_count(self) -> int:
        return 0 if self.http_server is None else self.http_server.connections

    # --- the event stream ---------------------------------------------------------

    def open_stream(self, actor: Actor, stream: HubStream) -> LiveStream:
        """A live event stream of the actor's session: on this node's hub, and told to
        presence (online if it is the user's first)."""
        sub = self.events.attach(actor.user_id, actor.session_id, stream)
        stream_id = self.presence.opened(actor.user_id, actor.login, actor.session_id, stream.peer)
        return LiveStream(sub, stream_id)

    def close_stream(self, live: LiveStream) -> None:
        """The stream went (idempotent): off the hub, and told to presence."""
        self.events.detach(live.sub)
        self.presence.closed(live.stream_id)

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
        if self.events.draining:
            # it would be closed at once: the client reconnects (elsewhere) as it would then
            raise ApiError(ErrorCode.UNAVAILABLE, "the node is shutting down")
        resume = after is not None
        # without a cursor: from the newest event in the database, fixed before the
        # response head goes out (whatever commits after the client sees the stream open
        # is on it), whichever node's window is ahead
        start = after if after is not None else await self.events.stream_start()
        # the user's online span is committed before the head goes out (a send on any
        # node once the client sees the stream counts them online); a HEAD opens none
        held = call.request.method != "HEAD"
        if held:
            await self.visibility.hold_online(actor.user_id)

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self.visibility.release(actor.user_id)

        async def produce(stream: ResponseStream) -> None:
            try:
                live = self.open_stream(actor, stream)
            finally:
                release()  # the stream (if it attached) keeps them online now
            sub = live.sub
            try:
                # a new stream whose node delivered nothing since its start goes live at
                # once; otherwise it replays what the hub gave out before it attached
                if resume or self.events.published_seq > start:
                    sub.hold()

                    async def send(frames: list[bytes]) -> None:
                        stream.writelines(frames)
                        if stream.buffer_size() > limit:
                            await stream.drain()

                    upto = await self.events.catch_up(actor.user_id, start, send, resume=resume)
                    sub.release(upto)
            except ApiError as exc:
                # the node cannot replay it now (behind the event log): the stream ends
                # and the client resumes by Last-Event-ID (on another node, or later)
                log.warning("event stream of %s ended before its replay: %s", actor.login, exc)
                self.close_stream(live)
                return
            except BaseException:
                self.close_stream(live)
                raise
            # caught up: the hub writes the live frames and its one timer the heartbeats;
            # nothing waits on an idle stream (no task per stream)
            stream.keep_open(partial(self.close_stream, live))

        return StreamResponse(
            produce, content_type="text/event-stream", headers=list(_STREAM_HEADERS),
            abandoned=release,
        )  # fmt: skip
