"""The slash commands of SPEC §4, shared by the plain console client and the TUI.

Three parts, each usable alone:

* :data:`COMMANDS` -- the table: name, arguments, usage line, one-line help.
* :func:`parse` -- one input line to a :class:`ParsedCommand` or a :class:`UsageError`
  (text without a leading ``/`` is a send to the current chat; ``//x`` sends ``/x``).
* :class:`CommandRunner` -- performs a parsed command with the client library and
  returns typed :data:`Output` items (:class:`MessageOut`, :class:`InfoOut`,
  :class:`ErrorOut`, :class:`TableOut`, ... -- tagged Structs, see
  :mod:`messenger_client.outputs`) that each UI renders its own way. It never raises
  for a server error: every failure becomes an :class:`ErrorOut`.

:func:`complete` offers tab completions of commands, logins and chat names.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import aiofiles.os
import platformdirs

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    Banned,
    Chat,
    ChatLeft,
    ChatUpdated,
    ErrorCode,
    Event,
    JoinDecided,
    JoinRequested,
    Mentioned,
    Message,
    MessageCreated,
    MessageDeleted,
    MessageEdited,
    MessengerError,
    ParsedSearch,
    PinChanged,
    Presence,
    Reaction,
    ReactionChanged,
    Reset,
    ScheduledMessage,
    ScheduledUpdated,
    SearchHit,
    SearchResults,
    Session,
    SessionEnded,
    Span,
    format_size,
    format_time,
    limits,
    parse_search,
    snippet,
)

from .api import Client, ServerUnavailable
from .cache import Cache
from .crypto import DeviceCrypto
from .outputs import (
    BanOut,
    ChatOut,
    ComplaintOut,
    ContactOut,
    ContactRow,
    ContactsOut,
    CurrentChatOut,
    DeletedOut,
    DeviceOut,
    DeviceRow,
    DevicesOut,
    DownloadOut,
    EditedOut,
    EditsOut,
    EmptyOut,
    EncryptionOut,
    ErrorOut,
    ExitOut,
    FilesOut,
    HelpOut,
    InfoOut,
    JoinDecisionOut,
    JoinOut,
    JoinRequestOut,
    LinkOut,
    LogoutOut,
    MemberOut,
    MentionOut,
    MentionsOut,
    MessageOut,
    MuteOut,
    Output,
    PinOut,
    PinsOut,
    PresenceOut,
    ReactionsOut,
    ResyncOut,
    RoomKeysOut,
    ScheduledListOut,
    ScheduledOut,
    ScheduledRow,
    SearchOut,
    SessionOut,
    StatusOut,
    TableOut,
    UnreadCount,
    UnreadOut,
    UserRow,
    UsersOut,
    VerificationOut,
    at,
    at_or_none,
)
from .trust import (
    DeviceKeyChanged,
    KeyRequestRefused,
    KeysReceived,
    KeysWithheld,
    NewDevice,
    TrustNotice,
    VerificationUpdate,
)

__all__ = [
    "COMMANDS",
    "POSTING_COMMANDS",
    "ArgSpec",
    "CommandRunner",
    "CommandSpec",
    "ErrorOut",
    "ExitOut",
    "InfoOut",
    "LogoutOut",
    "MessageOut",
    "Output",
    "ParsedCommand",
    "SessionOut",
    "StatusOut",
    "TableOut",
    "UnreadCount",
    "UnreadOut",
    "UsageError",
    "complete",
    "parse",
    "parse_invite",
    "parse_when",
]

log = logging.getLogger(__name__)

# --- the table --------------------------------------------------------------

ArgKind = Literal["login", "chat", "target", "text", "int", "word", "when", "path", "command"]


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One argument of a command. A ``text`` argument takes the rest of the line."""

    name: str
    kind: ArgKind
    optional: bool = False


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One slash command: its arguments, usage line and one-line help."""

    name: str
    args: tuple[ArgSpec, ...]
    usage: str
    help: str
    needs_login: bool = True


def _cmd(name: str, usage_args: str, help: str, *args: ArgSpec, login: bool = True) -> CommandSpec:
    usage = f"/{name} {usage_args}".rstrip()
    return CommandSpec(name, args, usage, help, login)


def _a(name: str, kind: ArgKind, optional: bool = False) -> ArgSpec:
    return ArgSpec(name, kind, optional)


COMMANDS: dict[str, CommandSpec] = {
    c.name: c
    for c in (
        _cmd("auth", "<login> <password>", "register a new account and log in",
             _a("login", "login"), _a("password", "word"), login=False),
        _cmd("login", "<login> <password>", "log in", _a("login", "login"),
             _a("password", "word"), login=False),
        _cmd("exit", "", "disconnect and quit", login=False),
        _cmd("logout", "", "end this session on the server"),
        _cmd("send", "<text>", "post to the general chat", _a("text", "text")),
        _cmd("private", "<login> <text>", "private message to a user", _a("login", "login"),
             _a("text", "text")),
        _cmd("unread", "", "everything unread, per chat"),
        _cmd("status", "", "your connections, counts, chats and login history"),
        _cmd("history", "[chat|@login] [n]", "the last n messages of a chat",
             _a("target", "target", True), _a("n", "int", True)),
        _cmd("users", "", "everyone, with presence"),
        _cmd("create", "<chat> [--encrypted]",
             "create a private group chat (--encrypted: end-to-end, for good)",
             _a("chat", "chat"), _a("encrypted", "word", True)),
        _cmd("send_chat", "<chat> <text>", "post to a group chat", _a("chat", "chat"),
             _a("text", "text")),
        _cmd("invite", "<login> <chat>", "(owner) add a user to a group chat",
             _a("login", "login"), _a("chat", "chat")),
        _cmd("link", "<chat>", "(owner) create an invite link", _a("chat", "chat")),
        _cmd("join", "<chat> [key|link]", "join a group chat (with an invite key or link)",
             _a("chat", "word"), _a("key", "word", True)),
        _cmd("approve", "<chat> <login>", "(owner) approve a join request", _a("chat", "chat"),
             _a("login", "login")),
        _cmd("reject", "<chat> <login>", "(owner) reject a join request", _a("chat", "chat"),
             _a("login", "login")),
        _cmd("comment", "<message-id> <text>", "comment on a message",
             _a("message_id", "int"), _a("text", "text")),
        _cmd("thread", "<message-id>", "show a message and its comments",
             _a("message_id", "int")),
        _cmd("edit", "<message-id> <text>", "replace the text of your message",
             _a("message_id", "int"), _a("text", "text")),
        _cmd("edits", "<message-id>",
             "every text your message had (admins: any), oldest first",
             _a("message_id", "int")),
        _cmd("delete", "<message-id>", "delete your message (admins: any); a tombstone stays",
             _a("message_id", "int")),
        _cmd("reply", "<message-id> <text>", "answer a message in its chat, quoting it",
             _a("message_id", "int"), _a("text", "text")),
        _cmd("react", "<message-id> <emoji>", "add a reaction to a message",
             _a("message_id", "int"), _a("emoji", "word")),
        _cmd("unreact", "<message-id> <emoji>", "take your reaction back",
             _a("message_id", "int"), _a("emoji", "word")),
        _cmd("pin", "<message-id>", "(owner) pin a message in its chat", _a("message_id", "int")),
        _cmd("unpin", "<message-id>", "(owner) unpin a message", _a("message_id", "int")),
        _cmd("pins", "[chat|@login]", "the messages pinned in a chat",
             _a("target", "target", True)),
        _cmd("search", "<query>",
             'search your chats: words (the last may be a prefix: noo finds noon), "a phrase",'
             " in:<chat> from:<login> before:/after:<YYYY-MM-DD> has:file", _a("query", "text")),
        _cmd("mentions", "", "recent messages that mention you"),
        _cmd("mute", "<chat|@login> [all|mentions|off]",
             "mute a chat (all), let only mentions through, or unmute (off)",
             _a("target", "target"), _a("mode", "word", True)),
        _cmd("schedule", "<when> <target> <text>",
             "send later; when: ISO 8601 local time, HH:MM or +10m/+2h/+1d/+30s",
             _a("when", "when"), _a("target", "target"), _a("text", "text")),
        _cmd("scheduled", "", "your scheduled messages"),
        _cmd("cancel", "<scheduled-id>", "cancel a scheduled message",
             _a("scheduled_id", "int")),
        _cmd("complain", "<login> [reason]", "complain about a user", _a("login", "login"),
             _a("reason", "text", True)),
        _cmd("report", "<message-id> [--with-text] [reason]",
             "complain about a message's author, pointing at it; --with-text includes its"
             " text (an encrypted one's, as this device reads it: admins cannot otherwise)",
             _a("message_id", "int"), _a("reason", "text", True)),
        _cmd("file", "<path> [target]", "send a file (up to 5 MiB)", _a("path", "path"),
             _a("target", "target", True)),
        _cmd("download", "<file-id> [path]", "download an attachment", _a("file_id", "word"),
             _a("path", "path", True)),
        _cmd("files", "[target]", "files posted in a chat", _a("target", "target", True)),
        _cmd("encryption", "<chat|@login> [on|off]",
             "end-to-end encryption of a direct chat for what you send here: on (the"
             " default once both of you have device keys) or off; shows it without on|off",
             _a("target", "target"), _a("mode", "word", True)),
        _cmd("devices", "[login]",
             "a user's devices (yours by default): verified, unverified or keys changed",
             _a("login", "login", True)),
        _cmd("verify", "<login> [device]",
             "verify a device by comparing emoji (or accept its request)", _a("login", "login"),
             _a("device", "word", True)),
        _cmd("confirm", "[login]", "the emoji of a verification match: trust that device",
             _a("login", "login", True)),
        _cmd("mismatch", "[login]", "the emoji differ (or stop): cancel a verification",
             _a("login", "login", True)),
        _cmd("contacts", "", "your contact list"),
        _cmd("add_contact", "<login>", "add a contact", _a("login", "login")),
        _cmd("del_contact", "<login>", "remove a contact", _a("login", "login")),
        _cmd("help", "[command]", "list the commands, or explain one",
             _a("command", "command", True), login=False),
    )
}  # fmt: skip
"""Every slash command, by name (without the slash)."""


POSTING_COMMANDS = frozenset({"say", "send", "private", "send_chat", "comment", "file", "reply"})
"""Commands whose answer is a new message that also arrives as a live event."""


# --- parsing ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    """A command with its arguments converted (``int`` and ``when`` args are numbers).

    Optional arguments that were left out are None. ``when`` is Unix time.
    """

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    line: str = ""


@dataclass(frozen=True, slots=True)
class UsageError:
    """A line that is not a valid command; ``str()`` is the one-line message to show."""

    message: str
    usage: str = ""

    def __str__(self) -> str:
        return f"{self.message}; usage: {self.usage}" if self.usage else self.message


_LOGIN = re.compile(limits.LOGIN_PATTERN)
_CHAT = re.compile(limits.CHAT_NAME_PATTERN)
_RELATIVE = re.compile(r"^\+(?:\d+[smhdw])+$")
_RELATIVE_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_when(text: str, now: float | None = None) -> float:
    """Unix time of ``text``: ``+10m``/``+2h``/``+1d``/``+30s`` (combinable, ``+1h30m``),
    ``HH:MM`` (next such local time) or ISO 8601 (local time unless it has an offset).

    Raises ValueError for anything else or a time that has passed.
    """
    now = time.time() if now is None else now
    text = text.strip()
    if _RELATIVE.match(text):
        seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _RELATIVE_PART.findall(text))
        if seconds <= 0:
            raise ValueError("the delay must be more than zero")
        return now + seconds
    clock = _CLOCK.match(text)
    if clock:
        hour, minute, second = int(clock[1]), int(clock[2]), int(clock[3] or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"not a time of day: {text}")
        today = datetime.fromtimestamp(now).replace(
            hour=hour, minute=minute, second=second, microsecond=0
        )
        at = today if today.timestamp() > now else today + timedelta(days=1)
        return at.timestamp()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use +10m, HH:MM or 2025-01-31T18:00)") from None
    # A naive datetime is local time; timestamp() reads it that way.
    stamp = moment.timestamp()
    if stamp <= now:
        raise ValueError(f"{text} has already passed")
    return stamp


def parse_invite(text: str) -> tuple[str, str | None]:
    """Chat name and key of an invite link (or of a plain chat name: no key).

    Accepts ``…?name=<chat>&key=<key>`` query strings and paths ending in
    ``<chat>/<key>`` (``/join/<chat>/<key>``), whatever the scheme and host.
    """
    if "/" not in text and "?" not in text and "#" not in text:
        return text, None
    parts = urlsplit(text)
    query = parse_qs(parts.query or parts.fragment)
    names = query.get("name") or query.get("chat") or []
    keys = query.get("key") or []
    name: str | None = names[0] if names else None
    key: str | None = keys[0] if keys else None
    segments = [s for s in parts.path.split("/") if s]
    if parts.netloc and not parts.scheme.startswith("http"):
        # messenger://join/<chat>/<key>: the "host" is the first path segment.
        segments.insert(0, parts.netloc)
    if "join" in segments:
        segments = segments[segments.index("join") + 1 :]
    if name is None and segments:
        name = segments[0]
    if key is None and len(segments) >= 2:
        key = segments[1]
    if not name:
        raise ValueError(f"not an invite link: {text!r}")
    return name, key


def _take(rest: str, quoted: bool) -> tuple[str, str]:
    """The next word of ``rest`` (a quoted one when allowed) and what follows it."""
    rest = rest.lstrip()
    if quoted and rest[:1] in ("'", '"'):
        end = rest.find(rest[0], 1)
        if end > 0:
            return rest[1:end], rest[end + 1 :]
    word, _, after = rest.partition(" ")
    return word, after


def _convert(arg: ArgSpec, raw: str) -> Any:
    """The value of one argument; ValueError with a short reason when it is wrong."""
    match arg.kind:
        case "login":
            login = raw.removeprefix("@")
            if not _LOGIN.match(login):
                raise ValueError(f"not a valid login: {raw!r}")
            return login
        case "chat":
            if not _CHAT.match(raw):
                raise ValueError(f"not a valid chat name: {raw!r}")
            return raw
        case "target":
            valid = _LOGIN.match(raw[1:]) if raw.startswith("@") else _CHAT.match(raw)
            if not valid:
                raise ValueError(f"not a chat or @login: {raw!r}")
            return raw
        case "int":
            digits = raw.removeprefix("#")
            if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
                raise ValueError(f"not a number: {raw!r}")
            return int(digits)
        case "when":
            return parse_when(raw)
        case "command":
            return raw.removeprefix("/")
        case _:
            return raw


def parse(line: str) -> ParsedCommand | UsageError:
    """Parse one input line. Text without a leading ``/`` is a send to the current chat."""
    text = line.strip()
    if not text:
        return UsageError("empty line; /help lists the commands")
    if not text.startswith("/") or text.startswith("//"):
        body = text[1:] if text.startswith("//") else text
        return ParsedCommand("say", {"text": body}, line)
    head, _, rest = text[1:].partition(" ")
    name = head.lower()
    spec = COMMANDS.get(name)
    if spec is None:
        return UsageError(f"unknown command /{head}; /help lists the commands")
    values: dict[str, Any] = {}
    args = spec.args
    for index, arg in enumerate(args):
        if arg.kind == "text":
            value = rest.strip()
            if not value:
                if not arg.optional:
                    return UsageError(f"missing {arg.name}", spec.usage)
                values[arg.name] = None
            else:
                values[arg.name] = value
            rest = ""
            continue
        word, after = _take(rest, quoted=arg.kind == "path")
        if not word:
            if not arg.optional:
                return UsageError(f"missing {arg.name}", spec.usage)
            values[arg.name] = None
            continue
        following = args[index + 1] if index + 1 < len(args) else None
        if (
            arg.optional
            and following is not None
            and following.kind == "int"
            and word.isdigit()
            and not after.strip()
        ):
            # "/history 50": a lone number is the count, not a chat called "50".
            values[arg.name] = None
            continue
        try:
            values[arg.name] = _convert(arg, word)
        except ValueError as exc:
            return UsageError(str(exc), spec.usage)
        rest = after
    if rest.strip():
        return UsageError(f"too many arguments: {rest.strip()!r}", spec.usage)
    if name == "join":
        return _join_args(values, line, spec)
    return ParsedCommand(name, values, line)


def _join_args(values: dict[str, Any], line: str, spec: CommandSpec) -> ParsedCommand | UsageError:
    """``/join <link>``, ``/join <chat> <key>`` and ``/join <chat> <link>`` alike."""
    try:
        chat, key = parse_invite(values["chat"])
    except ValueError as exc:
        return UsageError(str(exc), spec.usage)
    if not _CHAT.match(chat):
        return UsageError(f"not a valid chat name: {chat!r}", spec.usage)
    given: str | None = values["key"]
    if given is not None and any(c in given for c in "/?#"):
        try:
            link_chat, given = parse_invite(given)
        except ValueError as exc:
            return UsageError(str(exc), spec.usage)
        if given is None:
            return UsageError(f"no invite key in {values['key']!r}", spec.usage)
        if link_chat.lower() != chat.lower():
            return UsageError(f"that link is for {link_chat}, not {chat}", spec.usage)
    values["chat"], values["key"] = chat, given or key
    return ParsedCommand("join", values, line)


# --- completion -------------------------------------------------------------


def complete(prefix: str, logins: Iterable[str], chats: Iterable[str]) -> list[str]:
    """Completions of the input ``prefix``: whole lines, sorted, that start with it.

    Completes the command name after ``/``, then each argument by its kind (logins,
    group chat names, targets: ``general``, chats and ``@login``); inside free text
    an ``@`` word completes to a login.
    """
    logins = sorted(set(logins))
    chats = sorted(set(chats))
    if prefix.startswith("/") and " " not in prefix:
        word = prefix[1:].lower()
        return [
            f"/{name} " if spec.args else f"/{name}"
            for name, spec in sorted(COMMANDS.items())
            if name.startswith(word)
        ]
    start = prefix.rfind(" ") + 1
    word = prefix[start:]
    kind: ArgKind = "text"
    if prefix.startswith("/"):
        head, _, rest = prefix[1:].partition(" ")
        spec = COMMANDS.get(head.lower())
        if spec is None:
            return []
        position = len(rest[: len(rest) - len(word)].split())
        if position < len(spec.args):
            kind = spec.args[position].kind
        elif spec.args and spec.args[-1].kind == "text":
            kind = "text"
        else:
            return []
    candidates: list[str]
    match kind:
        case "login":
            candidates = logins
        case "chat":
            candidates = [c for c in chats if c != "general" and not c.startswith("@")]
        case "target":
            candidates = [
                "general",
                *(c for c in chats if c != "general"),
                *(f"@{u}" for u in logins),
            ]
        case "command":
            candidates = sorted(COMMANDS)
        case "text":
            candidates = [f"@{u}" for u in logins] if word.startswith("@") else []
        case _:
            candidates = []
    seen: set[str] = set()
    out: list[str] = []
    for c in candidates:
        if c.startswith(word) and c != word and c not in seen:
            seen.add(c)
            out.append(prefix[:start] + c)
    return sorted(out)


# --- outputs: see outputs.py -------------------------------------------------

ProgressHook = Callable[[str, int, int | None], None]
"""Transfer progress: ``(file name, bytes done, bytes total or None)``."""


def _soon(stamp: float) -> str:
    """A coming moment with how far off it is: ``14:05 (in 4 h)``."""
    return format_time(stamp, now=time.time(), relative=True)


def _presence(online: bool, last_seen: float | None) -> str:
    if online:
        return "online"
    return f"last seen {format_time(last_seen)}" if last_seen is not None else "offline"


def _local_path(text: str) -> Path:
    # expanduser only reads the environment; it never touches the disk.
    return Path(text).expanduser()


def error_out(exc: MessengerError) -> ErrorOut:
    """The output of a failed call."""
    if not isinstance(exc, ApiError):
        return ErrorOut("offline", f"server unavailable: {exc}")
    text = exc.message
    if exc.code == ErrorCode.UNAVAILABLE and "not available" not in exc.message:
        text = f"not available yet ({exc.message})"
    elif exc.code == ErrorCode.SESSION_EXPIRED:
        text = f"{exc.message} with /login <login> <password>"
    return ErrorOut(exc.code.value, text, retry_after=exc.retry_after, until=at_or_none(exc.until))


# --- the runner -------------------------------------------------------------


class CommandRunner:
    """Performs parsed commands with a :class:`Client`; keeps the chat-name cache.

    ``current_chat_id`` is where plain text goes (the TUI sets it when the user
    switches chats). With ``follow`` (the plain console, which has no chat on screen)
    ``/send``, ``/private`` and ``/send_chat`` make their chat the current one and say so.
    ``downloads`` is where ``/download`` saves by default.
    """

    def __init__(
        self,
        client: Client,
        *,
        downloads: Path | None = None,
        progress: ProgressHook | None = None,
        follow: bool = False,
        cache: Cache | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        """This device's cache: ``/search`` falls back to it when the server is out of reach."""
        self.current_chat_id = GENERAL_CHAT_ID
        self.follow = follow
        self.downloads = downloads or Path(platformdirs.user_downloads_dir())
        self.progress = progress
        self._chats: dict[int, Chat] = {}
        self._by_name: dict[str, int] = {}
        self._logging_out = False
        self.crypto: DeviceCrypto | None = None
        """This device's end-to-end encryption (set after login): direct chats whose two
        users have device keys are encrypted (issue 14)."""
        self._opening: set[str] = set()
        """Peers whose private chat this runner is opening (its event says nothing new)."""

    # --- chat names ---------------------------------------------------------

    def remember(self, chat: Chat) -> None:
        """Put a chat in the name cache."""
        old = self._chats.get(chat.id)
        if old is not None and self._by_name.get(old.name) == chat.id:
            del self._by_name[old.name]
        self._chats[chat.id] = chat
        self._by_name[chat.name] = chat.id

    def forget(self, chat_id: int) -> None:
        """Drop a chat from the name cache."""
        chat = self._chats.pop(chat_id, None)
        if chat is not None and self._by_name.get(chat.name) == chat_id:
            del self._by_name[chat.name]

    @property
    def chat_names(self) -> list[str]:
        """Names of the known chats (for completion)."""
        return sorted(self._by_name)

    async def refresh_chats(self) -> list[Chat]:
        """Reload the chat list into the cache."""
        chats = (await self.client.chats()).chats
        self._chats.clear()
        self._by_name.clear()
        for chat in chats:
            self.remember(chat)
        return chats

    async def resolve(self, target: str | None) -> Chat:
        """The chat of a target: ``general``, a group name or ``@login`` (None: current)."""
        if target is None:
            chat_id = self.current_chat_id
            chat = self._chats.get(chat_id)
            if chat is None:
                chat = await self.client.chat(chat_id)
                self.remember(chat)
            return chat
        chat_id_or_none = self._by_name.get(target)
        if chat_id_or_none is None:
            if target == "general":
                chat = await self.client.chat(GENERAL_CHAT_ID)
                self.remember(chat)
                self._by_name[target] = chat.id
                return chat
            if target.startswith("@"):
                peer = target[1:].lower()
                self._opening.add(peer)
                try:
                    chat = await self.client.open_direct(target[1:])
                finally:
                    self._opening.discard(peer)
                self.remember(chat)
                # The server may name it differently; the target also finds it.
                self._by_name[target] = chat.id
                return chat
            await self.refresh_chats()
            chat_id_or_none = self._by_name.get(target)
            if chat_id_or_none is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"you are not in a chat named {target!r}")
        return self._chats[chat_id_or_none]

    async def chat_name(self, chat_id: int) -> str:
        """Display name of a chat (fetched once if unknown)."""
        chat = self._chats.get(chat_id)
        if chat is None:
            try:
                chat = await self.client.chat(chat_id)
            except MessengerError:
                return f"chat{chat_id}"
            self.remember(chat)
        return chat.name

    async def _messages(self, messages: Sequence[Message], live: bool = False) -> list[Output]:
        return [MessageOut(m, await self.chat_name(m.chat_id), live) for m in messages]

    # --- running ------------------------------------------------------------

    async def run_line(self, line: str) -> list[Output]:
        """Parse and run one input line."""
        parsed = parse(line)
        if isinstance(parsed, UsageError):
            return [ErrorOut("usage", str(parsed))]
        return await self.run(parsed)

    async def run(self, parsed: ParsedCommand) -> list[Output]:
        """Perform a command; failures come back as :class:`ErrorOut`, never raised."""
        handler = getattr(self, f"_do_{parsed.name}", None)
        if handler is None:
            return [ErrorOut("usage", f"unknown command /{parsed.name}")]
        try:
            result: list[Output] = await handler(**parsed.args)
        except MessengerError as exc:
            out = error_out(exc)
            if out.code == ErrorCode.UNAUTHORIZED and self.client.token is None:
                out = ErrorOut(out.code, f"{out.text} (use /login or /auth)")
            return [out]
        except OSError as exc:  # local files of /file and /download
            return [ErrorOut("local", f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))]
        return result

    async def catch_up(self, n: int) -> list[Output]:
        """What a login shows: the last ``n`` messages of the general chat, then how many
        messages are unread per chat. Showing them marks nothing read: whatever arrived
        while the user was away stays unread until ``/unread`` (or a UI) shows it."""
        await self.refresh_chats()
        out: list[Output] = []
        if n > 0:
            page = await self.client.history(GENERAL_CHAT_ID, limit=min(n, limits.HISTORY_PAGE_MAX))
            out += await self._messages(page.messages)
        unread = self.unread_counts()
        return [*out, unread] if unread.total else out

    def unread_counts(self) -> UnreadOut:
        """Unread counts per chat as the last chat list said (after :meth:`refresh_chats`)."""
        counts = tuple(
            UnreadCount(c.id, c.name, c.unread) for c in self._chats.values() if c.unread
        )
        return UnreadOut.of(counts, after_login=True)

    async def event_outputs(self, event: Event) -> list[Output]:
        """What a live event shows as (nothing for bookkeeping events)."""
        match event:
            case MessageCreated(message=m):
                return await self._messages([m], live=True)
            case Mentioned(chat_id=chat_id, message=m):
                name = await self.chat_name(chat_id)
                text = f"{m.author} mentioned you in {name}: {_one_line(m)} (#{m.id})"
                return [MentionOut(text, chat_id=chat_id, chat=name, message_id=m.id,
                                   author=m.author)]  # fmt: skip
            case ChatUpdated(chat=chat):
                known = chat.id in self._chats or (chat.peer or "").lower() in self._opening
                self.remember(chat)
                if known:
                    return []
                if chat.kind == "direct":
                    answer = f"; /private {chat.peer} <text> writes there" if chat.peer else ""
                    text = f"new private chat {chat.name}{answer}"
                    return [ChatOut(text, change="private", chat_id=chat.id, chat=chat.name)]
                text = f"you are now a member of {chat.name}; /send_chat {chat.name} <text>"
                return [ChatOut(text, change="member", chat_id=chat.id, chat=chat.name)]
            case ChatLeft(chat_id=chat_id, reason=reason):
                name = await self.chat_name(chat_id)
                self.forget(chat_id)
                text = f"you left {name}" + (f" ({reason})" if reason else "")
                out: list[Output] = [
                    ChatOut(text, change="left", chat_id=chat_id, chat=name, reason=reason or None)
                ]
                if self.follow and chat_id == self.current_chat_id:
                    out.append(self._switch_to(await self.resolve("general")))
                return out
            case JoinRequested(request=r):
                how = "with an invite key" if r.with_key else "without a key"
                text = (
                    f"{r.login} asks to join {r.chat_name} ({how}): "
                    f"/approve {r.chat_name} {r.login} or /reject {r.chat_name} {r.login}"
                )
                return [
                    JoinRequestOut(
                        text,
                        chat_id=r.chat_id,
                        chat=r.chat_name,
                        login=r.login,
                        with_key=r.with_key,
                        created=at(r.created_at),
                    )
                ]
            case JoinDecided(chat_id=chat_id, chat_name=name, approved=approved, login=login):
                how = "approved" if approved else "rejected"
                whose = "your" if login == self.client.login_name else f"{login}'s"
                text = f"{whose} request to join {name} was {how}"
                return [
                    JoinDecisionOut(
                        text, chat_id=chat_id, chat=name, approved=approved, login=login
                    )
                ]
            case Banned(login=login, until=until, reason=reason):
                who = "you are" if login == self.client.login_name else f"{login} is"
                if until is None:
                    text = f"{who} no longer banned"
                else:
                    why = f" ({reason})" if reason else ""
                    text = f"{who} banned from sending until {_soon(until)}{why}"
                return [BanOut(text, login=login, until=at_or_none(until), reason=reason or "")]
            case MessageDeleted(chat_id=chat_id, message_id=message_id, tombstone=tombstone):
                name = await self.chat_name(chat_id)
                how = "was deleted" if tombstone is not None else "disappeared"
                text = f"message #{message_id} in {name} {how}"
                return [
                    DeletedOut(
                        text, chat_id=chat_id, chat=name, message_id=message_id, tombstone=tombstone
                    )
                ]
            case MessageEdited(message=m):
                return [EditedOut(message=m, chat=await self.chat_name(m.chat_id), live=True)]
            case ReactionChanged(
                chat_id=chat_id,
                message_id=message_id,
                emoji=emoji,
                login=login,
                added=added,
                reactions=reactions,
            ):
                name = await self.chat_name(chat_id)
                verb = "reacted" if added else "took back"
                text = f"{login} {verb} {emoji} on #{message_id}: {reactions_text(reactions)}"
                return [
                    ReactionsOut(
                        text, chat_id=chat_id, chat=name, message_id=message_id,
                        reactions=tuple(reactions), login=login, emoji=emoji, added=added,
                    )
                ]  # fmt: skip
            case PinChanged(chat_id=chat_id, message_id=message_id, pinned=pinned, by=by):
                name = await self.chat_name(chat_id)
                text = f"{by} {'pinned' if pinned else 'unpinned'} #{message_id} in {name}"
                return [
                    PinOut(
                        text,
                        chat_id=chat_id,
                        chat=name,
                        message_id=message_id,
                        pinned=pinned,
                        by=by,
                    )
                ]
            case ScheduledUpdated(scheduled=s):
                what = {
                    "pending": "is scheduled",
                    "sent": f"was sent as message #{s.message_id}",
                    "failed": "failed",
                    "cancelled": "was cancelled",
                }
                detail = f": {s.failure}" if s.failure else ""
                text = f"scheduled #{s.id} {what.get(s.state, s.state)}{detail}"
                return [await self._scheduled_out(s, text)]
            case SessionEnded(session_id=session_id, expired=expired):
                session = self.client.session
                if self._logging_out or session is None or session.session_id != session_id:
                    return []  # our own /logout, or another session of ours
                if expired:
                    return []  # the request that found it expired said so already
                return [LogoutOut("this session was ended from another client")]
            case Presence(login=login, online=online, last_seen=last_seen):
                if login == self.client.login_name:
                    return []
                text = f"{login} is {'online' if online else 'offline'}"
                return [
                    PresenceOut(text, login=login, online=online, last_seen=at_or_none(last_seen))
                ]
            case Reset(reason=reason):
                await self.refresh_chats()
                return [ResyncOut(f"resynchronised with the server ({reason})", reason=reason)]
            case _:
                return []

    async def _scheduled_out(self, s: ScheduledMessage, text: str) -> ScheduledOut:
        return ScheduledOut(
            text,
            id=s.id,
            chat_id=s.chat_id,
            chat=await self.chat_name(s.chat_id),
            state=s.state,
            send_at=at(s.send_at),
            message_id=s.message_id,
            failure=s.failure or None,
        )

    # --- commands -----------------------------------------------------------

    async def _do_auth(self, login: str, password: str) -> list[Output]:
        session = await self.client.register(login, password)
        await self.refresh_chats()
        return [_session_out(session, registered=True)]

    async def _do_login(self, login: str, password: str) -> list[Output]:
        session = await self.client.login(login, password)
        await self.refresh_chats()
        return [_session_out(session, registered=False)]

    async def _do_exit(self) -> list[Output]:
        return [ExitOut()]

    async def _do_logout(self) -> list[Output]:
        self._logging_out = True
        try:
            if self.crypto is not None:
                await self.crypto.unpublish()  # others stop encrypting to this device
            await self.client.logout()
        finally:
            self._logging_out = False
        self._chats.clear()
        self._by_name.clear()
        return [LogoutOut("logged out")]

    async def _post(self, chat: Chat, text: str, *, switch: bool = False) -> list[Output]:
        if self.crypto is not None:
            message = await self.crypto.send(chat, text)
        else:
            message = await self.client.send(chat.id, text, retries=1)
        out: list[Output] = [MessageOut(message, chat.name)]
        if switch and self.follow and chat.id != self.current_chat_id:
            out.append(self._switch_to(chat))
        return out

    def _switch_to(self, chat: Chat) -> Output:
        """Make ``chat`` where plain text goes, and say so (and how to go back)."""
        self.current_chat_id = chat.id
        text = f"you are now in {chat.name}: plain text goes there"
        if chat.id != GENERAL_CHAT_ID:
            text += "; /send <text> goes back to general"
        return CurrentChatOut(text, chat_id=chat.id, chat=chat.name)

    async def _do_say(self, text: str) -> list[Output]:
        return await self._post(await self.resolve(None), text)

    async def _do_send(self, text: str) -> list[Output]:
        return await self._post(await self.resolve("general"), text, switch=True)

    async def _do_private(self, login: str, text: str) -> list[Output]:
        return await self._post(await self.resolve(f"@{login}"), text, switch=True)

    async def _do_send_chat(self, chat: str, text: str) -> list[Output]:
        return await self._post(await self.resolve(chat), text, switch=True)

    async def _do_unread(self) -> list[Output]:
        unread = await self.client.all_unread()
        counts: list[UnreadCount] = []
        messages: list[Output] = []
        for entry in unread.chats:
            self.remember(entry.chat)
            counts.append(UnreadCount(entry.chat.id, entry.chat.name, entry.count))
            messages += [MessageOut(m, entry.chat.name) for m in entry.messages]
        return [UnreadOut.of(tuple(counts)), *messages]

    async def _do_status(self) -> list[Output]:
        return [StatusOut(await self.client.status())]

    async def _do_history(self, target: str | None, n: int | None) -> list[Output]:
        chat = await self.resolve(target)
        wanted = max(1, n or limits.HISTORY_ON_CONNECT)
        messages: list[Message] = []
        before: int | None = None
        while len(messages) < wanted:
            limit = min(limits.HISTORY_PAGE_MAX, wanted - len(messages))
            page = await self.client.history(chat.id, before=before, limit=limit)
            messages[:0] = page.messages
            if not page.has_more or not page.messages:
                break
            before = page.messages[0].id
        if not messages:
            return [EmptyOut(f"no messages in {chat.name}", chat_id=chat.id, chat=chat.name)]
        return [MessageOut(m, chat.name) for m in messages]

    async def _do_users(self) -> list[Output]:
        users = await self.client.users()
        rows = tuple(
            (
                u.login,
                _presence(u.online, u.last_seen),
                "admin" if u.is_admin else "",
                f"banned until {_soon(u.banned_until)}" if u.banned_until else "",
            )
            for u in users.users
        )
        items = tuple(
            UserRow(
                u.login, u.online, at_or_none(u.last_seen), u.is_admin, at_or_none(u.banned_until)
            )
            for u in users.users
        )
        return [UsersOut("users", ("login", "presence", "role", "ban"), rows, users=items)]

    async def _do_create(self, chat: str, encrypted: str | None = None) -> list[Output]:
        if encrypted not in (None, "--encrypted"):
            return [ErrorOut("usage", "usage: /create <chat> [--encrypted]")]
        created = await self.client.create_chat(chat, encrypted=encrypted is not None)
        self.remember(created)
        lock = "🔒 end-to-end encrypted " if created.encrypted else ""
        text = (
            f"created {lock}{created.name}; /invite <login> {created.name} or /link {created.name}"
        )
        return [ChatOut(text, change="created", chat_id=created.id, chat=created.name)]

    async def _do_invite(self, login: str, chat: str) -> list[Output]:
        target = await self.resolve(chat)
        await self.client.invite(target.id, login)
        text = f"{login} is now in {target.name}"
        return [MemberOut(text, change="added", chat_id=target.id, chat=target.name, login=login)]

    async def _do_link(self, chat: str) -> list[Output]:
        target = await self.resolve(chat)
        link = await self.client.create_link(target.id)
        return [
            LinkOut(
                f"invite link for {target.name}: {link.link} (key {link.key})",
                chat_id=target.id,
                chat=target.name,
                key=link.key,
                link=link.link,
                expires_at=at_or_none(link.expires_at),
                max_uses=link.max_uses,
            )
        ]

    async def _do_join(self, chat: str, key: str | None) -> list[Output]:
        result = await self.client.join(chat, key)
        if result.chat is not None:
            self.remember(result.chat)
        text = {
            "joined": f"joined {chat}",
            "requested": f"join request sent; the owner of {chat} decides",
            "asked_owner": f"asked the owner of {chat} for an invite",
            "already_member": f"you are already in {chat}",
        }[result.state]
        chat_id = result.chat.id if result.chat is not None else None
        return [JoinOut(text, state=result.state, chat=chat, chat_id=chat_id)]

    async def _do_approve(self, chat: str, login: str) -> list[Output]:
        target = await self.resolve(chat)
        await self.client.approve(target.id, login)
        text = f"approved: {login} is now in {target.name}"
        return [
            MemberOut(text, change="approved", chat_id=target.id, chat=target.name, login=login)
        ]

    async def _do_reject(self, chat: str, login: str) -> list[Output]:
        target = await self.resolve(chat)
        await self.client.reject(target.id, login)
        text = f"rejected {login}'s request to join {target.name}"
        return [
            MemberOut(text, change="rejected", chat_id=target.id, chat=target.name, login=login)
        ]

    async def _do_comment(self, message_id: int, text: str) -> list[Output]:
        if self.crypto is not None:  # encrypted where its chat is
            comment = await self.crypto.comment(message_id, text)
        else:
            comment = await self.client.comment(message_id, text, retries=1)
        return await self._messages([comment])

    async def _do_thread(self, message_id: int) -> list[Output]:
        thread = await self.client.thread(message_id)
        out = await self._messages([thread.root, *thread.comments])
        if not thread.comments:
            text = f"no comments under #{message_id} yet"
            out.append(EmptyOut(text, chat_id=thread.root.chat_id, message_id=thread.root.id))
        return out

    async def _do_edit(self, message_id: int, text: str) -> list[Output]:
        if self.crypto is not None:  # an encrypted message is edited with ciphertext
            message = await self.crypto.edit(message_id, text)
        else:
            message = await self.client.edit(message_id, text)
        return [EditedOut(message=message, chat=await self.chat_name(message.chat_id))]

    async def _do_edits(self, message_id: int) -> list[Output]:
        if self.crypto is not None:  # an encrypted message's versions are decrypted here
            history = await self.crypto.edits(message_id)
        else:
            history = await self.client.edits(message_id)
        try:
            chat_id: int | None = (await self.client.message(message_id)).chat_id
        except ApiError:  # an admin, outside the message's chat
            chat_id = None
        name = None if chat_id is None else await self.chat_name(chat_id)
        last = len(history.versions) - 1
        rows = tuple(
            (str(i + 1) + (" (now)" if i == last else ""), format_time(v.at),
             ("🔒 " if v.encrypted is not None else "") + v.text)
            for i, v in enumerate(history.versions)
        )  # fmt: skip
        return [
            EditsOut(f"edits of #{message_id}" + (f" in {name}" if name else ""),
                     ("version", "at", "text"), rows, chat_id=chat_id, chat=name,
                     message_id=message_id,
                     versions=tuple(history.versions))
        ]  # fmt: skip

    async def _do_delete(self, message_id: int) -> list[Output]:
        tombstone = await self.client.delete_message(message_id)
        name = await self.chat_name(tombstone.chat_id)
        text = f"deleted message #{message_id} in {name}"
        return [
            DeletedOut(
                text, chat_id=tombstone.chat_id, chat=name, message_id=message_id,
                tombstone=tombstone,
            )
        ]  # fmt: skip

    async def _do_reply(self, message_id: int, text: str) -> list[Output]:
        original = await self.client.message(message_id)
        message = await self.client.send(original.chat_id, text, reply_to=message_id, retries=1)
        return await self._messages([message])

    async def _reactions_out(self, message_id: int, reactions: Sequence[Reaction]) -> Output:
        message = await self.client.message(message_id)
        name = await self.chat_name(message.chat_id)
        text = f"reactions on #{message_id}: {reactions_text(reactions)}"
        return ReactionsOut(
            text, chat_id=message.chat_id, chat=name, message_id=message_id,
            reactions=tuple(reactions),
        )  # fmt: skip

    async def _do_react(self, message_id: int, emoji: str) -> list[Output]:
        listed = await self.client.react(message_id, emoji)
        return [await self._reactions_out(message_id, listed.reactions)]

    async def _do_unreact(self, message_id: int, emoji: str) -> list[Output]:
        listed = await self.client.unreact(message_id, emoji)
        return [await self._reactions_out(message_id, listed.reactions)]

    async def _do_pin(self, message_id: int) -> list[Output]:
        pin = await self.client.pin(message_id)
        chat_id = pin.message.chat_id
        name = await self.chat_name(chat_id)
        text = f"pinned #{message_id} in {name}; /pins {name} lists them"
        return [
            PinOut(text, chat_id=chat_id, chat=name, message_id=message_id, pinned=True,
                   by=pin.pinned_by)
        ]  # fmt: skip

    async def _do_unpin(self, message_id: int) -> list[Output]:
        message = await self.client.message(message_id)
        await self.client.unpin(message_id)
        name = await self.chat_name(message.chat_id)
        me = self.client.login_name or ""
        return [
            PinOut(f"unpinned #{message_id} in {name}", chat_id=message.chat_id, chat=name,
                   message_id=message_id, pinned=False, by=me)
        ]  # fmt: skip

    async def _do_pins(self, target: str | None) -> list[Output]:
        chat = await self.resolve(target)
        pins = (await self.client.pins(chat.id)).pins
        rows = tuple(
            (f"#{p.message.id}", p.message.author, p.pinned_by, format_time(p.pinned_at),
             _one_line(p.message))
            for p in pins
        )  # fmt: skip
        columns = ("id", "author", "pinned by", "at", "text")
        return [
            PinsOut(f"pinned in {chat.name}", columns, rows, chat_id=chat.id, chat=chat.name,
                    pins=tuple(pins))
        ]  # fmt: skip

    async def _do_search(self, query: str) -> list[Output]:
        offline = False
        try:
            results = await self.client.search(query)
        except ServerUnavailable:
            if self.cache is None:
                raise
            results = self._search_cache(query)
            offline = True
        else:
            # the server has no text of an encrypted message: this device's cache has its
            # ciphertext, decrypted here in memory (issue 14)
            results = self._with_encrypted(query, results)
        hits = results.hits
        rows = tuple(
            (f"#{h.message.id}", h.chat_name, h.message.author,
             format_time(h.message.created_at), snippet_text(h.snippet))
            for h in hits
        )  # fmt: skip
        where = " on this device (offline)" if offline else ""
        more = "; older ones follow" if results.next_before is not None else ""
        title = f"found for {query!r}{where}{more}"
        columns = ("id", "chat", "author", "at", "snippet")
        return [
            SearchOut(title, columns, rows, query=query, hits=tuple(hits), offline=offline,
                      next_before=results.next_before)
        ]  # fmt: skip

    def _search_cache(self, query: str) -> SearchResults:
        """A search over the messages this device has seen (the server is out of reach),
        the encrypted ones decrypted in memory."""
        assert self.cache is not None
        parsed = parse_search(query)
        chat_id = self._search_chat(parsed)
        most = limits.SEARCH_PAGE_DEFAULT
        reveal = self.crypto.readable_now if self.crypto is not None else None
        found = self.cache.search(parsed, chat_id=chat_id, limit=most + 1, reveal=reveal)
        hits = [self._local_hit(m, parsed) for m in found[:most]]
        more = len(found) > most
        return SearchResults(
            hits=hits, has_more=more, next_before=hits[-1].message.id if more else None
        )

    def _search_chat(self, parsed: ParsedSearch) -> int | None:
        """The chat of a search's ``in:`` among this user's chats (None: every chat)."""
        if parsed.in_chat is None:
            return None
        chat_id = self._by_name.get(parsed.in_chat)
        if chat_id is None:
            name = parsed.in_chat[:40]
            raise ApiError(ErrorCode.INVALID, f"in: you are in no chat called {name!r}")
        return chat_id

    def _local_hit(self, message: Message, parsed: ParsedSearch) -> SearchHit:
        chat = self._chats.get(message.chat_id)
        return SearchHit(
            message=message,
            chat_name=chat.name if chat is not None else "?",
            snippet=snippet(message.text, parsed),
        )

    def _with_encrypted(self, query: str, results: SearchResults) -> SearchResults:
        """The server's hits and this device's cached encrypted messages that match
        (decrypted in memory), newest first, one page."""
        if self.cache is None or self.crypto is None:
            return results
        parsed = parse_search(query)
        most = limits.SEARCH_PAGE_DEFAULT
        local = self.cache.search_encrypted(
            parsed, self.crypto.readable_now, chat_id=self._search_chat(parsed), limit=most + 1
        )
        if results.next_before is not None:
            # older than the server's page: they belong to the pages that follow
            local = [m for m in local if m.id > results.next_before]
        if not local:
            return results
        hits = sorted(
            [*results.hits, *(self._local_hit(m, parsed) for m in local)],
            key=lambda h: h.message.id,
            reverse=True,
        )
        more = len(hits) > most or results.next_before is not None
        page = hits[:most]
        return SearchResults(
            hits=page, has_more=more, next_before=page[-1].message.id if more else None
        )

    async def _do_mentions(self) -> list[Output]:
        page = await self.client.mentions()
        rows = tuple(
            (f"#{m.message.id}", m.chat_name, m.message.author, format_time(m.message.created_at),
             "unread" if m.unread else "", _one_line(m.message))
            for m in page.mentions
        )  # fmt: skip
        columns = ("id", "chat", "author", "at", "", "text")
        return [
            MentionsOut("mentions of you", columns, rows, mentions=tuple(page.mentions),
                        next_before=page.next_before)
        ]  # fmt: skip

    async def _do_mute(self, target: str, mode: str | None) -> list[Output]:
        choice = (mode or "all").lower()
        if choice not in ("all", "mentions", "off"):
            return [ErrorOut("usage", f"/mute {target} all|mentions|off, not {choice!r}")]
        chat = await self.resolve(target)
        updated = await self.client.mute(chat.id, choice)  # type: ignore[arg-type]
        self.remember(updated)
        said = {
            "all": f"muted {chat.name}: nothing there notifies you (mentions still count)",
            "mentions": f"muted {chat.name} but for mentions of you",
            "off": f"{chat.name} is not muted",
        }[choice]
        return [MuteOut(said, chat_id=chat.id, chat=chat.name, mute=updated.mute)]

    async def _do_schedule(self, when: float, target: str, text: str) -> list[Output]:
        chat = await self.resolve(target)
        item = await self.client.schedule(chat.id, text, when)
        line = f"scheduled #{item.id} to {chat.name} at {_soon(item.send_at)}"
        return [await self._scheduled_out(item, line)]

    async def _do_scheduled(self) -> list[Output]:
        items = await self.client.scheduled()
        rows = [
            (f"#{s.id}", format_time(s.send_at), await self.chat_name(s.chat_id), s.state, s.text)
            for s in items.scheduled
        ]
        listed = [
            ScheduledRow(
                s.id,
                s.chat_id,
                await self.chat_name(s.chat_id),
                s.state,
                at(s.send_at),
                s.text,
                s.message_id,
                s.failure or None,
            )
            for s in items.scheduled
        ]
        columns = ("id", "at", "chat", "state", "text")
        return [ScheduledListOut("scheduled", columns, tuple(rows), scheduled=tuple(listed))]

    async def _do_report(self, message_id: int, reason: str | None) -> list[Output]:
        """A complaint about a message's author naming the message; its text goes only
        with ``--with-text`` (an encrypted message's decrypted here: the server has
        ciphertext only, and cannot check the text against it)."""
        with_text, _, rest = (reason or "").partition(" ")
        if with_text != "--with-text":
            with_text, rest = "", reason or ""
        message = await self.client.message(message_id)
        quoted = ""
        if with_text:
            quoted = message.text
            if message.encrypted is not None:
                if self.crypto is None:
                    return [ErrorOut("crypto", "this device has no keys: the text cannot go")]
                quoted = (await self.crypto.decrypt(message)).text
        return await self._do_complain(message.author, rest.strip(), message_id, quoted)

    async def _do_cancel(self, scheduled_id: int) -> list[Output]:
        item = await self.client.cancel_scheduled(scheduled_id)
        return [await self._scheduled_out(item, f"scheduled #{item.id} {item.state}")]

    async def _do_complain(
        self,
        login: str,
        reason: str | None,
        message_id: int | None = None,
        quoted: str = "",
    ) -> list[Output]:
        result = await self.client.complain(login, reason or "", message_id, quoted)
        text = f"complaint about {login} filed ({result.distinct_complaints} users complained)"
        if quoted:
            text += "; the message's text goes with it"
        if result.banned_until is not None:
            text += f"; {login} is banned until {_soon(result.banned_until)}"
        return [
            ComplaintOut(
                text,
                complaint_id=result.complaint.id,
                login=login,
                distinct_complaints=result.distinct_complaints,
                banned_until=at_or_none(result.banned_until),
            )
        ]

    def _progress_of(self, name: str) -> Callable[[int, int | None], None] | None:
        hook = self.progress
        if hook is None:
            return None
        return lambda done, total: hook(name, done, total)

    async def _do_file(self, path: str, target: str | None) -> list[Output]:
        chat = await self.resolve(target)
        file_path = _local_path(path)
        if self.crypto is not None and await self.crypto.can_encrypt(chat):
            # encrypted with a key of its own, uploaded as opaque bytes (issue 14)
            message = await self.crypto.send(
                chat, "", files=[file_path], progress=self._progress_of(file_path.name)
            )
            return [MessageOut(message, chat.name)]
        attachment = await self.client.upload(file_path, progress=self._progress_of(file_path.name))
        message = await self.client.send(chat.id, "", attachments=[attachment.id], retries=1)
        return [MessageOut(message, chat.name)]

    async def _do_download(self, file_id: str, path: str | None) -> list[Output]:
        dest = _local_path(path) if path else self.downloads
        if dest == self.downloads:
            await aiofiles.os.makedirs(dest, exist_ok=True)
        sealed = self.crypto.known_files.get(file_id) if self.crypto is not None else None
        if self.crypto is not None and sealed is not None:
            saved = await self.crypto.download_file(
                sealed, dest, progress=self._progress_of(file_id)
            )
            text = f"saved {file_id} to {saved} (decrypted)"
            return [DownloadOut(text, file_id=file_id, path=str(saved))]
        saved = await self.client.download(file_id, dest, progress=self._progress_of(file_id))
        return [DownloadOut(f"saved {file_id} to {saved}", file_id=file_id, path=str(saved))]

    async def _do_files(self, target: str | None) -> list[Output]:
        chat = await self.resolve(target)
        files = await self.client.chat_files(chat.id)
        rows = tuple((f.id, f.name, format_size(f.size), f.mime) for f in files.files)
        title, columns = f"files in {chat.name}", ("id", "name", "size", "type")
        return [
            FilesOut(
                title, columns, rows, chat_id=chat.id, chat=chat.name, files=tuple(files.files)
            )
        ]

    async def _do_encryption(self, target: str, mode: str | None) -> list[Output]:
        crypto = self._crypto()
        chat = await self.resolve(target)
        choice = None if mode is None else mode.lower()
        if choice not in (None, "on", "off"):
            return [ErrorOut("usage", f"/encryption {target} on|off, not {mode!r}")]
        if choice is None:
            on = await crypto.can_encrypt(chat)
        else:
            on = await crypto.set_encryption(chat, choice == "on")
        if on:
            said = f"🔒 what you send in {chat.name} from this device is end-to-end encrypted"
        else:
            said = (
                f"what you send in {chat.name} from this device goes in the clear (the"
                " server can read it)"
            )
        if choice is None and crypto.encryption_choice(chat) is None and chat.kind == "direct":
            said += f"; /encryption {target} {'off' if on else 'on'} changes it"
        return [EncryptionOut(said, chat_id=chat.id, chat=chat.name, encrypted=on)]

    # --- device trust (end-to-end encryption) ---------------------------------

    def _crypto(self) -> DeviceCrypto:
        if self.crypto is None:
            raise ApiError(ErrorCode.UNAVAILABLE, "end-to-end encryption is off on this device")
        return self.crypto

    async def _do_devices(self, login: str | None) -> list[Output]:
        crypto = self._crypto()
        who = login or crypto.login
        devices = await crypto.device_list(who)
        rows = tuple(
            (
                d.device_id + (" (this one)" if d.current else ""),
                " ".join(d.ed25519[i : i + 4] for i in range(0, len(d.ed25519), 4)),
                "KEYS CHANGED" if d.key_changed else "verified" if d.verified else "unverified",
            )
            for d in devices
        )
        items = tuple(
            DeviceRow(d.device_id, d.ed25519, d.verified, d.key_changed, d.current) for d in devices
        )
        return [
            DevicesOut(
                f"devices of {who}",
                ("device", "fingerprint", "trust"),
                rows,
                login=who,
                devices=items,
            )
        ]

    # The verification commands answer with nothing of their own: what they did comes
    # back at once as a notice (see notice_output), like what the other device does.

    async def _do_verify(self, login: str, device: str | None) -> list[Output]:
        await self._crypto().verification.start(login, device)
        return []

    async def _do_confirm(self, login: str | None) -> list[Output]:
        await self._crypto().verification.confirm(login)
        return []

    async def _do_mismatch(self, login: str | None) -> list[Output]:
        await self._crypto().verification.mismatch(login)
        return []

    def _whose(self, login: str, device_id: str) -> str:
        if login == self.client.login_name:
            return f"your device {device_id}"
        return f"{login}'s device {device_id}"

    def notice_output(self, notice: TrustNotice) -> Output | None:
        """The output of something the device-trust parts of encryption said
        (:mod:`messenger_client.trust`); None for steps not worth a line."""
        match notice:
            case VerificationUpdate():
                return self._verification_out(notice)
            case NewDevice(login=login, device_id=device_id, chat_id=chat_id):
                chat = self._chat_or_none(chat_id)
                where = f"[{chat}] " if chat else ""
                if login == self.client.login_name:
                    text = f"{where}you have a new device {device_id}, not verified by this one"
                else:
                    text = f"{where}{login} has a new device {device_id}, not verified"
                text += f": /verify {login} {device_id} to compare emoji"
                return DeviceOut(text, change="new", login=login, device_id=device_id,
                                 chat_id=chat_id, chat=chat)  # fmt: skip
            case DeviceKeyChanged(login=login, device_id=device_id, chat_id=chat_id):
                chat = self._chat_or_none(chat_id)
                where = f"[{chat}] " if chat else ""
                text = (
                    f"{where}!! WARNING: the keys of {self._whose(login, device_id)} CHANGED."
                    " Nothing is encrypted to it any more: someone may be impersonating it."
                    f" Ask {login} in person; a device that was reset comes back as a new one"
                )
                return DeviceOut(text, change="key_changed", login=login, device_id=device_id,
                                 chat_id=chat_id, chat=chat)  # fmt: skip
            case KeysReceived(device_id=device_id, sessions=sessions, chat_ids=chat_ids):
                chats = ", ".join(self._chat_or_none(c) or f"chat{c}" for c in chat_ids)
                text = (
                    f"your device {device_id} shared the keys of earlier messages in {chats}"
                    f" ({sessions} session{'s' if sessions != 1 else ''}): /history shows them"
                )
                return RoomKeysOut(text, change="received", device_id=device_id,
                                   sessions=sessions, chat_ids=chat_ids)  # fmt: skip
            case KeysWithheld(device_id=device_id):
                own = self.client.login_name
                text = (
                    f"your device {device_id} shares no keys of earlier messages with this one"
                    f" until they verify each other: /verify {own} {device_id}"
                )
                return RoomKeysOut(text, change="withheld", device_id=device_id)
            case KeyRequestRefused(login=login, device_id=device_id):
                text = (
                    f"your device {device_id} asked for the keys of earlier messages; it is not"
                    f" verified, so none were sent: /verify {login} {device_id} if it is yours"
                )
                return RoomKeysOut(text, change="refused", device_id=device_id)
        return None

    def _chat_or_none(self, chat_id: int | None) -> str | None:
        if chat_id is None:
            return None
        chat = self._chats.get(chat_id)
        return chat.name if chat is not None else f"chat{chat_id}"

    def _verification_out(self, n: VerificationUpdate) -> Output | None:
        whose = self._whose(n.login, n.device_id)
        who = n.login
        texts = {
            "requested": f"asked {whose} to verify; waiting for it to accept (/mismatch {who}"
            " stops)",
            "incoming": f"{whose} asks to verify this device: /verify {who} {n.device_id}"
            f" accepts, /mismatch {who} refuses",
            "showing": "compare with {whose}: {emoji}   or the numbers {numbers}; /confirm {who}"
            " if it shows the same, /mismatch {who} if not",
            "confirmed": f"waiting for {whose} to confirm",
            "their_mac": f"{whose} says the emoji match; /confirm {who} if you see the same,"
            f" /mismatch {who} if not",
            "verified": f"{whose} is verified ✔",
            "cancelled": f"verification with {whose} cancelled: {n.reason}",
        }
        template = texts.get(n.state)
        if template is None:
            return None  # keys being exchanged: nothing to do for the person
        emoji = "  ".join(f"{e} {name}" for e, name in zip(n.emoji, n.emoji_names, strict=True))
        numbers = " ".join(str(d) for d in n.decimals)
        text = template.format(whose=whose, emoji=emoji, numbers=numbers, who=who)
        return VerificationOut(
            text,
            login=n.login,
            device_id=n.device_id,
            state=n.state,
            we_started=n.we_started,
            emoji=n.emoji,
            emoji_names=n.emoji_names,
            decimals=n.decimals,
            code=n.code or None,
            reason=n.reason or None,
        )

    async def _do_contacts(self) -> list[Output]:
        contacts = await self.client.contacts()
        rows = tuple((c.login, _presence(c.online, c.last_seen)) for c in contacts.contacts)
        items = tuple(
            ContactRow(c.login, c.online, at_or_none(c.last_seen)) for c in contacts.contacts
        )
        return [ContactsOut("contacts", ("login", "presence"), rows, contacts=items)]

    async def _do_add_contact(self, login: str) -> list[Output]:
        contact = await self.client.add_contact(login)
        text = f"{contact.login} added to your contacts"
        return [ContactOut(text, login=contact.login, added=True)]

    async def _do_del_contact(self, login: str) -> list[Output]:
        await self.client.del_contact(login)
        return [ContactOut(f"{login} removed from your contacts", login=login, added=False)]

    async def _do_help(self, command: str | None) -> list[Output]:
        if command is not None:
            spec = COMMANDS.get(command.lower())
            if spec is None:
                return [ErrorOut("usage", f"unknown command /{command}")]
            return [_help_out(spec)]
        lines: list[Output] = [_help_out(spec) for spec in COMMANDS.values()]
        hint = "text without a leading / goes to the current chat"
        lines.append(HelpOut(hint, command=None, usage="<text>"))
        return lines


def snippet_text(spans: Sequence[Span]) -> str:
    """A snippet on one line, the words searched for in ``*stars*``."""
    return "".join(f"*{s.text}*" if s.match else s.text for s in spans)


def reactions_text(reactions: Sequence[Reaction]) -> str:
    """``👍 2 🎉 1`` (or ``none``): the reactions of a message as people read them."""
    return " ".join(f"{r.emoji} {r.count}" for r in reactions) or "none"


def _one_line(message: Message) -> str:
    if message.deleted_at is not None:
        return "(message deleted)"
    line = message.text.split("\n", 1)[0]
    return line if len(line) <= 60 else line[:59] + "…"


def _help_out(spec: CommandSpec) -> HelpOut:
    return HelpOut(f"{spec.usage} -- {spec.help}", command=spec.name, usage=spec.usage)


def _session_out(session: Session, *, registered: bool) -> SessionOut:
    return SessionOut(
        login=session.user.login,
        session_id=session.session_id,
        registered=registered,
        is_admin=session.user.is_admin,
        last_event_id=session.last_event_id,
        history_on_connect=session.history_on_connect,
    )
