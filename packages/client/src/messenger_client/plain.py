"""The plain console client: slash commands in, one line per answer and per event out.

Reads stdin line by line without blocking the event loop (a reader thread feeds an
asyncio queue, so pipes, files and terminals all work), runs each line through the
shared :class:`~messenger_client.commands.CommandRunner`, and prints live events as
they arrive, between answers. ``--json`` prints every output as one typed JSON object
(:mod:`messenger_client.outputs`).

After a login it prints the newest ``history_on_connect`` messages of the general chat
(the server's setting) and how many messages are unread per chat, and streams events
from the session's ``last_event_id``. That history marks nothing read; a message
printed later marks its chat read up to it, unless older unread messages of that chat
were never printed (``/unread`` prints them all). Plain text goes to the chat last
written to with ``/send``, ``/private`` or ``/send_chat``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections import OrderedDict
from typing import TextIO

import msgspec

from messenger_protocol import (
    ApiError,
    ErrorCode,
    Message,
    MessengerError,
    ReadMarker,
    Reset,
    Status,
    ToDeviceWaiting,
    format_count,
    format_duration,
    format_size,
    format_time,
)

from .api import Client
from .cache import Cache
from .commands import (
    POSTING_COMMANDS,
    CommandRunner,
    ErrorOut,
    ExitOut,
    InfoOut,
    LogoutOut,
    MessageOut,
    Output,
    ParsedCommand,
    SessionOut,
    StatusOut,
    TableOut,
    UnreadOut,
    UsageError,
    error_out,
    parse,
    reactions_text,
)
from .config import ClientConfig
from .crypto import DeviceCrypto, device_directory
from .events import ConnectionState
from .outputs import (
    ConnectionOut,
    DeletedOut,
    EditedOut,
    JoinDecisionOut,
    MemberOut,
    ReactionsOut,
    encode_output,
)
from .transfer_progress import progress_line
from .trust import TrustNotice

__all__ = ["format_json", "format_lines", "run_plain"]

log = logging.getLogger(__name__)

_PRINTED_MEMORY = 4096
"""Message ids remembered to print each message once (answer and live event)."""


# --- formatting ---------------------------------------------------------------


def message_line(message: Message, chat: str, now: float | None = None) -> str:
    """``[#42 general 12:03] alice: hello`` (a comment adds ``↳#<root>``; a reply starts
    with its quote, ``↪ bob #41: "first line"``; an edited message ends with ``(edited)``,
    reactions with ``[👍 2]``; a deleted one reads ``(message deleted)``; an end-to-end
    encrypted one starts with a lock, ``🔒``)."""
    root = f" ↳#{message.thread_root}" if message.thread_root is not None else ""
    when = format_time(message.created_at, now=time.time() if now is None else now)
    lock = "🔒 " if message.encrypted is not None else ""
    head = f"{lock}[#{message.id} {chat} {when}{root}] {message.author}:"
    parts: list[str] = []
    quote = message.reply_to
    if quote is not None:
        said = "(deleted)" if quote.deleted else f'"{quote.text}"'
        parts.append(f"↪ {quote.author} #{quote.id}: {said}".replace("  ", " "))
    if message.deleted_at is not None:
        parts.append("(message deleted)")
    elif message.text:
        parts.append(message.text.replace("\n", "\n    "))
    parts += [
        f"[file {a.id}: {a.name}, {format_size(a.size)}, {a.mime}]" for a in message.attachments
    ]
    if message.edited_at is not None and message.deleted_at is None:
        parts.append("(edited)")
    if message.reactions:
        parts.append(f"[{reactions_text(message.reactions)}]")
    if message.comment_count:
        parts.append(f"({format_count(message.comment_count, 'comment')})")
    return " ".join([head, *parts])


def _change_key(out: Output | ConnectionState) -> tuple[str, int, float] | None:
    """What an edit or a deletion changed, to print it once."""
    if isinstance(out, EditedOut):
        return ("edited", out.message.id, out.message.edited_at or 0.0)
    if isinstance(out, DeletedOut) and out.tombstone is not None:
        return ("deleted", out.message_id, out.tombstone.deleted_at or 0.0)
    return None


def _error_line(out: ErrorOut) -> str:
    # The server's text already says when (retry_after and until are there for --json).
    return f"error {out.code}: {out.text}"


def _table_lines(out: TableOut) -> list[str]:
    if not out.rows:
        return [f"{out.title}: none"]
    widths = [max(len(row[i]) for row in out.rows) for i in range(len(out.columns))]
    lines = [f"{out.title}: {len(out.rows)}"]
    for row in out.rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def _status_lines(status: Status) -> list[str]:
    now = time.time()
    lines = [f"status of {status.user.login}" + (" (admin)" if status.user.is_admin else "")]
    if status.banned_until is not None:
        until = format_time(status.banned_until, now=now, relative=True)
        lines.append(f"  banned from sending until {until}")
    if status.session_expires_at is not None:
        expires = format_time(status.session_expires_at, now=now, relative=True)
        lines.append(f"  this session expires {expires} if left unused")
    lines.append(f"  connections: {len(status.connections)}")
    for c in status.connections:
        mark = " (this one)" if c.current else ""
        device = f" {c.device}" if c.device else ""
        lines.append(f"    {c.address}{device} since {format_time(c.connected_at, now=now)}{mark}")
    lines.append(
        f"  private messages: {status.private_sent} sent, {status.private_received} received"
    )
    for owned in status.owned_chats:
        keys = ", ".join(link.link or link.key for link in owned.links) or "no invite links"
        pending = ", ".join(r.login for r in owned.pending_requests)
        lines.append(
            f"  owns {owned.chat.name} ({format_count(owned.chat.members, 'member')}; {keys})"
            + (f"; asking to join: {pending}" if pending else "")
        )
    names = ", ".join(c.name for c in status.member_chats) or "none"
    lines.append(f"  member of: {names}")
    for record in status.logins[-10:]:
        ok = "" if record.success else " FAILED"
        lines.append(f"  login {format_time(record.at, now=now)} from {record.address}{ok}")
    return lines


def connection_out(state: ConnectionState) -> ConnectionOut:
    """The output of a change of the event stream's connection."""
    return ConnectionOut(
        state=state.state, in_seconds=state.in_seconds, attempt=state.attempt, error=state.error
    )


