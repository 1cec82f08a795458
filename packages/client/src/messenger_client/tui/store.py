"""What the app knows about the account: chats, their timelines, users, contacts.

No Textual here. The store is fed by API answers and live events, mirrors what it
learns into the local cache, and answers "what changed" so the app knows what to
redraw and whom to notify. Messages are de-duplicated by id (a reconnect replays
events, a page of history overlaps what the stream delivered), so nothing shows twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec

from messenger_protocol import (
    GENERAL_CHAT_ID,
    Banned,
    Chat,
    ChatLeft,
    ChatUpdated,
    Contact,
    Event,
    Mentioned,
    Message,
    MessageCreated,
    MessageDeleted,
    MessageEdited,
    MessagePage,
    MessageUpdated,
    Presence,
    Reaction,
    ReactionChanged,
    ReactionList,
    ReadMarker,
    Reset,
    ThreadActivity,
    Typing,
    User,
    quote_of,
)

from ..cache import Cache, PendingSend
from .timeline import Timeline

__all__ = ["PAGE_SIZE", "Change", "ChatStore"]

log = logging.getLogger(__name__)

PAGE_SIZE = 200
"""Messages per page of history (from the cache or the server)."""


@dataclass
class Change:
    """What one event changed, for the UI to redraw and notify."""

    chats: bool = False
    """The chat list (names, unread counts, membership) changed."""
    users: bool = False
    """Presence or the user list changed."""
    timeline: int | None = None
    """Id of the chat whose timeline changed."""
    new_message: Message | None = None
    """A message from someone else arrived (for notifications)."""
    thread_root: int | None = None
    """A thread got a new comment (for an open thread panel)."""
    comment: Message | None = None
    new_comment: Message | None = None
    """Someone commented in a thread the user takes part in (for notifications)."""
    reset: bool = False
    """The server asked for a full refetch."""
    notice: str = ""
    """A line to show the user (ban, removed from a chat)."""
    typing: int | None = None
    """Id of the chat whose typists changed (someone began, or their message came)."""


@dataclass
class ChatStore:
    """The account's state as the UI shows it; see the module docstring."""

    me: str
    cache: Cache | None = None
    chats: dict[int, Chat] = field(default_factory=dict)
    timelines: dict[int, Timeline] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    threads: dict[int, Timeline] = field(default_factory=dict)
    """Open or recently opened threads: root id -> root and comments."""
    encrypted: set[int] = field(default_factory=set)
    """Chats known to be end-to-end encrypted (issue 14)."""
    typing: dict[int, dict[str, float]] = field(default_factory=dict)
    """Who is typing where: chat id -> login -> when their notice expires (ephemeral)."""
    focused: Callable[[int], bool] = lambda chat_id: False
    """Whether the user is looking at the bottom of a chat (its messages count as read)."""
    reveal: Callable[[Message], Message] = lambda message: message
    """An end-to-end encrypted message as shown (decrypted in memory); every message
    the store takes in goes through it, and the cache gets it back as ciphertext."""
    _edited_from: dict[str, Message] = field(default_factory=dict)
    """Client id of a queued edit -> the message as it was (shown again if refused)."""
    _learned: set[int] | None = None
    """Chats events brought while the chat list is on its way (None: it is not)."""
    _arrived: list[tuple[Message, bool]] = field(default_factory=list)
    """Messages events brought while the chat list is on its way, and whether each
    counted as unread."""
    _mentioned: list[Message] = field(default_factory=list)
    """Mentions of me events brought while the chat list is on its way (counted in the
    @N badge)."""
    _answered: dict[int, int] = field(default_factory=dict)
    """Chat id -> the newest message the server's last chat list counted in (its
    ``last_message_id``): a mention event for a message up to it is in the answer's count."""
    _saved_encrypted: frozenset[int] = frozenset()
    """The encrypted chats the cache holds (written when :meth:`encrypted_chats` differs)."""
    queued: dict[int, list[PendingSend]] = field(default_factory=dict)
    """Message id -> its edits and reaction changes in the outbox, in order (also from an
    earlier run): every message the store shows has them applied, and its timeline marks
    it as saving until the server has them all."""

    # --- loading ------------------------------------------------------------

    def load_cached(self) -> None:
        """Fill the store from the local cache (instant, works offline)."""
        if self.cache is None:
            return
        self.chats = {c.id: c for c in self.cache.chats()}
        self.encrypted |= {c.id for c in self.chats.values() if c.encrypted}
        self.encrypted |= self.cache.encrypted_chats() & self.chats.keys()
        self._saved_encrypted = frozenset(self.encrypted)
        self.users = {u.login: u for u in self.cache.users()}
        self.contacts = {c.login: c for c in self.cache.contacts()}
        self.queued = {}
        for pending in self.cache.pending():
            if pending.act != "send" and pending.target is not None:
                self.queued.setdefault(pending.target, []).append(pending)
        if GENERAL_CHAT_ID not in self.chats:
            self.chats[GENERAL_CHAT_ID] = Chat(id=GENERAL_CHAT_ID, kind="general", name="general")

    def timeline(self, chat_id: int) -> Timeline:
        """The timeline of a chat, starting with its cached newest page and pending sends."""
        timeline = self.timelines.get(chat_id)
        if timeline is None:
            cached = self.cache.messages(chat_id, limit=PAGE_SIZE) if self.cache else []
            timeline = Timeline(chat_id, self._shown(cached), saving=self.queued)
            if self.cache is not None:
                for pending in self.cache.pending():
                    if (
                        pending.act == "send"
                        and pending.chat_id == chat_id
                        and pending.thread_root is None
                    ):
                        timeline.add_pending(pending_message(pending, self.me))
            self.timelines[chat_id] = timeline
        return timeline

    def older_from_cache(self, chat_id: int) -> list[Message]:
        """A page of cached history older than what the timeline holds."""
        timeline = self.timeline(chat_id)
        if self.cache is None:
            return []
        return self._shown(self.cache.messages(chat_id, before=timeline.oldest_id, limit=PAGE_SIZE))

    def refreshing_chats(self) -> None:
        """The chat list is asked of the server: chats that events bring until it answers
        are newer than its answer (:meth:`set_chats` keeps them)."""
        self._learned, self._arrived, self._mentioned = set(), [], []

    def set_chats(self, chats: Iterable[Chat]) -> None:
        """The server's chat list replaces ours (but for chats events brought after it
        was asked for: a private chat started by someone just then stayed out of the list
        until the next reconnect; and messages they brought count once in the badges)."""
        chats = list(chats)
        self._answered = {c.id: c.last_message_id for c in chats}
        fresh = [self._with_newer_messages(c) for c in chats]
        answered = {c.id for c in fresh}
        learned, self._learned, self._arrived = self._learned or set(), None, []
        self._mentioned = []
        fresh += [self.chats[i] for i in sorted(learned) if i in self.chats and i not in answered]
        self.chats = {c.id: c for c in fresh}
        self.encrypted |= {c.id for c in fresh if c.encrypted}
        for chat_id in list(self.timelines):
            if chat_id not in self.chats:
                del self.timelines[chat_id]
        if self.cache is not None:
            self.cache.replace_chats(fresh)

    def _with_newer_messages(self, chat: Chat) -> Chat:
        """``chat`` as the server answered it, plus the messages live events brought while
        the answer was on its way and it was read before (the stream can be faster than
        the answer): the badge is the same whichever came first."""
        if chat.last_message_id == 0 and chat.last_message_at is not None:
            return chat  # a server older than this client does not say what it counted
        newer = [(m, c) for m, c in self._arrived
                 if m.chat_id == chat.id and m.id > chat.last_message_id]  # fmt: skip
        mentioned = sum(
            1 for m in self._mentioned if m.chat_id == chat.id and m.id > chat.last_message_id
        )
        if mentioned:
            chat = msgspec.structs.replace(chat, mentions=chat.mentions + mentioned)
        if not newer:
            return chat
        return msgspec.structs.replace(
            chat,
            unread=chat.unread + sum(counted for _, counted in newer),
            last_message_id=max(m.id for m, _ in newer),
            last_message_at=max(m.created_at for m, _ in newer),
        )

    def set_users(self, users: Iterable[User]) -> None:
        """The server's user list replaces ours."""
        fresh = list(users)
        self.users = {u.login: u for u in fresh}
        if self.cache is not None:
            self.cache.replace_users(fresh)

    def set_contacts(self, contacts: Iterable[Contact]) -> None:
        """The server's contact list replaces ours."""
        fresh = list(contacts)
        self.contacts = {c.login: c for c in fresh}
        if self.cache is not None:
            self.cache.replace_contacts(fresh)

    def upsert_chat(self, chat: Chat) -> None:
        """Add or update one chat."""
        self.chats[chat.id] = chat
        if self._learned is not None:
            self._learned.add(chat.id)
        if chat.encrypted:
            self.encrypted.add(chat.id)
        if self.cache is not None:
            self.cache.save_chat(chat)

    def merge_latest(self, chat_id: int, page: MessagePage) -> Timeline:
        """Merge the newest page of a chat from the server into its timeline.

        If the page does not reach back to what the timeline holds (the cache is
        older than the page), the timeline restarts from the page so no gap shows;
        older messages then load page by page again. Returns the (maybe new) timeline.
        """
        timeline = self.timeline(chat_id)
        self._save(page.messages)
        if timeline.has_newer:
            return timeline  # a window into the past: End goes back to the newest
        messages = self._shown(page.messages)
        newest = timeline.newest_id
        gap = bool(messages and newest is not None and page.has_more and messages[0].id > newest)
        if gap:
            fresh = Timeline(chat_id, list(messages), has_more=True, saving=self.queued)
            fresh.pending = timeline.pending
            fresh.failed = timeline.failed
            _keep_newer(timeline, fresh)
            self.timelines[chat_id] = fresh
            return fresh
        for message in messages:
            timeline.add(message)
        if not page.has_more and not messages:
            timeline.has_more = False
        return timeline

    def jump(self, chat_id: int, page: MessagePage, *, after: int | None) -> Timeline:
        """Start a chat's timeline again from one page: the page after message ``after``
        (0: the chat's first page; newer ones follow as the view scrolls down), or with
        ``after=None`` its newest page."""
        if after is not None:
            return self._restart(chat_id, page.messages, has_more=after > 0, newer=page.has_more)
        return self._restart(chat_id, page.messages, has_more=page.has_more, newer=False)

    def around(self, chat_id: int, older: MessagePage, newer: MessagePage) -> Timeline:
        """Start a chat's timeline again around a message: ``older``, the page up to and
        with it, and ``newer``, the page after it (a search hit, a quote's original)."""
        messages = [*older.messages, *newer.messages]
        return self._restart(chat_id, messages, has_more=older.has_more, newer=newer.has_more)

    def _restart(
        self, chat_id: int, messages: list[Message], *, has_more: bool, newer: bool
    ) -> Timeline:
        old = self.timeline(chat_id)
        self._save(messages)
        fresh = Timeline(chat_id, self._shown(messages), has_more=has_more, saving=self.queued)
        fresh.has_newer = newer
        fresh.pending, fresh.failed = old.pending, old.failed
        if not fresh.has_newer:
            _keep_newer(old, fresh)
        old.observer = None
        self.timelines[chat_id] = fresh
        return fresh

    def add_newer(self, chat_id: int, page: MessagePage) -> Timeline:
        """Add the page after a window's newest message; the window ends when it is the
        chat's newest page."""
        timeline = self.timeline(chat_id)
        self._save(page.messages)
        for message in self._shown(page.messages):
            timeline.add(message)
        timeline.has_newer = page.has_more
        return timeline

    def add_older(
        self, chat_id: int, messages: list[Message], has_more: bool, *, from_cache: bool = False
    ) -> int:
        """Add a page of older history: from the server (saved to the cache) or
        ``from_cache`` (written back, it was 90 % of a page's cost when scrolling offline)."""
        if not from_cache:
            self._save(messages)
        return self.timeline(chat_id).add_older(self._shown(messages), has_more)

    def _shown(self, messages: list[Message]) -> list[Message]:
        shown = [self.reveal(m) if m.encrypted is not None else m for m in messages]
        return [self._queued_on(m) for m in shown] if self.queued else shown

    def _queued_on(self, message: Message) -> Message:
        """``message`` with the edits and reaction changes of the outbox applied."""
        for pending in self.queued.get(message.id, ()):
            if pending.act == "edit":
                message = msgspec.structs.replace(
                    message, text=pending.text, edited_at=message.edited_at or pending.created_at
                )
            else:
                reactions = toggled(message.reactions, pending.text, self.me, pending.act)
                message = msgspec.structs.replace(message, reactions=reactions)
        return message

    def _unqueue(self, pending: PendingSend) -> None:
        if pending.target is None:
            return
        left = [p for p in self.queued.get(pending.target, ()) if p.client_id != pending.client_id]
        if left:
            self.queued[pending.target] = left
        else:
            self.queued.pop(pending.target, None)

    def _save(self, messages: list[Message]) -> None:
        if self.cache is not None and messages:
            self.cache.save_messages([_sealed(m) for m in messages])

    def reveal_again(self) -> set[int]:
        """New keys came: encrypted messages shown without their text are shown again;
        the chats (negative: thread roots) whose views changed."""
        changed: set[int] = set()
        for timeline in (*self.timelines.values(), *self.threads.values()):
            for message in list(timeline.messages):
                if message.encrypted is None:
                    continue
                again = self.reveal(message)
                if again.text != message.text and timeline.update(again):
                    changed.add(timeline.chat_id)
        return changed

    # --- sending --------------------------------------------------------------

    def add_pending(self, pending: PendingSend) -> Message:
        """Show and keep a send until the server acknowledges it."""
        if self.cache is not None:
            self.cache.add_pending(pending)
        replied = self.find(pending.reply_to) if pending.reply_to is not None else None
        message = pending_message(pending, self.me, replied)
        timeline = self._timeline_of(pending)
        if timeline is not None:
            timeline.add_pending(message)
        return message

    def _timeline_of(self, pending: PendingSend) -> Timeline | None:
        if pending.thread_root is None:
            return self.timeline(pending.chat_id)
        return self.threads.get(pending.thread_root)

    def add_annotation(self, pending: PendingSend) -> None:
        """Keep an edit or a reaction change until the server takes it, and show it at
        once (the server's answer, or its event, then shows what it kept)."""
        if self.cache is not None:
            self.cache.add_pending(pending)
        if pending.target is None:
            return
        self.queued.setdefault(pending.target, []).append(pending)
        shown = self.find(pending.target)
        if shown is None:
            return
        if pending.act == "edit":
            self._edited_from.setdefault(pending.client_id, shown)
        self._replace(shown, Change())

    def annotated(self, pending: PendingSend, result: Message | ReactionList) -> None:
        """The server took an edit or a reaction change: show what it answered."""
        if self.cache is not None:
            self.cache.remove_pending(pending.client_id)
        self._unqueue(pending)
        self._edited_from.pop(pending.client_id, None)
        if isinstance(result, Message):
            self._save([result])
            self._replace(self.reveal(result), Change())
            return
        cached = self.cache.message(result.message_id) if self.cache is not None else None
        if cached is not None:  # the server's text, not a queued edit's
            self._save([msgspec.structs.replace(cached, reactions=result.reactions)])
        shown = self.find(result.message_id)
        if shown is not None:
            self._replace(msgspec.structs.replace(shown, reactions=result.reactions), Change())

    def _annotation_refused(self, pending: PendingSend) -> None:
        """A refused edit shows the text it had; a refused reaction change is undone."""
        self._unqueue(pending)
        before = self._edited_from.pop(pending.client_id, None)
        shown = self.find(pending.target) if pending.target is not None else None
        if shown is None:
            return
        if pending.act == "edit":
            if before is None and self.cache is not None:  # queued in an earlier run
                cached = self.cache.message(shown.id)
                before = self.reveal(cached) if cached is not None else None
            if before is not None:
                edited = (before.text, before.edited_at)
                self._replace(
                    msgspec.structs.replace(shown, text=edited[0], edited_at=edited[1]), Change()
                )
            return
        undo = "unreact" if pending.act == "react" else "react"
        reactions = toggled(shown.reactions, pending.text, self.me, undo)
        self._replace(msgspec.structs.replace(shown, reactions=reactions), Change())

    def sent(self, pending: PendingSend, message: Message) -> None:
        """The server acknowledged a send."""
        if self.cache is not None:
            self.cache.remove_pending(pending.client_id)
        if message.thread_root is None:
            self._add_message(message)
        else:
            self._add_comment(message)

    def send_failed(self, pending: PendingSend, retrying: bool) -> None:
        """A send failed: kept and marked (``retrying``) or dropped for good."""
        if pending.act != "send":
            # an edit or a reaction stays shown while it waits; refused, it is undone
            if not retrying:
                if self.cache is not None:
                    self.cache.remove_pending(pending.client_id)
                self._annotation_refused(pending)
            return
        timeline = self._timeline_of(pending)
        if retrying:
            if timeline is not None:
                timeline.set_failed(pending.client_id, True)
            return
        if self.cache is not None:
            self.cache.remove_pending(pending.client_id)
        if timeline is not None:
            timeline._drop_pending(pending.client_id)

    def retrying(self, pending: PendingSend) -> None:
        """A failed send is being tried again."""
        if pending.act != "send":
            return
        timeline = self._timeline_of(pending)
        if timeline is not None:
            timeline.set_failed(pending.client_id, False)

    def outbox(self) -> list[PendingSend]:
        """Sends not acknowledged yet (also from an earlier run)."""
        return self.cache.pending() if self.cache is not None else []

    # --- events -----------------------------------------------------------------

    def _add_message(self, message: Message) -> bool:
        """Keep a message; False if it was known already (a replayed event)."""
        message = self.reveal(message)
        timeline = self.timelines.get(message.chat_id)
        if timeline is None or timeline.has_newer:
            # not loaded, or newer than a window into the past: kept for later
            known = self.cache is not None and self.cache.has_message(message.id)
            if timeline is not None and message.client_id:
                timeline._drop_pending(message.client_id)
            self._save([message])
            return not known
        self._save([message])
        return timeline.add(message)

    def _add_comment(self, comment: Message) -> bool:
        comment = self.reveal(comment)
        self._save([comment])
        thread = self.threads.get(comment.thread_root or 0)
        return thread.add(comment) if thread is not None else True

    def thread(self, root: Message) -> Timeline:
        """The timeline of a thread: the root message and its cached comments."""
        thread = self.threads.get(root.id)
        if thread is None:
            comments = self.cache.comments(root.id) if self.cache is not None else []
            # A negative "chat id" keeps a thread's scroll memory apart from chats'.
            thread = Timeline(
                -root.id, self._shown([root, *comments]), has_more=False, saving=self.queued
            )
            if self.cache is not None:
                for pending in self.cache.pending():
                    if pending.act == "send" and pending.thread_root == root.id:
                        thread.add_pending(pending_message(pending, self.me))
            self.threads[root.id] = thread
        return thread

    def merge_thread(self, root: Message, comments: list[Message]) -> Timeline:
        """The server's view of a thread joins what is shown (de-duplicated by id)."""
        thread = self.thread(root)
        self._save([root, *comments])
        thread.add(self.reveal(root))
        for comment in self._shown(comments):
            thread.add(comment)
        return thread

    def read_up_to(self, chat_id: int, up_to: int) -> None:
        """The user saw a chat's messages up to ``up_to``: its badge counts what is left."""
        chat = self.chats.get(chat_id)
        if chat is None or (up_to <= chat.last_read and not chat.unread):
            return
        timeline = self.timelines.get(chat_id)
        left = 0
        if timeline is not None:
            left = sum(1 for m in timeline.messages if m.id > up_to and m.author != self.me)
        unread = min(left, chat.unread)
        last_read = max(up_to, chat.last_read)
        if (unread, last_read) != (chat.unread, chat.last_read):
            self.upsert_chat(
                msgspec.structs.replace(
                    chat, unread=unread, last_read=last_read, mentions=min(chat.mentions, unread)
                )
            )

    def apply(self, event: Event) -> Change:
        """Apply one live event; returns what changed."""
        change = Change()
        if isinstance(event, MessageCreated | MessageUpdated | MessageEdited):
            event = msgspec.structs.replace(event, message=self.reveal(event.message))
        elif isinstance(event, ThreadActivity):
            event = msgspec.structs.replace(event, comment=self.reveal(event.comment))
        match event:
            case MessageCreated(message=message) if message.thread_root is not None:
                self._add_comment(message)
                change.thread_root, change.comment = message.thread_root, message
            case MessageCreated(message=message):
                fresh = self._add_message(message)
                change.timeline = message.chat_id
                if self.typing.get(message.chat_id, {}).pop(message.author, None) is not None:
                    change.typing = message.chat_id  # their message ends their typing
                chat = self.chats.get(message.chat_id)
                if chat is not None:
                    unread = chat.unread
                    counts = fresh and message.id > chat.last_message_id  # else answered
                    counts = counts and message.author != self.me and not self.focused(chat.id)
                    if counts:
                        unread += 1
                    if self._learned is not None:
                        self._arrived.append((message, counts))
                    self.upsert_chat(
                        msgspec.structs.replace(
                            chat,
                            unread=unread,
                            last_message_at=message.created_at,
                            last_message_id=max(message.id, chat.last_message_id),
                        )
                    )
                    change.chats = True
                if fresh and message.author != self.me:
                    change.new_message = message
            case Mentioned(chat_id=chat_id, message=message):
                # the chat list's @N badge, muted or not (the server counts it the same);
                # once, whether the chat list's answer or the event comes first
                chat = self.chats.get(chat_id)
                if (
                    chat is not None
                    and message.author != self.me
                    and message.id > chat.last_read
                    and message.id > self._answered.get(chat_id, 0)
                    and not self.focused(chat_id)
                ):
                    if self._learned is not None:
                        self._mentioned.append(message)
                    self.upsert_chat(msgspec.structs.replace(chat, mentions=chat.mentions + 1))
                    change.chats = True
            case MessageUpdated(message=message):
                self._save([message])
                self._replace(message, change)
            case MessageEdited(message=message):
                if self.cache is not None:
                    self.cache.apply(msgspec.structs.replace(event, message=_sealed(message)))
                self._replace(message, change)
            case MessageDeleted(tombstone=Message() as tombstone):
                # deleted by its author or an admin: it stays, as a tombstone
                if self.cache is not None:
                    self.cache.apply(event)
                self._replace(tombstone, change)
            case MessageDeleted(chat_id=chat_id, message_id=message_id):
                # disappeared: it goes from view and from the cache
                if self.cache is not None:
                    self.cache.delete_message(message_id)
                timeline = self.timelines.get(chat_id)
                if timeline is not None and timeline.remove(message_id):
                    change.timeline = chat_id
            case ReactionChanged(message_id=message_id, reactions=reactions):
                if self.cache is not None:
                    self.cache.apply(event)
                shown = self.find(message_id)
                if shown is not None:
                    self._replace(msgspec.structs.replace(shown, reactions=reactions), change)
            case ChatUpdated(chat=chat):
                self.upsert_chat(chat)
                change.chats = True
            case ChatLeft(chat_id=chat_id, reason=reason):
                chat = self.chats.pop(chat_id, None)
                self.timelines.pop(chat_id, None)
                if self.cache is not None:
                    self.cache.remove_chat(chat_id)
                change.chats = True
                if chat is not None:
                    change.notice = f"You left {chat.name}" + (f": {reason}" if reason else "")
            case ReadMarker(chat_id=chat_id, up_to=up_to, thread_root=None):
                chat = self.chats.get(chat_id)
                if chat is not None:
                    timeline = self.timelines.get(chat_id)
                    unread = 0
                    if timeline is not None:
                        unread = sum(
                            1 for m in timeline.messages if m.id > up_to and m.author != self.me
                        )
                    unread = min(unread, chat.unread)
                    self.upsert_chat(
                        msgspec.structs.replace(
                            chat,
                            unread=unread,
                            last_read=up_to,
                            mentions=min(chat.mentions, unread),
                        )
                    )
                    change.chats = True
            case ThreadActivity(root_id=root_id, comment=comment):
                fresh = self._add_comment(comment)
                change.thread_root, change.comment = root_id, comment
                if fresh and comment.author != self.me:
                    change.new_comment = comment
            case Presence(login=login, online=online, last_seen=last_seen):
                user = self.users.get(login) or User(login=login)
                self.users[login] = msgspec.structs.replace(
                    user, online=online, last_seen=last_seen or user.last_seen
                )
                contact = self.contacts.get(login)
                if contact is not None:
                    self.contacts[login] = msgspec.structs.replace(
                        contact, online=online, last_seen=last_seen or contact.last_seen
                    )
                change.users = True
            case Banned(login=login, until=until, reason=reason):
                banned = self.users.get(login)
                if banned is not None:
                    self.users[login] = msgspec.structs.replace(banned, banned_until=until)
                change.users = True
                if login == self.me:
                    change.notice = (
                        "You can send again" if until is None else "You are banned from sending"
                    ) + (f": {reason}" if reason else "")
            case Typing(chat_id=chat_id, login=login, expires_at=expires_at):
                if login != self.me:
                    self.typing.setdefault(chat_id, {})[login] = expires_at
                    change.typing = chat_id
            case Reset():
                if self.cache is not None:
                    self.cache.clear()
                self.timelines.clear()
                change.reset = True
            case _:
                pass
        return change

    def find(self, message_id: int) -> Message | None:
        """A message or comment as it is shown now (None if no view holds it)."""
        for timeline in (*self.timelines.values(), *self.threads.values()):
            index = timeline.index_of(message_id)
            if index is not None:
                return timeline.messages[index]
        return None

    def _replace(self, message: Message, change: Change) -> None:
        """A known message changed (edit, tombstone, reactions, comment count): every
        view that holds it shows it as it is now (with what the outbox holds for it)."""
        if self.queued:
            message = self._queued_on(message)
        thread = self.threads.get(message.id)
        if thread is not None:
            thread.update(message)  # the root of its own thread
        if message.thread_root is not None:
            comments = self.threads.get(message.thread_root)
            if comments is not None and comments.update(message):
                change.thread_root = message.thread_root
            return
        timeline = self.timelines.get(message.chat_id)
        if timeline is not None and timeline.update(message):
            change.timeline = message.chat_id
        if timeline is not None:
            self._requote(timeline, message)

    def _requote(self, timeline: Timeline, original: Message) -> None:
        """Replies to ``original`` quote it as it is now (edited, or deleted)."""
        quote = quote_of(
            original.id, original.author, original.text, original.deleted_at is not None
        )
        stale = [
            m for m in timeline.messages
            if m.reply_to is not None and m.reply_to.id == original.id and m.reply_to != quote
        ]  # fmt: skip
        for reply in stale:
            timeline.update(msgspec.structs.replace(reply, reply_to=quote))
        self._save([msgspec.structs.replace(reply, reply_to=quote) for reply in stale])

    def direct_chat(self, login: str) -> Chat | None:
        """The private conversation with ``login``, if there is one."""
        for chat in self.chats.values():
            if chat.kind == "direct" and chat.peer == login:
                return chat
        return None

    def encrypted_chats(self) -> frozenset[int]:
        """The chats known to be end-to-end encrypted, as the chat list and titles show
        them with a lock; what is new of them is kept in the cache, so a restart while
        the server is away shows the locks too."""
        now = frozenset(self.encrypted)
        if now != self._saved_encrypted and self.cache is not None:
            self.cache.save_encrypted_chats(now)
            self._saved_encrypted = now
        return now

    def sorted_chats(self) -> list[Chat]:
        """Chats in list order: general first, then groups and directs by name."""
        order = {"general": 0, "group": 1, "direct": 2}
        return sorted(self.chats.values(), key=lambda c: (order.get(c.kind, 3), c.name.lower()))

    def logins(self) -> list[str]:
        """Every known login (for completion)."""
        return sorted(set(self.users) | set(self.contacts))


