"""The Textual app: ``run(config)`` opens it; :class:`MessengerApp` owns the session.

The app owns everything long-lived -- the client, the local cache, the store, the
live event worker and the outbox worker -- because workers die with the DOM node
that started them, and screens come and go. Screens show state and post what the
user does; network calls run in workers and their failures become notifications.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import CommandPalette
from textual.worker import NoActiveWorker, WorkerFailed, get_current_worker

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    Attachment,
    Chat,
    ErrorCode,
    Event,
    Message,
    MessengerError,
    Session,
    SessionEnded,
)

from .. import commands as slash
from ..api import Client, ServerUnavailable, new_client_id
from ..cache import Cache, PendingSend
from ..config import ClientConfig
from ..events import ConnectionState, EventStream
from ..logs import setup_logging
from ..outbox import Outbox
from .commands import ChatsProvider, MessengerCommands
from .files import Files
from .host import Host
from .messages import FileUploaded, LoginRequested, OpenChat, OpenDirect
from .moderation import Moderation
from .options import TuiOptions, load_options
from .people import People
from .reading import ChatReader
from .robust import describe_error, report_failure, session_over_reason
from .screens.groups import connected as groups_connected
from .screens.groups import group_event, request_decided
from .screens.help import HelpScreen, help_rows
from .screens.login import LoginScreen
from .screens.main import MainScreen
from .screens.output import OutputScreen
from .screens.status import StatusScreen
from .store import Change, ChatStore
from .threads import thread_event
from .widgets.attachments import AttachmentClicked
from .widgets.chat_list import ChatList
from .widgets.composer import Composer
from .widgets.message_view import MessageView
from .widgets.users_panel import UsersPanel

__all__ = ["MessengerApp", "TuiOptions", "load_options", "run"]

log = logging.getLogger(__name__)


class MessengerApp(Host):
    """The messenger terminal app."""

    CSS_PATH = "app.tcss"
    TITLE = "messenger"
    COMMANDS = App.COMMANDS | {MessengerCommands}
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True,
                tooltip="Quit (the session stays logged in)"),
        Binding("f3", "admin", "Admin", id="app.admin",
                tooltip="Users, complaint queue, server stats and settings (admins)"),
        Binding("f1", "help_screen", "Help", id="app.help",
                tooltip="Every command and key, searchable (also /help)"),
    ]  # fmt: skip

    def __init__(
        self,
        config: ClientConfig | None = None,
        options: TuiOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.config = config or ClientConfig()
        self.options = options or TuiOptions()
        self.clock = clock
        self.server = self.config.server.rstrip("/")
        self.client: Client | None = None
        self.runner: slash.CommandRunner | None = None
        self.store: ChatStore | None = None
        self.main: MainScreen | None = None
        self.stream: EventStream | None = None
        self.connection = ConnectionState("connecting")
        self.outbox: Outbox | None = None
        self.reader = ChatReader(self)
        self.people = People(self)
        self.moderation = Moderation(self, self.options.tz)
        self.files = Files(self, self.config.dirs.downloads)

    # --- start and session ------------------------------------------------------

    def on_mount(self) -> None:
        """Apply the keymap, then resume a saved session or ask to log in."""
        if self.options.keymap:
            self.set_keymap(self.options.keymap)
        saved = self.config.tokens.load(self.server)
        if self.config.login and self.config.password:
            self.push_screen(LoginScreen(self.server, self.config.login))
            self._log_in(self.server, self.config.login, self.config.password, False, False)
        elif saved is not None and saved[0]:
            login, token = saved
            self._start_session(Client(self.server, token, device=self._device()), login)
        else:
            self.push_screen(LoginScreen(self.server, self.config.login or ""))

    def _device(self) -> str:
        return self.config.device or "messenger TUI"

    @on(LoginRequested)
    def _login_requested(self, event: LoginRequested) -> None:
        self._log_in(event.server, event.login, event.password, event.register, event.remember)

    @work(exclusive=True, group="login")
    async def _log_in(
        self, server: str, login: str, password: str, register: bool, remember: bool
    ) -> None:
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
            if isinstance(self.screen, LoginScreen):
                self.screen.show_error(text)
            else:
                self.notify(text, severity="error")
            return
        self.server = server
        if remember:
            self.config.tokens.save(server, session.user.login, session.token)
        else:
            self.config.tokens.forget(server)
        self._start_session(client, session.user.login, session.last_event_id)

    def _start_session(self, client: Client, login: str, last_event_id: int | None = None) -> None:
        """Show the main screen from the cache at once, then go live."""
        self.client = client
        cache_root = self.options.cache_dir or self.config.dirs.data / "cache"
        try:
            cache: Cache | None = Cache.for_account(self.server, login, root=cache_root)
        except Exception:  # a broken cache must never keep the user out
            log.exception("cache unavailable; running without it")
            cache = None
        # /search falls back to the cache while the server is out of reach
        self.runner = slash.CommandRunner(client, downloads=self.config.dirs.downloads, cache=cache)
        self.store = ChatStore(me=login, cache=cache, focused=self.reader.reading)
        self.store.load_cached()
        self.main = MainScreen(login, self.people.complete, tz=self.options.tz)
        self.main.view.disappears_at = self.moderation.disappears_at
        self.outbox = Outbox(
            client,
            self.store,
            on_refused=self._send_refused,
            on_session_expired=lambda exc: self._session_over(session_over_reason(exc)),
            on_sent=lambda pending, message: self.reader.mark_shown(),
        )
        if isinstance(self.screen, LoginScreen):
            self.switch_screen(self.main)
        else:
            self.push_screen(self.main)
        self.call_after_refresh(self._session_ready, cache, last_event_id)

    def _session_ready(self, cache: Cache | None, last_event_id: int | None) -> None:
        main, store = self.main, self.store
        assert main is not None and store is not None
        main.bar.user = store.me
        main.bar.server = self.server.split("://", 1)[-1]
        self.refresh_chat_list()
        self.people.refresh()
        self.open_chat(GENERAL_CHAT_ID, connect=True)
        resume = cache.last_event_id if cache is not None else None
        self._run_events(resume if resume is not None else last_event_id)
        if self.outbox is not None:
            self.outbox.put_all(store.outbox())
        self._run_outbox()

    # --- the live connection (the App's worker, not a screen's) -------------------

    @work(exclusive=True, group="events")
    async def _run_events(self, last_event_id: int | None) -> None:
        client, store = self.client, self.store
        assert client is not None and store is not None
        self.stream = stream = client.events(last_event_id)
        try:
            async for item in stream:
                if isinstance(item, ConnectionState):
                    self._connection_changed(item)
                    continue
                self._apply(item)
                if store.cache is not None and stream.last_event_id is not None:
                    store.cache.last_event_id = stream.last_event_id
        except ApiError as exc:
            log.info("event stream ended: %s", exc)
            if exc.code in (ErrorCode.UNAUTHORIZED, ErrorCode.SESSION_EXPIRED):
                self._session_over(session_over_reason(exc))
            else:
                self.notify(describe_error(exc), severity="error")
        finally:
            await stream.aclose()

    @work(exclusive=True, group="resume")
    async def _resume_session(self) -> None:
        """A session resumed from a saved token learns what a login tells: its id (so a
        logout elsewhere ends only that one), admin or not (F3), the server's settings."""
        await self.known_session()

    async def known_session(self) -> Session | None:
        """This session as a login answers it; asked of the server once when resumed
        from a saved token (None while that cannot be known)."""
        client = self.client
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
                self._session_over(session_over_reason(exc))
            else:
                self.notify(describe_error(exc), severity="error")
            return None
        self.refresh_bindings()  # admin or not: F3
        return session

    def _connection_changed(self, state: ConnectionState) -> None:
        self.connection = state
        if self.main is not None:
            self.main.bar.state = state
        if state.state == "connected":
            if self.outbox is not None:
                self.outbox.online.set()
            if self.client is not None and self.client.session is None:
                self._resume_session()
            if self.main is not None:
                self.main.view.older_loaded()  # paging that stopped offline goes on
            self._refresh_all()
            groups_connected(self)
            self.moderation.check_ban()
        elif state.state in ("offline", "reconnecting"):
            if self.outbox is not None:
                self.outbox.online.clear()
            self.reader.chats_fresh = False
        if state.state in ("connected", "offline"):
            self.people.refresh()

    def _apply(self, event: Event) -> None:
        store, main = self.store, self.main
        assert store is not None and main is not None
        if isinstance(event, SessionEnded):
            # Every session of the user hears of it; only the one that ended stops. While
            # this one is not known yet (resumed offline), its own end shows as the 401
            # of the next connect.
            session = self.client.session if self.client is not None else None
            if session is not None and event.session_id == session.session_id:
                self._session_over("This session was ended from another client")
            return
        change = store.apply(event)
        self._show_change(change)
        self.moderation.event(event)
        group_event(self, event)
        thread_event(self, event)

    def _show_change(self, change: Change) -> None:
        store, main = self.store, self.main
        assert store is not None and main is not None
        if change.reset:
            self._refresh_all()
            if main.current_chat is not None:
                self.open_chat(main.current_chat)
        if change.chats:
            self.refresh_chat_list()
        if change.users:
            self.people.refresh()
        if change.notice:
            self.notify(change.notice)
        if change.timeline is not None and change.timeline == main.current_chat:
            self.reader.mark_shown()
        message = change.new_message
        if message is not None:
            self._notify_message(message)
        root = main.thread_root
        if root is not None:
            thread = store.threads.get(root.id)
            if thread is not None and len(thread) and thread[0].id == root.id:
                main.update_thread_title(thread[0])
        comment = change.new_comment
        if comment is not None and (root is None or comment.thread_root != root.id):
            self._notify_comment(comment)

    def _notify_comment(self, comment: Message) -> None:
        """A toast for a comment in a thread the user takes part in, when not open."""
        if self.options.toasts:
            text = comment.text if len(comment.text) <= 120 else comment.text[:119] + "…"
            self.notify(text, title=f"{comment.author} commented", timeout=6)

    def _notify_message(self, message: Message) -> None:
        """A toast (and the bell) for a private message or a mention not in view."""
        store, main = self.store, self.main
        assert store is not None and main is not None
        chat = store.chats.get(message.chat_id)
        mentioned = f"@{store.me}" in message.text
        direct = chat is not None and chat.kind == "direct"
        if not (direct or mentioned) or self.reader.reading(message.chat_id):
            return
        if self.options.toasts:
            where = "private" if direct or chat is None else chat.name
            text = message.text if len(message.text) <= 120 else message.text[:119] + "…"
            self.notify(text or "(attachment)", title=f"{message.author} · {where}", timeout=6)
        if self.options.bell:
            self.bell()

    def _session_over(self, reason: str) -> None:
        self.config.tokens.forget(self.server)
        if self.outbox is not None:
            self.outbox.close()  # its sends stay in the cache for the next login
            self.outbox = None
        self.workers.cancel_group(self, "events")
        self.workers.cancel_group(self, "outbox")
        login = self.store.me if self.store is not None else ""
        self.client, self.store, self.main = None, None, None
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(LoginScreen(self.server, login, error=reason))

    # --- refreshing state ------------------------------------------------------------

    @work(exclusive=True, group="refresh")
    async def _refresh_all(self) -> None:
        """After (re)connecting: chats, people and the open chat from the server."""
        client, store, main = self.client, self.store, self.main
        if client is None or store is None or main is None:
            return
        try:
            chats = await client.chats()
            store.set_chats(chats.chats)
            self.reader.chats_fresh = True
            current = store.chats.get(main.current_chat or 0)
            if current is not None:
                self.reader.open_unread(current)
            self.refresh_chat_list()
            if main.current_chat is not None and main.current_chat not in store.chats:
                self.open_chat(GENERAL_CHAT_ID)
            elif main.current_chat is not None:
                await self.reader.load_latest_now(main.current_chat, connect=True)
            users = await client.users()
            store.set_users(users.users)
            contacts = await client.contacts()
            store.set_contacts(contacts.contacts)
            self.people.refresh()
        except ServerUnavailable as exc:
            log.info("refresh failed: %s", exc)

    def refresh_chat_list(self) -> None:
        """Redraw the chat list from the store (and let the runner know the chats)."""
        self.people.refresh_chat_list()

    # --- chats ------------------------------------------------------------------------

    def open_chat(self, chat_id: int, *, connect: bool = False) -> None:
        """Show a chat from what is known at once, then bring it up to date (``connect``:
        the session starts, and the page is the server's history on connect)."""
        self.reader.open_chat(chat_id, connect=connect)

    @on(ChatList.ChatChosen)
    def _chat_chosen(self, event: ChatList.ChatChosen) -> None:
        self.open_chat(event.chat_id)
        if self.main is not None:
            self.main.composer.focus()

    @on(OpenChat)
    def _open_chat_message(self, event: OpenChat) -> None:
        self.open_chat(event.chat_id)

    @on(MessageView.OlderWanted)
    def _older_wanted(self, event: MessageView.OlderWanted) -> None:
        self.reader.load_older(event.chat_id, event.before)

    @on(MessageView.JumpWanted)
    def _jump_wanted(self, event: MessageView.JumpWanted) -> None:
        if event.oldest and self.connection.state != "connected":
            event.view.top_of_loaded()  # offline: page back through the cache
            return
        self.reader.jump(event.chat_id, 0 if event.oldest else None)

    @on(MessageView.NewerWanted)
    def _newer_wanted(self, event: MessageView.NewerWanted) -> None:
        self.reader.load_newer(event.chat_id, event.after)

    @on(MessageView.UnseenChanged)
    def _unseen_changed(self, event: MessageView.UnseenChanged) -> None:
        if event.count == 0:
            self.reader.mark_shown()

    @on(MessageView.Shown)
    def _shown(self, event: MessageView.Shown) -> None:
        if self.main is not None and event.view is self.main.view:
            self.reader.mark_shown()

    def on_app_focus(self) -> None:
        """Coming back to the terminal counts as reading the open chat."""
        self.reader.mark_shown()

    # --- chat navigation (keys and palette) ----------------------------------------------

    def _chat_order(self) -> list[int]:
        return [c.id for c in self.store.sorted_chats()] if self.store is not None else []

    def _step_chat(self, step: int) -> None:
        order = self._chat_order()
        main = self.main
        if not order or main is None:
            return
        index = order.index(main.current_chat) if main.current_chat in order else 0
        self.open_chat(order[(index + step) % len(order)])

    def action_next_chat(self) -> None:
        """Open the next chat in the list (Alt+Down)."""
        self._step_chat(1)

    def action_previous_chat(self) -> None:
        """Open the previous chat in the list (Alt+Up)."""
        self._step_chat(-1)

    def action_next_active(self) -> None:
        """Open the next chat with unread messages (Alt+A)."""
        store, main = self.store, self.main
        if store is None or main is None:
            return
        order = self._chat_order()
        start = order.index(main.current_chat) if main.current_chat in order else -1
        for offset in range(1, len(order) + 1):
            chat_id = order[(start + offset) % len(order)]
            if store.chats[chat_id].unread and chat_id != main.current_chat:
                self.open_chat(chat_id)
                return
        self.notify("No unread messages", timeout=2)

    def action_switch_chat(self) -> None:
        """The chat switcher (Ctrl+K): chats and people by name."""
        palette = CommandPalette(providers=[ChatsProvider], placeholder="Go to chat or person…")
        self.push_screen(palette)

    @on(OpenDirect)
    def _open_direct_message(self, event: OpenDirect) -> None:
        self.people.open_direct(event.login)

    @on(UsersPanel.UserChosen)
    def _user_chosen(self, event: UsersPanel.UserChosen) -> None:
        self.people.open_direct(event.login)

    @on(UsersPanel.ContactAction)
    def _contact_action(self, event: UsersPanel.ContactAction) -> None:
        self.people.change_contact(event.login, event.add)

    @work(group="direct")
    async def _send_private(self, login: str, text: str, line: str) -> None:
        """``/private`` to someone without a private chat yet: start it, then send
        through the outbox as to any chat (it used to show the sent message in a dialog)."""
        client, store = self.client, self.store
        if client is None or store is None:
            return
        try:
            chat = await client.open_direct(login)
        except MessengerError as exc:
            self.notify(describe_error(exc, self.server), severity="error")
            self._give_back(line)
            return
        store.upsert_chat(chat)
        self.refresh_chat_list()
        self.send_text(chat.id, text)

    # --- moderation and time (banner, rate-limit wait, scheduled, admin) -------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The admin screen exists only for admins."""
        if action == "admin":
            return self.moderation.is_admin()
        return True

    def action_admin(self) -> None:
        """Show the admin screen (F3; admins only)."""
        self.moderation.show_admin()

    def action_help_screen(self, query: str = "") -> None:
        """The help screen: every command and key, filtered by ``query``."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(help_rows(self, self.options.keymap), query))

    # --- status ----------------------------------------------------------------------------

    def action_status(self) -> None:
        """Show the status screen (F2, /status)."""
        self.moderation.show_status()

    # --- sending and slash commands ------------------------------------------------------

    @on(Composer.Submitted)
    def _submitted(self, event: Composer.Submitted) -> None:
        main = self.main
        if main is None or main.current_chat is None:
            return
        parsed = slash.parse(event.text)
        if isinstance(parsed, slash.UsageError):
            self.notify(str(parsed), severity="warning")
            self._give_back(event.text, event.composer)  # to fix, not to retype
            return
        root = main.thread_root
        if event.composer is main.thread_composer and root is not None and parsed.name == "say":
            self.send_comment(root, parsed.args["text"])
            return
        self.run_command(parsed, main.current_chat)

    def run_command(self, parsed: slash.ParsedCommand, chat_id: int) -> None:
        """Do what a composer line asks; sends go through the outbox."""
        store = self.store
        if store is None:
            return
        args = parsed.args
        match parsed.name:
            case "say":
                self.send_text(chat_id, args["text"])
            case "send":
                self.send_text(GENERAL_CHAT_ID, args["text"])
            case "private":
                chat = store.direct_chat(args["login"])
                if chat is not None:
                    self.send_text(chat.id, args["text"])
                else:
                    self._send_private(args["login"], args["text"], parsed.line)
            case "send_chat":
                named = [c for c in store.chats.values() if c.name == args["chat"]]
                if named:
                    self.send_text(named[0].id, args["text"])
                else:
                    self._run_slash(parsed)
            case "file" if args.get("target") is None:
                # the picker shows the upload's progress and any refusal
                self.files.attach(chat_id, path=Path(args["path"]).expanduser())
            case "help":
                self.action_help_screen(args.get("command") or "")
            case "status":
                self.action_status()
            case "thread":
                self._open_thread_by_id(args["message_id"])
            case "scheduled":
                self.moderation.show_scheduled()
            case "users" | "contacts":
                if self.main is not None:
                    self.main.action_toggle_users()
            case "exit":
                self.exit()
            case "logout":
                self._logout()
            case "auth" | "login":
                self.notify("You are logged in; /logout first", severity="warning")
            case _:
                self._run_slash(parsed)

    def send_text(self, chat_id: int, text: str, attachments: tuple[Attachment, ...] = ()) -> None:
        """Show the message as pending at once and queue it; it is retried until sent."""
        store, main = self.store, self.main
        if store is None or main is None:
            return
        pending = PendingSend(new_client_id(), chat_id, text, self.clock(), None, attachments)
        store.add_pending(pending)
        if main.current_chat == chat_id:
            main.view.follow()
        if self.outbox is not None:
            self.outbox.put(pending)

    def send_comment(self, root: Message, text: str) -> None:
        """Comment under ``root``: pending in the thread panel at once, then retried."""
        store, main = self.store, self.main
        if store is None or main is None:
            return
        pending = PendingSend(new_client_id(), root.chat_id, text, self.clock(), root.id)
        store.add_pending(pending)
        main.thread_view.follow()
        if self.outbox is not None:
            self.outbox.put(pending)

    @on(FileUploaded)
    def _file_uploaded(self, event: FileUploaded) -> None:
        self.send_text(event.chat_id, "", (event.attachment,))

    @work(exclusive=True, group="outbox")
    async def _run_outbox(self) -> None:
        """The outbox's loop, as the app's worker (it outlives every screen)."""
        if self.outbox is not None:
            await self.outbox.run()

    def _send_refused(self, pending: PendingSend, exc: ApiError) -> None:
        """The server refused a send: say why, show a ban or wait, keep the text."""
        self.notify(f"Not sent: {describe_error(exc)}", severity="error")
        self.moderation.refusal(exc)
        self._give_back(pending.text)

    def _give_back(self, text: str, composer: Composer | None = None) -> None:
        """Put refused text back in an empty composer so it is not lost."""
        if self.main is None:
            return
        composer = composer or self.main.composer
        if not composer.text:
            composer.load_text(text)
            composer.move_cursor(composer.document.end)

    @work(group="slash")
    async def _run_slash(self, parsed: slash.ParsedCommand) -> None:
        runner, store = self.runner, self.store
        if runner is None or store is None:
            return
        outputs = await runner.run(parsed)
        refused = any(isinstance(out, slash.ErrorOut) for out in outputs)
        if refused and parsed.line:
            self._give_back(parsed.line)  # a refused command stays to be fixed
        elif not refused and parsed.name in ("approve", "reject"):
            request_decided(self, parsed.args["chat"], parsed.args["login"])
        self._show_outputs(outputs, parsed.line)

    def _show_outputs(self, outputs: Iterable[slash.Output], title: str) -> None:
        store = self.store
        shown: list[slash.Output] = []
        for out in outputs:
            match out:
                case slash.InfoOut(text=text) if len(text) < 200:
                    self.notify(text, timeout=5)
                case slash.ErrorOut():
                    self.notify(out.text, severity="error")
                case slash.UnreadOut(total=total, chats=chats):
                    per_chat = ", ".join(f"{c.chat} {c.count}" for c in chats)
                    self.notify(f"{total} unread" + (f": {per_chat}" if per_chat else ""))
                case slash.StatusOut(status=status):
                    screen = StatusScreen(status, tz=self.options.tz)
                    self.push_screen(screen)
                case slash.MessageOut(message=message, live=False) if store is not None:
                    store._save([message]) if message.thread_root is not None else None
                    shown.append(out)
                case slash.ExitOut():
                    self.exit()
                case slash.LogoutOut(reason=reason):
                    self._session_over(reason or "Logged out")
                case _:
                    shown.append(out)
        if shown:
            self.push_screen(OutputScreen(title, shown, tz=self.options.tz))

    @work(group="logout")
    async def _logout(self) -> None:
        client = self.client
        if client is not None:
            try:
                await client.logout()
            except MessengerError as exc:
                log.info("logout: %s", exc)
        self._session_over("Logged out")

    # --- files -----------------------------------------------------------------------------

    def action_attach(self) -> None:
        """Pick a file, upload it with progress and post it to the open chat (Ctrl+U)."""
        self.files.attach_here()

    def action_files(self) -> None:
        """Download, open or preview the attachments of the selected message (Ctrl+F)."""
        self.files.show_selected()

    @on(AttachmentClicked)
    def _attachment_clicked(self, event: AttachmentClicked) -> None:
        self.files.show(event.message)

    # --- threads ---------------------------------------------------------------------------

    @on(MessageView.Activated)
    def _activated(self, event: MessageView.Activated) -> None:
        message = event.message
        if not message.id or (self.main is not None and event.view is self.main.thread_view):
            return
        self.open_thread(message)

    def open_thread(self, root: Message) -> None:
        """Open the thread panel: cached comments at once, then the server's."""
        store, main = self.store, self.main
        if store is None or main is None:
            return
        main.show_thread(root, store.thread(root))
        self._load_thread(root.id)

    @work(exclusive=True, group="thread")
    async def _load_thread(self, root_id: int) -> None:
        client, store, main = self.client, self.store, self.main
        if client is None or store is None or main is None:
            return
        try:
            thread = await client.thread(root_id)
        except ServerUnavailable:
            return
        except ApiError as exc:
            self.notify(describe_error(exc), severity="error")
            return
        timeline = store.merge_thread(thread.root, thread.comments)
        if main.thread_root is not None and main.thread_root.id == root_id:
            main.show_thread(thread.root, timeline)
            newest = timeline.newest_id
            if newest is not None and thread.unread:
                with contextlib.suppress(MessengerError):
                    await client.mark_thread_read(root_id, newest)

    @work(exclusive=True, group="thread")
    async def _open_thread_by_id(self, message_id: int) -> None:
        client = self.client
        if client is None:
            return
        try:
            root = await client.message(message_id)
        except MessengerError as exc:
            self.notify(describe_error(exc, self.server), severity="error")
            return
        if root.thread_root is not None:
            root = await client.message(root.thread_root)
        self.open_thread(root)

    # --- workers -------------------------------------------------------------------------

    def _handle_exception(self, error: Exception) -> None:
        """What no handler caught (handlers of the app, its screens and widgets are
        :class:`~.robust.Guarded`): a failed worker, the app's or any screen's (their
        ``StateChanged`` does not bubble up from screens), or a timer. It becomes a
        one-line error and a log entry, never a dead app."""
        if not self.is_running or self._closing:
            super()._handle_exception(error)
            return
        if isinstance(error, WorkerFailed):
            try:
                where = get_current_worker().name or "a task"
            except NoActiveWorker:
                where = "a task"
            report_failure(self, where, error.error)
            return
        report_failure(self, type(error).__name__, error)

    async def on_unmount(self) -> None:
        """Close the connection and the cache."""
        if self.client is not None:
            await self.client.close()
        if self.store is not None and self.store.cache is not None:
            self.store.cache.close()

    def chats(self) -> list[Chat]:
        """Chats in list order (for the palette)."""
        return self.store.sorted_chats() if self.store is not None else []


def run(config: ClientConfig) -> int:
    """Run the app until the user quits; logs go to the client's log file."""
    setup_logging(config.log_path, config.log_level)
    options = load_options(config.keymap_path)
    MessengerApp(config, options).run()
    return 0
