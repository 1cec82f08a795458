"""The Textual app: ``run(config)`` opens it; :class:`MessengerApp` is the composition root.

The app owns everything long-lived -- the client, the local cache, the store, the
live event worker and the outbox worker -- because workers die with the DOM node
that started them, and screens come and go. It builds its parts, each with its
collaborators as constructor arguments -- the session's life (``session.py``),
reading chats (``reading.py``), the composer's lines (``dispatch.py``), people
(``people.py``), threads, groups, moderation and admin, files, device trust, moving
between chats -- and routes its screens' messages and actions to them (in 300 lines).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import ClassVar

from textual import on
from textual.app import App
from textual.binding import Binding, BindingType
from textual.worker import NoActiveWorker, WorkerFailed, get_current_worker

from messenger_protocol import Chat, Session

from .. import commands as slash
from ..api import Client
from ..config import ClientConfig
from ..events import ConnectionState
from ..logs import setup_logging
from .commands import MessengerCommands
from .devices import DeviceTrust
from .dispatch import Dispatcher
from .files import Files
from .finding import Finding
from .groups import Groups
from .host import Host
from .messages import FileUploaded, LoginRequested, OpenChat, OpenDirect
from .moderation import Moderation
from .navigation import ChatNavigation
from .options import TuiOptions, load_options
from .people import People
from .reading import ChatReader
from .receipts import Receipts
from .robust import report_failure
from .screens.help import HelpScreen, help_rows
from .screens.main import MainScreen
from .session import LiveSession
from .store import ChatStore
from .threads import Threads
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
        self.connection = ConnectionState("connecting")
        self.reader = ChatReader(self)
        self.people = People(self)
        self.navigation = ChatNavigation(self)
        self.threads = Threads(self)
        self.groups = Groups(self)
        self.moderation = Moderation(self, self.options.tz)
        self.files = Files(self, self.config.dirs.downloads)
        self.finding, self.receipts = Finding(self, self.options.tz), Receipts(self)
        self.trust, self.e2ee = DeviceTrust(self), None
        self.session = LiveSession(
            self, self.config, self.options, self.reader, self.people, self.moderation,
            self.threads, self.groups,
        )  # fmt: skip
        self.dispatch = Dispatcher(
            self, self.session, self.files, self.moderation, self.threads, self.people,
            tz=self.options.tz, clock=self.clock,
        )  # fmt: skip

    # --- start and session ------------------------------------------------------

    def on_mount(self) -> None:
        """Apply the keymap, then resume a saved session or ask to log in."""
        if self.options.keymap:
            self.set_keymap(self.options.keymap)
        self.session.start()

    @on(LoginRequested)
    def _login_requested(self, event: LoginRequested) -> None:
        self.session.log_in(
            event.server, event.login, event.password, event.register, event.remember
        )

    async def known_session(self) -> Session | None:
        """This session as a login answers it (asked of the server after a resume)."""
        return await self.session.known_session()

    def refresh_chat_list(self) -> None:
        """Redraw the chat list from the store (and let the runner know the chats)."""
        self.people.refresh_chat_list()

    # --- chats ------------------------------------------------------------------------

    def open_chat(self, chat_id: int, *, connect: bool = False) -> None:
        """Show a chat from what is known at once, then bring it up to date."""
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

    def action_next_chat(self) -> None:
        """Open the next chat in the list (Alt+Down)."""
        self.navigation.step(1)

    def action_previous_chat(self) -> None:
        """Open the previous chat in the list (Alt+Up)."""
        self.navigation.step(-1)

    def action_next_active(self) -> None:
        """Open the next chat with unread messages (Alt+A)."""
        self.navigation.next_active()

    def action_switch_chat(self) -> None:
        """The chat switcher (Ctrl+K): chats and people by name."""
        self.navigation.switcher()

    @on(OpenDirect)
    @on(UsersPanel.UserChosen)
    def _open_direct(self, event: OpenDirect | UsersPanel.UserChosen) -> None:
        self.people.open_direct(event.login)

    @on(UsersPanel.ContactAction)
    def _contact_action(self, event: UsersPanel.ContactAction) -> None:
        self.people.change_contact(event.login, event.add)

    # --- moderation, admin, status and help ----------------------------------------------

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

    def action_status(self) -> None:
        """Show the status screen (F2, /status)."""
        self.moderation.show_status()

    # --- sending and slash commands ------------------------------------------------------

    @on(Composer.Submitted)
    def _submitted(self, event: Composer.Submitted) -> None:
        self.dispatch.submitted(event.text, event.composer, event.intent)

    def run_command(self, parsed: slash.ParsedCommand, chat_id: int) -> None:
        """Do what a composer line asks; sends go through the outbox."""
        self.dispatch.run(parsed, chat_id)

    @on(FileUploaded)
    def _file_uploaded(self, event: FileUploaded) -> None:
        self.dispatch.send_text(event.chat_id, "", (event.attachment,))

    # --- files -----------------------------------------------------------------------------

    def action_attach(self) -> None:
        """Pick a file, upload it with progress and post it to the open chat (Ctrl+U)."""
        self.files.attach_here()

    def action_files(self) -> None:
        """Download, open or preview the attachments of the selected message (F4)."""
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
        self.threads.open(message)

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
        return self.navigation.chats()


def run(config: ClientConfig) -> int:
    """Run the app until the user quits; logs go to the client's log file."""
    setup_logging(config.log_path, config.log_level)
    options = load_options(config.keymap_path)
    MessengerApp(config, options).run()
    return 0