def format_lines(out: Output | ConnectionState) -> list[str]:
    """The text lines of an output (what plain mode prints)."""
    if isinstance(out, ConnectionState):
        out = connection_out(out)
    match out:
        case MessageOut(message=message, chat=chat) | EditedOut(message=message, chat=chat):
            return [message_line(message, chat)]
        case InfoOut(text=text):
            return [f"* {text}"]
        case ErrorOut():
            return [_error_line(out)]
        case TableOut():
            return _table_lines(out)
        case StatusOut(status=status):
            return _status_lines(status)
        case SessionOut(login=login, registered=registered):
            verb = "registered and logged in" if registered else "logged in"
            return [f"* {verb} as {login}"]
        case LogoutOut(reason=reason):
            return [f"* {reason or 'logged out'}"]
        case ExitOut():
            return ["* bye"]
        case ConnectionOut(state="offline", error=error):
            return [f"* connection lost: {error}"]
        case ConnectionOut(state="reconnecting", in_seconds=delay, attempt=attempt):
            return [f"* reconnecting in {format_duration(delay or 0)} (attempt {attempt})"]
        case ConnectionOut(state="connected"):
            return ["* connected"]
        case _:
            return []


def format_json(out: Output | ConnectionState) -> str:
    """One JSON line of an output (what ``--json`` prints): its ``kind`` and fields."""
    return encode_output(connection_out(out) if isinstance(out, ConnectionState) else out)


# --- the console ----------------------------------------------------------------


