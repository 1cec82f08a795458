"""The session: logging in, the live event stream, and the session's end.

:class:`LiveSession` is the part of the app that logs in (or resumes a saved token),
builds what a session has -- the client, the local cache, the store, the main screen,
the outbox -- shows the main screen from the cache at once and then goes live: the
event stream and the outbox run as the app's workers (they outlive every screen). Each
live event goes to the store, and what changed to the screens; the connection's state
goes to the outbox (online or not) and the status bar. When the session ends (logged
out, expired, ended from another client) it is back to the login screen.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from textual.worker import Worker, WorkerCancelled, WorkerFailed

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    ErrorCode,
    Event,
    Message,
    MessageCreated,
    MessengerError,
    ReadReceipt,
    Session,
    SessionEnded,
    ThreadActivity,
    ToDeviceWaiting,
)

from .. import commands as slash
from ..api import Client, ServerUnavailable
from ..cache import Cache, PendingSend
from ..config import ClientConfig
from ..events import ConnectionState, EventStream
from ..outbox import Outbox
from .e2ee import Encryption
from .groups import Groups
from .host import Host
from .messages import ReceiptArrived, ThreadChanged, TypingChanged
from .moderation import Moderation
from .options import TuiOptions
from .people import People
from .reading import ChatReader
from .robust import describe_error, session_over_reason
from .screens.login import LoginScreen
from .screens.main import MainScreen
from .store import Change, ChatStore
from .tasks import app_work
from .threads import Threads

__all__ = ["LiveSession"]

log = logging.getLogger(__name__)


_REFUSED = {"edit": "Not edited", "react": "Reaction not added", "unreact": "Reaction kept"}
"""How a refused edit or reaction change is said (a send: "Not sent")."""


class LiveSession:
    """The session's life, from login to its end, for one app."""

    def __init__(
        self,
        app: Host,
        config: ClientConfig,
        options: TuiOptions,
        reader: ChatReader,
        people: People,
        moderation: Moderation,
        threads: Threads,
        groups: Groups,
    ) -> None:
        self.app = app
        self.config = config
        self.options = options
        self.reader = reader
        self.people = people
        self.moderation = moderation
        self.threads = threads
        self.groups = groups
        self.outbox: Outbox | None = None
        """Sends of the session: pending at once, retried until sent (None: logged out)."""
        self.stream: EventStream | None = None
        """The live event stream of the session."""
        self.e2ee: Encryption | None = None
        """The session's device keys and encrypted chats (issue 14)."""
        self._draft: tuple[str, str] | None = None
        """(login, text) left in the composer when a session ended, for that login's next."""

    # --- logging in ------------------------------------------------------------------

    def start(self) -> None:
        """Log in with the configured password, resume a saved session, or ask."""
        app, config = self.app, self.config
        saved = config.tokens.load(app.server)
        if config.login and config.password:
            app.push_screen(LoginScreen(app.server, config.login))
            self.log_in(app.server, config.login, config.password, False, False)
        elif saved is not None and saved[0]:
            login, token = saved
            self.start_session(Client(app.server, token, device=self._device()), login)
        else:
            app.push_screen(LoginScreen(app.server, config.login or ""))

    def _device(self) -> str:
        return self.config.device or "messenger TUI"

    @app_work(exclusive=True, group="login")
    async def log_in(
        self, server: str, login: str, password: str, register: bool, remember: bool
    ) -> None:
        """Log in (or register) on ``server``; a refusal shows on the login screen."""
        app = self.app
        client = Client(server, device=self._device())
        try:
            if register:
                session = await client.register(login, password)
            else:
                session = await client.login(login, password)
        except MessengerError as exc:
            await client.close()
            text = describe_error(exc, server)
            if isinstance(exc, ApiError) and exc.code == ErrorCode.UNAUTHORIZED and register:
                text = exc.message
            if isinstance(app.screen, LoginScreen):
                app.screen.show_error(text)
            else:
                app.notify(text, severity="error")
            return
        app.server = server
        if remember:
            self.config.tokens.save(server, session.user.login, session.token)
        else:
            self.config.tokens.forget(server)
        self.start_session(client, session.user.login, session.last_event_id)

    def start_session(self, client: Client, login: str, last_event_id: int | None = None) -> None:
        """Show the main screen from the cache at once, then go live."""
        app, config, options = self.app, self.config, self.options
        app.client = client
        cache_root = options.cache_dir or config.dirs.data / "cache"
        try:
            cache: Cache | None = Cache.for_account(app.server, login, root=cache_root)
        except Exception:  # a broken cache must never keep the user out
            log.exception("cache unavailable; running without it")
            cache = None
        # /search falls back to the cache while the server is out of reach
        app.runner = slash.CommandRunner(client, downloads=config.dirs.downloads, cache=cache)
        encrypted: set[int] = set()
        app.trust.reset()
        self.e2ee = app.e2ee = e2ee = Encryption.load(
            client, config.dirs.data, app.server, login, encrypted, on_notice=app.trust.notice
        )
        app.runner.crypto = e2ee.crypto  # /edit of an encrypted message: ciphertext
        app.store = store = ChatStore(
            me=login, cache=cache, focused=self.reader.reading, encrypted=encrypted,
            reveal=e2ee.reveal,
        )  # fmt: skip
        store.load_cached()
        app.main = main = MainScreen(login, self.people.complete, tz=options.tz)
        main.view.disappears_at = self.moderation.disappears_at
        self.outbox = Outbox(
            client,
            store,
            on_refused=self._send_refused,
            on_session_expired=lambda exc: self.over(session_over_reason(exc)),
            on_sent=lambda pending, message: self.reader.mark_shown(),
            encrypt=lambda pending: e2ee.send(
                pending,
                store.chats.get(pending.chat_id),
                store.find(pending.reply_to) if pending.reply_to is not None else None,
            ),
            edit=e2ee.edit,
        )
        if isinstance(app.screen, LoginScreen):
            app.switch_screen(main)
        else:
            app.push_screen(main)
        # Runs once the main screen is mounted, before its first layout: the first frame
        # shows the cached chat (no frames of an empty screen before it).
        main.call_later(self._show_cached, main, cache, last_event_id)

    def _show_cached(
        self, main: MainScreen, cache: Cache | None, last_event_id: int | None
    ) -> None:
        app, store = self.app, self.app.store
        if app.main is not main or store is None:
            return  # the session ended before its screen came up
        main.bar.user = store.me
        main.bar.server = app.server.split("://", 1)[-1]
        self.reader.show_known(GENERAL_CHAT_ID)
        self.people.refresh()
        self.people.refresh_chat_list(at_once=True)  # in the first frame
        draft, self._draft = self._draft, None
        if draft is not None and draft[0] == store.me:
            main.give_back(draft[1])  # what was being typed when the last session ended
        # The network after that first frame: its start (the HTTP client and its pool,
        # the stream) would otherwise run before the frame is drawn.
        app.call_after_refresh(self._go_live, main, cache, last_event_id)

    def _go_live(self, main: MainScreen, cache: Cache | None, last_event_id: int | None) -> None:
        app, store = self.app, self.app.store
        if app.main is not main or store is None:
            return
        self.reader.load_latest(GENERAL_CHAT_ID, connect=True)
        resume = cache.last_event_id if cache is not None else None
        self._run_events(resume if resume is not None else last_event_id)
        if self.outbox is not None:
            self.outbox.put_all(store.outbox())
        self._run_outbox()

    # --- the live connection (the App's worker, not a screen's) -----------------------

    @app_work(exclusive=True, group="events")
    async def _run_events(self, last_event_id: int | None) -> None:
        app = self.app
        client, store = app.client, app.store
        assert client is not None and store is not None
        self.stream = stream = client.events(last_event_id)
        try:
            async for item in stream:
                if isinstance(item, ConnectionState):
                    self._connection_changed(item)
                    continue
                await self._keys_for(item)
                self.apply(item)
                if store.cache is not None and stream.last_event_id is not None:
                    store.cache.last_event_id = stream.last_event_id
        except ApiError as exc:
            log.info("event stream ended: %s", exc)
            if exc.code in (ErrorCode.UNAUTHORIZED, ErrorCode.SESSION_EXPIRED):
                self.over(session_over_reason(exc))
            else:
                app.notify(describe_error(exc), severity="error")
        finally:
            await stream.aclose()

    async def _keys_for(self, event: Event) -> None:
        """Room keys come before the message they open: an event that brings keys, or a
        message whose key is not here yet, fetches this device's inbox first."""
        e2ee, store = self.e2ee, self.app.store
        if e2ee is None or e2ee.crypto is None or store is None:
            return
        if isinstance(event, ToDeviceWaiting):
            if event.device_id == e2ee.crypto.device_id and await e2ee.receive():
                store.reveal_again()
            return
        message = event.message if isinstance(event, MessageCreated) else None
        if isinstance(event, ThreadActivity):
            message = event.comment
        if message is not None and message.encrypted is not None:
            if e2ee.needs_keys(message):
                await e2ee.receive()
            if e2ee.seen(message):
                self.app.refresh_chat_list()

    @app_work(exclusive=True, group="e2ee")
    async def _start_e2ee(self) -> None:
        """Once connected: publish the device keys, fetch waiting room keys, learn which
        chats are encrypted, and show again what now decrypts."""
        e2ee, store = self.e2ee, self.app.store
        if e2ee is None or store is None:
            return
        try:
            await e2ee.start(list(store.chats.values()))
        except MessengerError as exc:
            log.warning("end-to-end encryption: %s", exc)
            return
        if self.app.store is store:
            store.reveal_again()
            self.app.refresh_chat_list()
            self.app.trust.marks()  # verified peers: a mark in their chat's title

    @app_work(exclusive=True, group="resume")
    async def _resume_session(self) -> None:
        """A session resumed from a saved token learns what a login tells: its id (so a
        logout elsewhere ends only that one), admin or not (F3), the server's settings."""
        await self.known_session()

    async def known_session(self) -> Session | None:
        """This session as a login answers it; asked of the server once when resumed
        from a saved token (None while that cannot be known)."""
        app = self.app
        client = app.client
        if client is None:
            return None
        if client.session is not None:
            return client.session
        try:
            session = await client.resume()
        except ServerUnavailable as exc:
            log.info("resume: %s", exc)  # the next connect asks again
            return None
        except ApiError as exc:
            if exc.code in (ErrorCode.UNAUTHORIZED, ErrorCode.SESSION_EXPIRED):
                self.over(session_over_reason(exc))
            else:
                app.notify(describe_error(exc), severity="error")
            return None
        app.refresh_bindings()  # admin or not: F3
        return session

    def _connection_changed(self, state: ConnectionState) -> None:
        app = self.app
        app.connection = state
        if app.main is not None:
            app.main.bar.state = state
        if state.state == "connected":
            if self.outbox is not None:
                self.outbox.online.set()
            if app.client is not None and app.client.session is None:
                self._resume_session()
            self._start_e2ee()
            if app.main is not None:
                app.main.view.older_loaded()  # paging that stopped offline goes on
            self.refresh_all()
            self.groups.connected()
            self.moderation.check_ban()
        elif state.state in ("offline", "reconnecting"):
            if self.outbox is not None:
                self.outbox.online.clear()
            self.reader.chats_fresh = False
        if state.state in ("connected", "offline"):
            self.people.refresh()

    def apply(self, event: Event) -> None:
        """A live event: into the store, then to whatever shows what it changed."""
        app = self.app
        store, main = app.store, app.main
        assert store is not None and main is not None
        if isinstance(event, SessionEnded):
            # Every session of the user hears of it; only the one that ended stops. While
            # this one is not known yet (resumed offline), its own end shows as the 401
            # of the next connect.
            session = app.client.session if app.client is not None else None
            if session is None or event.session_id != session.session_id:
                return
            if not event.expired:  # an expiry shows as the session_expired of a request
                self.over("This session was ended from another client")
            return
        if isinstance(event, ReadReceipt):
            receipt = ReceiptArrived(event.chat_id, event.login, event.up_to, event.thread_root)
            main.post_message(receipt)
            return
        change = store.apply(event)
        self._show_change(change)
        self.moderation.event(event)
        self.groups.event(event)
        self.threads.event(event)

    def _show_change(self, change: Change) -> None:
        app = self.app
        store, main = app.store, app.main
        assert store is not None and main is not None
        if change.reset:
            self.refresh_all()
            if main.current_chat is not None:
                app.open_chat(main.current_chat)
        if change.chats:
            app.refresh_chat_list()
        if change.users:
            self.people.refresh()
        if change.notice:
            app.notify(change.notice)
        if change.timeline is not None and change.timeline == main.current_chat:
            self.reader.mark_shown()
        if change.typing is not None:
            main.post_message(TypingChanged(change.typing, store.typing.get(change.typing, {})))
        message = change.new_message
        if message is not None:
            self._notify_message(message)
        root = main.thread_root
        if root is not None:
            thread = store.threads.get(root.id)
            if thread is not None and len(thread) and thread[0].id == root.id:
                main.post_message(ThreadChanged(thread[0]))
        comment = change.new_comment
        if comment is not None and (root is None or comment.thread_root != root.id):
            self._notify_comment(comment)

    def _notify_comment(self, comment: Message) -> None:
        """A toast for a comment in a thread the user takes part in, when not open."""
        if self.options.toasts:
            text = comment.text if len(comment.text) <= 120 else comment.text[:119] + "…"
            self.app.notify(text, title=f"{comment.author} commented", timeout=6)

    def _notify_message(self, message: Message) -> None:
        """A toast (and the bell) for a private message or a mention not in view."""
        app = self.app
        store, main = app.store, app.main
        assert store is not None and main is not None
        chat = store.chats.get(message.chat_id)
        mentioned = f"@{store.me}" in message.text
        direct = chat is not None and chat.kind == "direct"
        if not (direct or mentioned) or self.reader.reading(message.chat_id):
            return
        if self.options.toasts:
            where = "private" if direct or chat is None else chat.name
            text = message.text if len(message.text) <= 120 else message.text[:119] + "…"
            app.notify(text or "(attachment)", title=f"{message.author} · {where}", timeout=6)
        if self.options.bell:
            app.bell()

    @app_work(exclusive=True, group="refresh")
    async def refresh_all(self) -> None:
        """After (re)connecting: chats, people and the open chat from the server."""
        app = self.app
        client, store, main = app.client, app.store, app.main
        if client is None or store is None or main is None:
            return
        try:
            store.refreshing_chats()
            chats = await client.chats()
            store.set_chats(chats.chats)
            if self.e2ee is not None:
                await self.e2ee.learn(chats.chats)
            current = store.chats.get(main.current_chat or 0)
            app.refresh_chat_list()
            if main.current_chat is not None and current is None:
                app.open_chat(GENERAL_CHAT_ID)  # the chat in front is gone
                current = store.chats.get(GENERAL_CHAT_ID)
            await self.reader.settle(current)
            users = await client.users()
            store.set_users(users.users)
            contacts = await client.contacts()
            store.set_contacts(contacts.contacts)
            self.people.refresh()
        except ServerUnavailable as exc:
            log.info("refresh failed: %s", exc)

    # --- sending -------------------------------------------------------------------------

    @app_work(exclusive=True, group="outbox")
    async def _run_outbox(self) -> None:
        """The outbox's loop, as the app's worker (it outlives every screen)."""
        if self.outbox is not None:
            await self.outbox.run()

    def _send_refused(self, pending: PendingSend, exc: ApiError) -> None:
        """The server refused a send: say why, show a ban or wait, keep the text (an
        edit's text too, to copy; the message shows its old one again)."""
        what = f"{_REFUSED.get(pending.act, 'Not sent')}: {describe_error(exc)}"
        self.app.notify(what, severity="error")
        self.moderation.refusal(exc)
        main, store = self.app.main, self.app.store
        if main is None:
            return
        if pending.act == "send":
            replied = store.find(pending.reply_to) if store and pending.reply_to else None
            main.send_again(pending.text, reply_to=replied, thread_root=pending.thread_root)
        elif pending.act == "edit" and store is not None and pending.target is not None:
            # an edit again, never a new message: Enter tries again, Esc gives up
            main.edit_again(store.find(pending.target), pending.text, describe_error(exc))

    # --- the end -------------------------------------------------------------------------

    @app_work(group="logout")
    async def log_out(self) -> None:
        """End this session on the server, then here."""
        client = self.app.client
        if client is not None:
            try:
                if self.e2ee is not None and self.e2ee.crypto is not None:
                    await self.e2ee.crypto.unpublish()  # nobody encrypts to it any more
                await client.logout()
            except MessengerError as exc:
                log.info("logout: %s", exc)
        self.over("Logged out")

    @app_work(group="closing")
    async def _close_when_done(
        self, client: Client | None, cache: Cache | None, workers: list[Worker[Any]]
    ) -> None:
        """Close an ended session's client and cache once every worker that ran when it
        ended is done (cancelled or not: one still using them must not find them closed).
        They were left open before: each logout kept a connection pool and a database."""
        for worker in workers:
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await worker.wait()
        if client is not None:
            await client.close()
        if cache is not None:
            cache.close()

    def over(self, reason: str) -> None:
        """The session ended: forget its token, stop its workers, back to the login."""
        app = self.app
        self.config.tokens.forget(app.server)
        if self.outbox is not None:
            self.outbox.close()  # its sends stay in the cache for the next login
            self.outbox = None
        app.workers.cancel_group(app, "events")
        app.workers.cancel_group(app, "outbox")
        app.workers.cancel_group(app, "e2ee")
        if self.e2ee is not None:
            self.e2ee.close()
        self.e2ee = app.e2ee = None
        login = app.store.me if app.store is not None else ""
        if app.main is not None and app.main.composer.text.strip():
            self._draft = (login, app.main.composer.text)
        running = [w for w in app.workers if not w.is_finished]
        self._close_when_done(app.client, app.store.cache if app.store else None, running)
        app.client, app.store, app.main = None, None, None
        while len(app.screen_stack) > 2:
            app.pop_screen()
        app.switch_screen(LoginScreen(app.server, login, error=reason))
