"""The composer's lines: sending, and what each slash command does in the TUI.

:class:`Dispatcher` is the part of the app that turns a composer line into an action.
Text (and a posted file, and a comment) goes through the session's outbox: pending at
once, retried until sent. Commands with a screen of their own (help, status, files,
threads, scheduled) open it; the others run through the client's command runner, and
their outputs become notifications or an output screen. A refused line goes back into
the composer, to fix rather than retype.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import tzinfo
from pathlib import Path

from messenger_protocol import GENERAL_CHAT_ID, Attachment, Message, MessengerError

from .. import commands as slash
from ..api import new_client_id
from ..cache import PendingAct, PendingSend
from ..outputs import ChatOut, EditedOut
from .files import Files
from .host import Host
from .moderation import Moderation
from .people import People
from .robust import describe_error
from .screens.output import OutputScreen
from .screens.status import StatusScreen
from .session import LiveSession
from .tasks import app_work
from .threads import Threads
from .widgets.composer import Composer, Intent

__all__ = ["Dispatcher"]


class Dispatcher:
    """Composer lines to sends and commands, for one app."""

    def __init__(
        self,
        app: Host,
        session: LiveSession,
        files: Files,
        moderation: Moderation,
        threads: Threads,
        people: People,
        *,
        tz: tzinfo | None,
        clock: Callable[[], float],
    ) -> None:
        self.app = app
        self.session = session
        self.files = files
        self.moderation = moderation
        self.threads = threads
        self.people = people
        self.tz = tz
        """Time zone of shown times (None: local)."""
        self.clock = clock
        """The time a pending send is stamped with."""

    def submitted(self, text: str, composer: Composer, intent: Intent | None = None) -> None:
        """A composer's line: an edit or a reply (``intent``: the text as it is), a
        comment in the thread panel's, else a command."""
        main = self.app.main
        if main is None or main.current_chat is None:
            return
        if intent is not None and intent.act == "edit":
            if text != intent.message.text:
                self.annotate("edit", intent.message.id, text, intent.message.chat_id)
            return
        if intent is not None:
            self.send_text(intent.message.chat_id, text, reply_to=intent.message.id)
            return
        parsed = slash.parse(text)
        if isinstance(parsed, slash.UsageError):
            self.app.notify(str(parsed), severity="warning")
            main.give_back(text, composer)  # to fix, not to retype
            return
        root = main.thread_root
        if composer is main.thread_composer and root is not None and parsed.name == "say":
            self.send_comment(root, parsed.args["text"])
            return
        self.run(parsed, main.current_chat)

    def run(self, parsed: slash.ParsedCommand, chat_id: int) -> None:
        """Do what a composer line asks; sends go through the outbox."""
        app = self.app
        store = app.store
        if store is None:
            return
        args = parsed.args
        match parsed.name:
            case "say":
                self.send_text(chat_id, args["text"])
            case "send":
                self.send_text(GENERAL_CHAT_ID, args["text"])
            case "edit":
                self.annotate("edit", args["message_id"], args["text"], chat_id)
            case "react" | "unreact":
                self.annotate(parsed.name, args["message_id"], args["emoji"], chat_id)
            case "reply":
                replied = store.find(args["message_id"])
                target = replied.chat_id if replied is not None else chat_id
                self.send_text(target, args["text"], reply_to=args["message_id"])
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
                app.action_help_screen(args.get("command") or "")
            case "status":
                app.action_status()
            case "thread":
                self.threads.open_by_id(args["message_id"])
            case "scheduled":
                self.moderation.show_scheduled()
            case "search":
                app.finding.search(args["query"])
            case "mentions":
                app.finding.mentions()
            case "users" | "contacts":
                if app.main is not None:
                    app.main.action_toggle_users()
            case "exit":
                app.exit()
            case "logout":
                self.session.log_out()
            case "verify" | "confirm" | "mismatch" | "devices":
                app.trust.command(parsed)  # the verification and devices screens
            case "auth" | "login":
                app.notify("You are logged in; /logout first", severity="warning")
            case _:
                self._run_slash(parsed)

    # --- sending ---------------------------------------------------------------------

    def send_text(
        self,
        chat_id: int,
        text: str,
        attachments: tuple[Attachment, ...] = (),
        *,
        reply_to: int | None = None,
    ) -> None:
        """Show the message as pending at once and queue it; it is retried until sent."""
        app = self.app
        store, main = app.store, app.main
        if store is None or main is None:
            return
        pending = PendingSend(
            new_client_id(), chat_id, text, self.clock(), None, attachments, reply_to=reply_to
        )
        store.add_pending(pending)
        if main.current_chat == chat_id:
            main.view.follow()
        if self.session.outbox is not None:
            self.session.outbox.put(pending)
        app.receipts.sent(chat_id)

    def annotate(self, act: PendingAct, message_id: int, text: str, chat_id: int) -> None:
        """Edit a message (``text``: its new text) or add or take back a reaction
        (``text``: the emoji) through the outbox: shown at once, retried while the
        server cannot be reached, undone if it refuses."""
        store = self.app.store
        if store is None:
            return
        shown = store.find(message_id)
        pending = PendingSend(
            new_client_id(),
            shown.chat_id if shown is not None else chat_id,
            text,
            self.clock(),
            act=act,
            target=message_id,
        )
        store.add_annotation(pending)
        if self.session.outbox is not None:
            self.session.outbox.put(pending)

    def send_comment(self, root: Message, text: str) -> None:
        """Comment under ``root``: pending in the thread panel at once, then retried."""
        store, main = self.app.store, self.app.main
        if store is None or main is None:
            return
        pending = PendingSend(new_client_id(), root.chat_id, text, self.clock(), root.id)
        store.add_pending(pending)
        main.thread_view.follow()
        if self.session.outbox is not None:
            self.session.outbox.put(pending)

    @app_work(group="direct")
    async def _send_private(self, login: str, text: str, line: str) -> None:
        """``/private`` to someone without a private chat yet: start it, then send
        through the outbox as to any chat (it used to show the sent message in a dialog)."""
        chat = await self.people.start_direct(login)
        if chat is None:
            self._give_back(line)
            return
        self.send_text(chat.id, text)

    def _give_back(self, text: str) -> None:
        if self.app.main is not None:
            self.app.main.give_back(text)

    # --- commands the client's runner does ---------------------------------------------

    @app_work(group="slash")
    async def _run_slash(self, parsed: slash.ParsedCommand) -> None:
        app = self.app
        runner, store = app.runner, app.store
        if runner is None or store is None:
            return
        outputs = await runner.run(parsed)
        refused = any(isinstance(out, slash.ErrorOut) for out in outputs)
        if refused and parsed.line:
            self._give_back(parsed.line)  # a refused command stays to be fixed
        elif not refused and parsed.name in ("approve", "reject"):
            app.groups.request_decided(parsed.args["chat"], parsed.args["login"])
        elif not refused and parsed.name == "create":
            await self._open_created(runner, outputs)
        self._show_outputs(outputs, parsed.line)

    async def _open_created(self, runner: slash.CommandRunner, outputs: list[slash.Output]) -> None:
        """``/create``: the new chat opens, as from the "New chat" dialog, so what is
        typed next goes there."""
        app = self.app
        for out in outputs:
            if isinstance(out, ChatOut) and out.change == "created":
                try:
                    chat = await runner.resolve(out.chat)
                except MessengerError as exc:
                    app.notify(describe_error(exc, app.server), severity="error")
                    return
                app.groups.add_chat(chat, open_it=True)
                if app.main is not None:
                    app.main.composer.focus()

    def _show_outputs(self, outputs: Iterable[slash.Output], title: str) -> None:
        app = self.app
        store = app.store
        shown: list[slash.Output] = []
        for out in outputs:
            match out:
                case slash.InfoOut(text=text) if len(text) < 200:
                    app.notify(text, timeout=5)
                case slash.ErrorOut():
                    app.notify(out.text, severity="error")
                case slash.UnreadOut(total=total, chats=chats):
                    per_chat = ", ".join(f"{c.chat} {c.count}" for c in chats)
                    app.notify(f"{total} unread" + (f": {per_chat}" if per_chat else ""))
                case slash.StatusOut(status=status):
                    screen = StatusScreen(status, tz=self.tz)
                    app.push_screen(screen)
                case slash.MessageOut(message=message, live=False) if store is not None:
                    store._save([message]) if message.thread_root is not None else None
                    shown.append(out)
                case EditedOut():
                    # the chat shows the new text with its "(edited)" as the event comes
                    app.notify("Edited", timeout=3)
                case slash.ExitOut():
                    app.exit()
                case slash.LogoutOut(reason=reason):
                    self.session.over(reason or "Logged out")
                case _:
                    shown.append(out)
        if shown:
            app.push_screen(OutputScreen(title, shown, tz=self.tz))