class _StdinLines:
    """Lines of a text stream delivered to the event loop by a daemon thread.

    A thread works for every kind of stdin (terminal, pipe, regular file) and, as a
    daemon, never keeps the process alive after ``/exit``.
    """

    def __init__(self, stream: TextIO) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.interactive = _is_terminal(stream)
        """A person types the lines (a terminal), not a script."""
        loop = asyncio.get_running_loop()

        def pump() -> None:
            try:
                for line in stream:
                    loop.call_soon_threadsafe(self._queue.put_nowait, line)
            except (OSError, ValueError) as exc:
                log.warning("stdin failed: %s", exc)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop may be closed by now
                    loop.call_soon_threadsafe(self._queue.put_nowait, None)

        threading.Thread(target=pump, name="stdin", daemon=True).start()

    async def next(self) -> str | None:
        """The next line, or None at end of input."""
        return await self._queue.get()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):  # closed, or not a real file
        return False


class PlainConsole:
    """One plain-mode session: commands from stdin, outputs and events to stdout."""

    def __init__(self, config: ClientConfig, out: TextIO) -> None:
        self.config = config
        self.out = out
        self.client = Client(config.server, device=config.device or "plain console")
        self.runner = CommandRunner(
            self.client,
            downloads=config.dirs.downloads,
            progress=progress_line(sys.stderr),
            follow=True,
        )
        self._printed: OrderedDict[int, None] = OrderedDict()
        self._changes: OrderedDict[tuple[str, int, float], None] = OrderedDict()
        """Edits and deletions printed, so each shows once (answer and event)."""
        self._events: asyncio.Task[None] | None = None
        self._read_upto: dict[int, int] = {}
        self._behind: set[int] = set()
        """Chats with unread messages this console has not printed: printing newer ones
        there must not move the read cursor past them (``/unread`` prints them all)."""
        self._read_task: asyncio.Task[None] | None = None
        self._was_offline = False
        self._expiry_said = False
        """The session's expiry was printed: the event stream does not say it again."""
        self._running = False
        """A command is under way: the stream's news of an expiry waits for its answer."""
        self._expiry_heard: ErrorOut | None = None
        self._deciding: tuple[str, str, bool] | None = None
        """``/approve`` or ``/reject`` under way: (chat as typed, login, approved)."""
        self._decisions_heard: set[tuple[int, str, bool]] = set()
        """Join decisions of this console's command heard before its answer printed."""
        self._decisions_said: set[tuple[int, str, bool]] = set()
        """Join decisions this console's command answered, whose event is to come."""
        self._reactions_said: set[tuple[int, str]] = set()
        """Reactions of a message this console's /react or /unreact answered (the message,
        its reactions as printed), whose own event is to come."""
        self._reactions_heard: set[tuple[int, str]] = set()
        """The same, of an own reaction event printed while a command ran (its answer)."""

    # --- printing ---------------------------------------------------------------

    def emit(self, out: Output | ConnectionState, *, once: bool = False, mark: bool = True) -> None:
        """Print one output (as text lines or one JSON line).

        A live message, or the answer of a send (``once``), is printed only if that
        message was not printed already: a send shows up both as the answer and as
        its live event, in either order. History and threads always print.

        A printed message marks its chat read up to it (``mark``), unless the chat has
        unread messages not printed yet: the history on connect (``mark=False``) shows
        only the newest, so what came before them stays unread for ``/unread``.
        """
        if isinstance(out, ErrorOut) and out.code == ErrorCode.SESSION_EXPIRED:
            self._expiry_said = True
        change = _change_key(out)
        if change is not None:
            # an edit or a deletion is printed once: the answer and its event say the same
            if change in self._changes:
                return
            self._changes[change] = None
            if len(self._changes) > _PRINTED_MEMORY:
                self._changes.popitem(last=False)
        if not self._first_of_decision(out) or not self._first_of_reaction(out):
            return
        cache = self.runner.cache
        if isinstance(out, MessageOut) and cache is not None and out.message.encrypted is None:
            cache.save_messages([out.message])  # an encrypted one was kept as ciphertext
        if isinstance(out, MessageOut):
            if (out.live or once) and out.message.id in self._printed:
                return
            self._printed[out.message.id] = None
            self._printed.move_to_end(out.message.id)
            if len(self._printed) > _PRINTED_MEMORY:
                self._printed.popitem(last=False)
            if mark and out.message.chat_id not in self._behind:
                self._note_read(out.message)
        lines = [format_json(out)] if self.config.json else format_lines(out)
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    def _first_of_decision(self, out: Output | ConnectionState) -> bool:
        """Whether to print ``out``, as far as join decisions go: on the device that
        decided, the command's answer and the decision's event say the same, and the
        answer is what prints (the event may come first)."""
        if isinstance(out, JoinDecisionOut):
            key = (out.chat_id, out.login, out.approved)
            if key in self._decisions_said:
                self._decisions_said.discard(key)
                return False
            chats = (out.chat, str(out.chat_id), f"#{out.chat_id}")
            if self._deciding in [(chat, out.login, out.approved) for chat in chats]:
                self._decisions_heard.add(key)
                return False
        elif isinstance(out, MemberOut) and out.change in ("approved", "rejected"):
            key = (out.chat_id, out.login, out.change == "approved")
            if key in self._decisions_heard:
                self._decisions_heard.discard(key)
            else:
                self._decisions_said.add(key)
        return True

    def _first_of_reaction(self, out: Output | ConnectionState) -> bool:
        """Whether to print ``out``, as far as reactions go: the answer of this console's
        /react or /unreact and its own event say the same (``reactions on #3: 👍 1`` and
        ``bob reacted 👍 on #3: 👍 1``); whichever comes first prints. Another user's
        change in between shows in the counts, so both print then."""
        if not isinstance(out, ReactionsOut):
            return True
        key = (out.message_id, reactions_text(out.reactions))
        if out.login is None:  # the command's answer
            if key in self._reactions_heard:
                self._reactions_heard.discard(key)
                return False
            self._reactions_said.add(key)
        elif out.login == self.client.login_name:
            if key in self._reactions_said:
                self._reactions_said.discard(key)
                return False
            if self._running:
                self._reactions_heard.add(key)
        return True

    # --- read markers -----------------------------------------------------------

    def _note_read(self, message: Message) -> None:
        if message.thread_root is not None:
            return
        if message.id > self._read_upto.get(message.chat_id, 0):
            self._read_upto[message.chat_id] = message.id
            if self._read_task is None or self._read_task.done():
                self._read_task = asyncio.create_task(self._flush_reads())

    async def _flush_reads(self) -> None:
        # One request per chat however many messages were printed in this loop turn.
        await asyncio.sleep(0)
        while self._read_upto:
            marks, self._read_upto = self._read_upto, {}
            for chat_id, up_to in marks.items():
                try:
                    await self.client.mark_read(chat_id, up_to)
                except (ApiError, ConnectionError) as exc:
                    log.info("could not mark chat %d read: %s", chat_id, exc)

    async def _reads_done(self) -> None:
        if self._read_task is not None:
            await self._read_task

    # --- events -----------------------------------------------------------------

    async def _stream(self, last_event_id: int) -> None:
        stream = self.client.events(last_event_id)
        try:
            async for item in stream:
                if isinstance(item, ConnectionState):
                    self._connection(item)
                    continue
                if self.runner.cache is not None:
                    self.runner.cache.apply(item)
                if isinstance(item, ReadMarker) and item.chat_id in self._behind:
                    await self._maybe_caught_up(item.chat_id)
                if isinstance(item, ToDeviceWaiting):
                    await self._to_device(item)
                    continue
                try:
                    outputs = await self._reveal(await self.runner.event_outputs(item))
                except Exception:
                    # One event we cannot show must not end the live stream.
                    log.exception("could not show event %r", item)
                    continue
                for out in outputs:
                    self.emit(out)
                    if isinstance(out, LogoutOut):
                        return
                if isinstance(item, Reset):
                    # Too far behind to replay: count again what is unread.
                    self._say_unread(self.runner.unread_counts())
        except ApiError as exc:
            if exc.code != ErrorCode.SESSION_EXPIRED:
                self.emit(error_out(exc))
            elif self._running:
                self._expiry_heard = error_out(exc)  # the command's answer likely says it
            elif not self._expiry_said:
                self.emit(error_out(exc))
        finally:
            await stream.aclose()

    def _connection(self, state: ConnectionState) -> None:
        if state.state == "offline":
            self._was_offline = True
            self.emit(state)
        elif state.state == "reconnecting":
            self.emit(state)
        elif state.state == "connected" and self._was_offline:
            self._was_offline = False
            self.emit(state)

    async def _stop_events(self) -> None:
        if self._events is not None:
            self._events.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._events
            self._events = None

    async def _maybe_caught_up(self, chat_id: int) -> None:
        """Another client of this user read a chat: maybe nothing there is unread now."""
        try:
            chat = await self.client.chat(chat_id)
        except (ApiError, ConnectionError) as exc:
            log.info("could not reload chat %d: %s", chat_id, exc)
            return
        if chat.unread == 0:
            self._behind.discard(chat_id)

    def _say_unread(self, unread: UnreadOut) -> None:
        self._behind |= {c.chat_id for c in unread.chats}
        if unread.total:
            self.emit(unread)

    def _open_cache(self, login: str) -> None:
        """This account's cache: what was printed, so ``/search`` works offline too."""
        if self.runner.cache is not None:
            self.runner.cache.close()
            self.runner.cache = None
        try:
            root = self.config.dirs.data / "cache"
            self.runner.cache = Cache.for_account(self.config.server, login, root=root)
        except Exception:  # a broken cache must never keep the user out
            log.exception("cache unavailable; /search needs the server")

    async def _open_crypto(self, login: str) -> None:
        """This device's end-to-end encryption keys (made on first login), in its data dir."""
        self._close_crypto()
        directory = device_directory(self.config.dirs.data / "crypto", self.config.server, login)
        try:
            self.runner.crypto = await DeviceCrypto.open(
                self.client, directory, on_notice=self._trust_notice
            )
        except (MessengerError, ConnectionError) as exc:
            log.warning("end-to-end encryption unavailable: %s", exc)
            self.emit(ErrorOut("crypto", f"end-to-end encryption is off on this device: {exc}"))

    def _close_crypto(self) -> None:
        """The session's device keys are done with (logout, another login): its client
        forgets them, so one login's keys never hear the next one's events."""
        if self.runner.crypto is not None:
            self.runner.crypto.close()
            self.runner.crypto = None

    def _trust_notice(self, notice: TrustNotice) -> None:
        """A verification step, a new device, changed keys, shared keys: one line each."""
        out = self.runner.notice_output(notice)
        if out is not None:
            self.emit(out)

    async def _to_device(self, event: ToDeviceWaiting) -> None:
        crypto = self.runner.crypto
        if crypto is None or event.device_id != crypto.device_id:
            return
        try:
            await crypto.receive()
        except (MessengerError, ConnectionError) as exc:
            log.warning("could not fetch this device's keys: %s", exc)

    async def _reveal(self, outputs: list[Output]) -> list[Output]:
        """Encrypted messages with their text decrypted (or why it cannot be shown). The
        cache keeps the ciphertext the server sent, never the plaintext (issue 14)."""
        crypto, cache = self.runner.crypto, self.runner.cache
        shown: list[Output] = []
        for out in outputs:
            if isinstance(out, MessageOut | EditedOut) and out.message.encrypted is not None:
                if isinstance(out, MessageOut) and cache is not None:
                    cache.save_messages([out.message])
                if crypto is None:
                    text = "(encrypted: this device has no keys)"
                    out.message = msgspec.structs.replace(out.message, text=text)
                else:
                    revealed = await crypto.reveal(out.message)
                    if revealed is None:
                        continue  # a replayed copy: shown once already, under its first id
                    out.message = revealed
            shown.append(out)
        return shown

    async def _start_session(self, session: SessionOut) -> None:
        await self._stop_events()
        self._open_cache(session.login)
        self._expiry_said, self._expiry_heard = False, None
        self._behind.clear()
        n = self.config.history if self.config.history is not None else session.history_on_connect
        for out in await self._reveal(await self.runner.catch_up(n)):
            if isinstance(out, UnreadOut):
                self._say_unread(out)
            else:
                self.emit(out, mark=False)
        self._events = asyncio.create_task(self._stream(session.last_event_id))

    # --- commands ---------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Run one line; False when the console should stop."""
        if not line.strip():
            return True
        self._running = True
        try:
            return await self._handle(line)
        finally:
            self._running = False
            heard, self._expiry_heard = self._expiry_heard, None
            if heard is not None and not self._expiry_said:
                self.emit(heard)

    async def _handle(self, line: str) -> bool:
        # What was printed is read before the next command asks (e.g. /unread).
        await self._reads_done()
        parsed = parse(line)
        once = isinstance(parsed, ParsedCommand) and parsed.name in POSTING_COMMANDS
        if isinstance(parsed, ParsedCommand) and parsed.name in ("approve", "reject"):
            args = parsed.args
            self._deciding = (args["chat"], args["login"], parsed.name == "approve")
        try:
            if isinstance(parsed, UsageError):
                outputs: list[Output] = [ErrorOut("usage", str(parsed))]
            else:
                outputs = await self._reveal(await self.runner.run(parsed))
        except Exception as exc:
            # A bug must cost one line of output, not the session.
            log.exception("command %r failed", line.split(" ", 1)[0])
            outputs = [ErrorOut("internal", f"client error: {exc!r}")]
        finally:
            self._deciding = None
        unread_listed = any(isinstance(out, UnreadOut) for out in outputs)
        if unread_listed and isinstance(parsed, ParsedCommand) and parsed.name == "unread":
            self._behind.clear()  # every unread message is in this answer
        for out in outputs:
            if isinstance(out, SessionOut):
                # the device's keys are up before "logged in" is printed: a message sent
                # to this user from then on is encrypted for this device
                await self._open_crypto(out.login)
            self.emit(out, once=once)
            if isinstance(out, SessionOut):
                try:
                    await self._start_session(out)
                except (ApiError, ConnectionError) as exc:
                    self.emit(ErrorOut("offline", f"could not load history: {exc}"))
            elif isinstance(out, LogoutOut):
                await self._stop_events()
                self._close_crypto()
            elif isinstance(out, ExitOut):
                return False
        return True

    async def run(self, lines: _StdinLines) -> int:
        """Read and run commands until ``/exit`` or end of input."""
        try:
            if self.config.login and self.config.password:
                await self.handle(f"/login {self.config.login} {self.config.password}")
            elif lines.interactive:  # a person at a blank screen: how to begin
                self.emit(InfoOut(f"messenger at {self.config.server}: /auth <login> <password>"
                                  " registers, /login <login> <password> logs in, /help lists"
                                  " every command"))  # fmt: skip
            while (line := await lines.next()) is not None:
                if not await self.handle(line.rstrip("\r\n")):
                    break
            await self._reads_done()
        finally:
            await self._stop_events()
            self._close_crypto()
            await self.client.close()
            if self.runner.cache is not None:
                self.runner.cache.close()
        return 0


async def run_plain(
    config: ClientConfig, stdin: TextIO | None = None, out: TextIO | None = None
) -> int:
    """Run the plain console client; returns the process exit code."""
    console = PlainConsole(config, out or sys.stdout)
    return await console.run(_StdinLines(stdin or sys.stdin))