def _sealed(message: Message) -> Message:
    """What the cache keeps of a message: an encrypted one as the server sent it (no
    plaintext, not even its reply's quote, ever reaches the disk)."""
    if message.encrypted is None:
        return message
    quote = message.reply_to
    if quote is not None and quote.text:
        quote = msgspec.structs.replace(quote, text="")
    files = [
        msgspec.structs.replace(a, name="encrypted", mime="application/octet-stream", sha256="")
        for a in message.attachments
    ]
    return msgspec.structs.replace(message, text="", reply_to=quote, attachments=files)


def _keep_newer(old: Timeline, fresh: Timeline) -> None:
    """Messages that arrived live while ``fresh``'s page was on its way stay shown: a
    timeline restarted from that page keeps what the old one held beyond it."""
    newest = fresh.newest_id or 0
    for message in old.messages:
        if message.id > newest:
            fresh.add(message)


def toggled(reactions: list[Reaction], emoji: str, me: str, act: str) -> list[Reaction]:
    """``reactions`` with ``me``'s ``emoji`` added (``act`` "react") or taken back."""
    out: list[Reaction] = []
    found = False
    for reaction in reactions:
        if reaction.emoji != emoji:
            out.append(reaction)
            continue
        found = True
        users = [u for u in reaction.users if u != me]
        if act == "react":
            users.append(me)
        if users:
            out.append(Reaction(emoji, reaction.count + len(users) - len(reaction.users), users))
    if not found and act == "react":
        out.append(Reaction(emoji, 1, [me]))
    return out


def pending_message(pending: PendingSend, me: str, replied: Message | None = None) -> Message:
    """How a pending send shows in a timeline (id 0 until the server gives one), with
    the quote of the message it answers if that one is known."""
    quote = None
    if replied is not None:
        quote = quote_of(replied.id, replied.author, replied.text, replied.deleted_at is not None)
    return Message(
        reply_to=quote,
        id=0,
        chat_id=pending.chat_id,
        author=me,
        text=pending.text,
        created_at=pending.created_at,
        client_id=pending.client_id,
        thread_root=pending.thread_root,
        attachments=list(pending.attachments),
    )
