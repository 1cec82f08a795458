"""The main screen: chat list, message view with its composer, people panel."""

from __future__ import annotations

from datetime import tzinfo
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Label, Static, TextArea

from messenger_protocol import Chat, Message, format_count

from ... import commands as slash
from .. import host
from ..messages import (
    BanChanged,
    ChatsChanged,
    PeopleChanged,
    RateLimited,
    ReceiptArrived,
    SeenByChanged,
    ThreadChanged,
    TrustChanged,
    TypingChanged,
)
from ..robust import Guarded
from ..timeline import Timeline
from ..widgets.annotate import ConfirmDelete, MessageMenu, ReactionPicker
from ..widgets.chat_list import ChatList
from ..widgets.composer import Completer, Composer, Intent
from ..widgets.footer import KeysFooter
from ..widgets.header import ConnectionBar
from ..widgets.message_view import Act, MessageView
from ..widgets.moderation import ModerationBar
from ..widgets.typing_line import TypingLine
from ..widgets.users_panel import UsersPanel

__all__ = ["MainScreen"]


# Many terminals send Alt+digit as ESC + digit, which Textual reads as the character
# macOS types for Option+digit (see textual._ansi_sequences); accept those too.
# Remap ``chats.goto_N`` in keymap.toml if you type these characters in messages.
_ALT_DIGIT_ALIASES = (
    "inverted_exclamation_mark", "trade_mark_sign", "pound_sign", "cent_sign", "infinity",
    "section_sign", "pilcrow_sign", "bullet", "ª",
)  # fmt: skip


def _goto(n: int) -> Binding:
    return Binding(
        f"alt+{n},{_ALT_DIGIT_ALIASES[n - 1]}", f"goto_chat({n})", f"Chat {n}", show=False,
        id=f"chats.goto_{n}", priority=True,
    )  # fmt: skip


class MainScreen(Guarded, Screen[None]):
    """Where the user spends their time. The app feeds it; it posts what the user does."""

    AUTO_FOCUS = "#composer"
    """Focus starts in the composer (Textual's default is the first focusable widget, the
    chat list: the footer's keys were those of the list for its first frames)."""

    # Priority: these must work while the composer (a TextArea, which has its own
    # Ctrl+K editing key) has focus, which is most of the time.
    BINDINGS: ClassVar[list[BindingType]] = [
        # F1 is the app's; named here too so the footer shows it first (never cut off).
        # Alt+Up/Down (previous/next chat) are not in the footer, to leave it room: F1
        # and the palette list them.
        Binding("f1", "app.help_screen", "Help", id="app.help",
                tooltip="Every command and key, searchable (also /help)"),
        Binding("alt+up", "app.previous_chat", "Prev chat", id="chats.previous", priority=True,
                tooltip="Open the chat above in the list", show=False),
        Binding("alt+down", "app.next_chat", "Next chat", id="chats.next", priority=True,
                tooltip="Open the chat below in the list", show=False),
        Binding("alt+a", "app.next_active", "Next active", id="chats.next_active", priority=True,
                tooltip="Jump to the next chat with unread messages"),
        Binding("ctrl+k", "app.switch_chat", "Switch", id="chats.switcher", priority=True,
                tooltip="Find a chat or a person by name"),
        Binding("ctrl+o", "toggle_users", "People", id="users.toggle", priority=True,
                tooltip="Show who is online; open a private chat"),
        Binding("f2", "app.status", "Status", id="app.status", priority=True,
                tooltip="Connections, counts, chats and login history"),
        Binding("ctrl+t", "open_thread", "Thread", id="messages.thread", priority=True,
                tooltip="Open the comments of the selected message"),
        Binding("ctrl+u", "app.attach", "Attach", id="files.attach", priority=True, show=False,
                tooltip="Pick a file (or paste a path) and send it to this chat"),
        Binding("f4", "app.files", "Files", id="files.open", priority=True, show=False,
                tooltip="Download, open or preview the files of the selected message"),
        Binding("ctrl+f", "search", "Search", id="messages.find", priority=True,
                tooltip="Search messages across chats; Enter jumps to one"),
        # Not priority: a composer types "/" (it begins a command); any other focus (a
        # list, the messages) leaves it to this binding
        Binding("slash", "search", "Search", id="messages.find_slash", show=False,
                tooltip="Search too, outside a composer (in one, / begins a command)"),
        Binding("f6", "verify", "Verify", id="devices.verify", priority=True, show=False,
                tooltip="Answer a verification request, or verify this chat's devices"),
        Binding("alt+m", "mentions", "Mentions", id="messages.mentions", priority=True,
                show=False, tooltip="Messages that mention you, across chats"),
        Binding("pageup", "scroll_messages(-1)", "Page up", show=False,
                id="messages.scroll_up", priority=True),
        Binding("pagedown", "scroll_messages(1)", "Page down", show=False,
                id="messages.scroll_down", priority=True),
        Binding("escape", "back", "Back", show=False, id="app.back"),
        *(_goto(n) for n in range(1, 10)),
    ]  # fmt: skip

    def __init__(self, me: str, completer: Completer, tz: tzinfo | None = None) -> None:
        super().__init__()
        self.me = me
        self._completer = completer
        self._tz = tz
        self.current_chat: int | None = None
        self._chat: Chat | None = None
        self.encrypted: frozenset[int] = frozenset()
        """Chats that are end-to-end encrypted (a lock in the list and the title)."""
        self.verified: frozenset[str] = frozenset()
        """Peers every device of whom this device verified (a mark in the title)."""
        self.trust_lines: dict[int | None, str] = {}
        """Chat id -> the device notice above its timeline (None: above every chat's)."""
        self.trust_line = Static("", id="trust-line")
        """A new device, changed keys, a verification request (a click or F6 acts)."""
        # Kept as attributes: the app's workers may still call in while the screen
        # is being torn down, when queries would find nothing.
        self.bar = ConnectionBar(id="connection")
        self.chat_list = ChatList(id="chats")
        self.chat_title = Static("", id="chat-title", classes="pane-title")
        self.view = MessageView(me=me, tz=tz, id="messages")
        self.view.badge_below = True  # the unseen badge sits under it
        self.unseen_badge = Static("", id="unseen")
        self.moderation = ModerationBar(id="moderation")
        self.intent_bar = Static("", id="intent")
        self.typing_line = TypingLine(id="typing")
        self.seen_line = Static("", id="seen")
        """Who has read the selected message of the user's (shown while it is selected)."""
        self._seen_of: int | None = None
        self.thread_seen_line = Static("", id="thread-seen")
        """Who has read the selected message of the user's in the thread panel."""
        self._thread_seen_of: int | None = None
        self._seen: dict[bool, list[str]] = {}
        """In the thread panel (True) or the chat: who has seen the line's message."""
        self.composer = Composer(completer, id="composer")
        self.composer.reserved_keys = set(_ALT_DIGIT_ALIASES)
        self.users_panel = UsersPanel(me, id="users")
        self.people = Vertical(Label("People", classes="pane-title"), self.users_panel, id="people")
        self.thread_root: Message | None = None
        self.thread_title = Static("", id="thread-title", classes="pane-title")
        self.thread_view = MessageView(me=me, tz=tz, id="thread-messages")
        self.thread_composer = Composer(
            completer, id="thread-composer", placeholder="Comment  (Enter sends, Esc closes)"
        )
        self.composer.edit_last = lambda: self.edit_last(in_thread=False)
        self.thread_composer.edit_last = lambda: self.edit_last(in_thread=True)
        self.view.can_act = lambda message, act: self.can_act(message, act, in_thread=False)
        self.thread_view.can_act = lambda message, act: self.can_act(message, act, in_thread=True)
        self.thread_panel = Vertical(
            self.thread_title,
            self.thread_view,
            self.thread_seen_line,
            self.thread_composer,
            id="thread",
        )

    def compose(self) -> ComposeResult:
        """Layout: bar, three columns, footer."""
        yield self.bar
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Label("Chats", classes="pane-title")
                yield self.chat_list
            with Vertical(id="chat"):
                yield self.chat_title
                yield self.trust_line
                yield self.view
                yield self.unseen_badge
                yield self.typing_line
                yield self.seen_line
                yield self.moderation
                yield self.intent_bar
                yield self.composer
            yield self.people
            yield self.thread_panel
        yield KeysFooter()

    def on_mount(self) -> None:
        """Start in the composer, with the people panel hidden."""
        self.people.display = False
        self.thread_panel.display = False
        self.unseen_badge.display = False
        self.intent_bar.display = False
        self.typing_line.display = False
        self.seen_line.display = False
        self.thread_seen_line.display = False
        self.trust_line.display = False
        self.composer.focus()

    def _typing_target(self) -> Composer | None:
        """The composer that stray typing belongs to, or None when a text field has it."""
        if isinstance(self.focused, (TextArea, Input)):
            return None
        if self.thread_panel.display and self.thread_panel.has_focus_within:
            return self.thread_composer
        return self.composer

    def steer_key(self, event: events.Key) -> bool:
        """A printable key typed while a list has focus is typed into the composer (issue
        9 item 9), unless the list or the screen has a binding for it that would act now
        (j/k, Enter, e on your selected message…): e on someone else's message, or with no
        message selected, is typed too. The app calls this before it hands the key on, and
        the focus moves at once, so the keys that follow in the same burst (a fast typist,
        a terminal's read) go to the composer in order and none is taken as a list key
        (issue 12: "hello" lost its "e" to the edit key). A "/" there opens search (True:
        the key is taken)."""
        target = self._typing_target()
        if target is None or not event.is_printable or not event.character:
            return False
        active = self.active_bindings.get(event.key)
        if active is not None and active.binding.id == "messages.find_slash":
            # opened here, in the order keys arrive: the words typed after the / go to
            # the search screen's query (handed on, the key acts after they went by)
            self.action_search()
            return True
        if event.key in target.reserved_keys or active is not None:
            return False
        self.set_focus(target)
        return False

    def on_paste(self, event: events.Paste) -> None:
        """A paste while a list has focus goes to the composer."""
        target = self._typing_target()
        if target is not None:
            target.take_stray_paste(event)

    # --- fed by the app -----------------------------------------------------------

    def show_chat(self, chat: Chat, timeline: Timeline) -> None:
        """Show a chat's timeline and title."""
        if chat.id != self.current_chat:
            self.typing_line.open_chat(chat.id)
            self._show_seen(None)
        self.current_chat = chat.id
        self._chat = chat
        self.chat_title.update(self._title(chat))
        self._show_trust_line()
        self.view.show(timeline)

    def _title(self, chat: Chat) -> str:
        sealed = chat.id in self.encrypted
        lock, note = ("🔒 ", "  · end-to-end encrypted") if sealed else ("", "")
        if chat.kind == "direct":
            peer = chat.peer or chat.name.lstrip("@")
            if sealed:
                note += "  · ✔ verified" if peer in self.verified else "  · not verified (F6)"
            return f"{lock}@{peer}  · private{note}"
        if chat.kind == "general":
            return "# general  · everyone"
        return f"{lock}≡ {chat.name}  · {format_count(chat.members, 'member')}{note}"

    def update_title(self, chat: Chat) -> None:
        """The open chat changed (members, name)."""
        if chat.id == self.current_chat:
            self._chat = chat
            self.chat_title.update(self._title(chat))

    def show_thread(self, root: Message, timeline: Timeline) -> None:
        """Open the thread panel on a message and its comments."""
        if self.thread_root is None or root.id != self.thread_root.id:
            self._show_seen(None, in_thread=True)
        self.thread_root = root
        self.thread_panel.display = True
        self.update_thread_title(root)
        self.thread_view.show(timeline)
        self.thread_composer.focus()

    def update_thread_title(self, root: Message) -> None:
        """The root's comment count changed."""
        if self.thread_root is None or root.id != self.thread_root.id:
            return
        self.thread_root = root
        noun = "comment" if root.comment_count == 1 else "comments"
        self.thread_title.update(f"Thread · {root.author} · {root.comment_count} {noun}  (Esc)")

    def close_thread(self) -> None:
        """Hide the thread panel."""
        self._show_seen(None, in_thread=True)
        self.thread_root = None
        self.thread_panel.display = False
        self.composer.focus()

    def give_back(self, text: str, composer: Composer | None = None) -> None:
        """Put refused text back in an empty composer so it is not lost."""
        composer = composer or self.composer
        if not composer.text:
            composer.load_text(text)
            composer.move_cursor(composer.document.end)

    def send_again(self, text: str, *, reply_to: Message | None, thread_root: int | None) -> None:
        """The server refused a send: its text comes back where it was typed -- a comment
        in the thread panel while that thread is open, a reply still replying to its
        message -- so Enter sends it the same way again (into an empty composer, not
        busy with another edit or reply)."""
        in_thread = (
            thread_root is not None
            and self.thread_root is not None
            and self.thread_root.id == thread_root
        )
        composer = self.thread_composer if in_thread else self.composer
        if composer.text or composer.intent is not None:
            return
        self.give_back(text, composer)
        if reply_to is not None and reply_to.deleted_at is None and thread_root is None:
            composer.begin(Intent("reply", reply_to))

    def edit_again(self, message: Message | None, text: str, refused: str) -> None:
        """The server refused an edit to ``text``: the composer edits the message again
        with that text and says why above it (Enter tries again, Esc gives back the
        draft), unless it is busy with another edit or reply (the toast said why). A
        message that is gone (deleted) takes no edit: its text is kept in an empty
        composer, said to be a new message."""
        if message is None or message.deleted_at is not None:
            if not self.composer.text and self.composer.intent is None:
                self.give_back(text)
                self.intent_bar.update(f"⚠ Edit not saved ({refused}): Enter sends a new message")
                self.intent_bar.display = True
            return
        in_thread = self.thread_root is not None and message.thread_root == self.thread_root.id
        composer = self.thread_composer if in_thread else self.composer
        if composer.intent is None:
            composer.begin(Intent("edit", message, refused), text)

    @on(ChatsChanged)
    def _chats_changed(self, event: ChatsChanged) -> None:
        event.stop()
        self.show_chats(event)

    def show_chats(self, event: ChatsChanged) -> None:
        """Redraw the chat list (and the open chat's title) from ``event``."""
        # query, not query_one: during shutdown the screen may already be empty.
        for chat_list in self.query(ChatList):
            chat_list.update_chats(event.chats, event.presence, self.current_chat, event.encrypted)
        if event.encrypted != self.encrypted:
            self.encrypted = event.encrypted
            if self._chat is not None:
                self.update_title(self._chat)

    @on(TrustChanged)
    def _trust_changed(self, event: TrustChanged) -> None:
        event.stop()
        self.trust_lines = event.lines
        self._show_trust_line()
        if event.verified != self.verified:
            self.verified = event.verified
            if self._chat is not None:
                self.update_title(self._chat)

    def _show_trust_line(self) -> None:
        text = self.trust_lines.get(self.current_chat) or self.trust_lines.get(None) or ""
        self.trust_line.update(text)
        self.trust_line.display = bool(text)

    @on(UsersPanel.VerifyWanted)
    def _verify_wanted(self, event: UsersPanel.VerifyWanted) -> None:
        event.stop()
        app = self.app
        if isinstance(app, host.Host):
            app.trust.show_devices(event.login)

    @on(PeopleChanged)
    def _people_changed(self, event: PeopleChanged) -> None:
        event.stop()
        for panel in self.query(UsersPanel):
            panel.update_users(event.presence, event.contacts)

    @on(BanChanged)
    def _ban_changed(self, event: BanChanged) -> None:
        event.stop()
        self.moderation.banned(event.until, event.reason)

    @on(RateLimited)
    def _rate_limited(self, event: RateLimited) -> None:
        event.stop()
        self.moderation.rate_limited(event.retry_after)

    @on(ThreadChanged)
    def _thread_changed(self, event: ThreadChanged) -> None:
        event.stop()
        self.update_thread_title(event.root)

    @on(TypingChanged)
    def _typing_changed(self, event: TypingChanged) -> None:
        event.stop()
        self.typing_line.show_typing(event.chat_id, event.expires)

    @on(SeenByChanged)
    def _seen_by_changed(self, event: SeenByChanged) -> None:
        event.stop()
        for in_thread, view in ((False, self.view), (True, self.thread_view)):
            message = view.selected_message()
            if message is None or message.id != event.message_id:
                continue
            if event.message_id != self._seen_target(in_thread):
                continue
            self._seen[in_thread] = event.seen_by
            self._show_seen_of(message, in_thread=in_thread)

    def _show_seen_of(self, message: Message, *, in_thread: bool) -> None:
        """The "seen by" line of ``message`` as last asked, naming its text as it is now."""
        seen_by = self._seen.get(in_thread)
        if seen_by is None:
            return
        # which message: the line sits under the newest one, maybe someone else's
        first = message.text.split("\n", 1)[0] or "a file"
        which = f"  · your “{first[:40]}{'…' if len(first) > 40 else ''}”"
        seen = "✓ Seen by " + ", ".join(seen_by) if seen_by else "Not seen yet"
        self._show_seen(seen + which, in_thread=in_thread)

    @on(ReceiptArrived)
    def _receipt_arrived(self, event: ReceiptArrived) -> None:
        """Someone read on (the chat, or a thread): the "seen by" shown of a message up to
        there follows (it was asked on selection)."""
        event.stop()
        for in_thread, view in ((False, self.view), (True, self.thread_view)):
            seen = self._seen_target(in_thread)
            message = view.selected_message()
            if (
                seen is not None
                and message is not None
                and message.id == seen
                and message.chat_id == event.chat_id
                and message.thread_root == event.thread_root  # whose read cursor moved
                and event.up_to >= seen
            ):
                self._receipts_seen(message, in_thread=in_thread)

    def _seen_target(self, in_thread: bool) -> int | None:
        return self._thread_seen_of if in_thread else self._seen_of

    def _show_seen(self, text: str | None, *, in_thread: bool = False) -> None:
        line = self.thread_seen_line if in_thread else self.seen_line
        line.update(text or "")
        line.display = bool(text)
        if text is None:
            self._seen.pop(in_thread, None)
            if in_thread:
                self._thread_seen_of = None
            else:
                self._seen_of = None

    @on(MessageView.Selected)
    def _selected(self, event: MessageView.Selected) -> None:
        """A message of the user's selected (in the chat or the thread panel): who has
        read it shows under its view, and follows live."""
        message = event.message
        in_thread = event.view is self.thread_view
        if not in_thread and event.view is not self.view:
            return
        if message.id and message.author == self.me and message.deleted_at is None:
            if message.id == self._seen_target(in_thread):
                self._show_seen_of(message, in_thread=in_thread)  # it was edited
            else:
                self._show_seen(None, in_thread=in_thread)
                if in_thread:
                    self._thread_seen_of = message.id
                else:
                    self._seen_of = message.id
                self._receipts_seen(message, in_thread=in_thread)
        else:
            self._show_seen(None, in_thread=in_thread)

    @on(MessageView.Deselected)
    def _deselected(self, event: MessageView.Deselected) -> None:
        if event.view is self.view:
            self._show_seen(None)
        elif event.view is self.thread_view:
            self._show_seen(None, in_thread=True)

    def _receipts_seen(self, message: Message, *, in_thread: bool) -> None:
        app = self.app
        if isinstance(app, host.Host):
            app.receipts.seen_by(message, in_thread=in_thread)

    @on(MessageView.QuoteClicked)
    def _quote_clicked(self, event: MessageView.QuoteClicked) -> None:
        event.stop()
        app = self.app
        if isinstance(app, host.Host):
            app.finding.jump_to(event.message.chat_id, event.original)

    @on(TextArea.Changed, "#composer")
    def _composer_changed(self, event: TextArea.Changed) -> None:
        """Typing in the composer tells the chat (throttled), not a command or an edit."""
        text, app = self.composer.text, self.app
        intent = self.composer.intent
        if not text and intent is None:
            self.intent_bar.display = False  # a refused edit's "new message" note
        if not text.strip() or text.startswith("/") or (intent and intent.act == "edit"):
            return
        if isinstance(app, host.Host) and self.current_chat is not None:
            app.receipts.typed(self.current_chat)

    @on(MessageView.UnseenChanged)
    def _unseen(self, event: MessageView.UnseenChanged) -> None:
        if event.view is not self.view:
            return
        badge = self.unseen_badge
        badge.display = event.count > 0
        noun = "message" if event.count == 1 else "messages"
        badge.update(f"↓ {event.count} new {noun}  (End or click to jump)")

    def on_click(self, event: object) -> None:
        """A click on the "N new messages" badge jumps to the bottom; on the chat's
        title, it shows the members."""
        widget = getattr(event, "widget", None)
        if widget is not None and widget.id == "unseen":
            self.view.action_bottom()
        elif widget is not None and widget.id == "trust-line":
            self.action_verify()
        elif widget is not None and widget.id == "chat-title":
            from .groups import show_members

            show_members(self.app)  # type: ignore[arg-type]

    # --- actions ----------------------------------------------------------------------

    def action_goto_chat(self, n: int) -> None:
        """Open the n-th chat of the list (Alt+1..9)."""
        chats = self.chat_list
        if 0 < n <= len(chats.chat_ids):
            self.post_message(ChatList.ChatChosen(chats.chat_ids[n - 1]))

    def action_search(self, query: str = "") -> None:
        """Search messages across chats (Ctrl+F)."""
        app = self.app
        if isinstance(app, host.Host):
            app.finding.search(query)

    def action_verify(self) -> None:
        """Answer a verification request, verify the device a notice is about, or show
        the devices of this chat's peer (F6, a click on the notice line)."""
        app = self.app
        if isinstance(app, host.Host):
            app.trust.here()

    def action_mentions(self) -> None:
        """The messages that mention the user (Alt+M)."""
        app = self.app
        if isinstance(app, host.Host):
            app.finding.mentions()

    def action_toggle_users(self) -> None:
        """Show or hide the people panel."""
        people = self.people
        people.display = not people.display
        if people.display:
            self.users_panel.focus()
        else:
            self.composer.focus()

    def action_scroll_messages(self, direction: int) -> None:
        """Page the message view from anywhere (the composer keeps focus)."""
        if direction < 0:
            self.view.action_page_up()
        else:
            self.view.action_page_down()

    def action_open_thread(self) -> None:
        """Open the selected message's thread (the newest message's if none is selected)."""
        if self.view.selected is None:
            self.view.action_bottom()
        self.view.action_activate()

    def action_back(self) -> None:
        """Esc: stop an edit or a reply, close the people panel, or go back to the
        composer."""
        people = self.people
        for composer in (self.composer, self.thread_composer):
            if composer.intent is not None and composer.has_focus:
                composer.end_intent()
                return
        if people.display and people.has_focus_within:
            people.display = False
        elif self.thread_panel.display and self.thread_panel.has_focus_within:
            self.close_thread()
        self.composer.focus()

    # --- acting on a message ----------------------------------------------------------

    @on(MessageView.ActWanted)
    def _act_wanted(self, event: MessageView.ActWanted) -> None:
        event.stop()
        self.act_on(event.message, event.act, in_thread=event.view is self.thread_view)

    @on(MessageView.ReactionClicked)
    def _reaction_clicked(self, event: MessageView.ReactionClicked) -> None:
        event.stop()
        if event.message.id and event.message.deleted_at is None:
            self.toggle_reaction(event.message, event.emoji)

    @on(MessageView.MenuWanted)
    def _menu_wanted(self, event: MessageView.MenuWanted) -> None:
        event.stop()
        message, in_thread = event.message, event.view is self.thread_view
        if not message.id or message.deleted_at is not None:
            return
        acts: list[tuple[str, str]] = []
        if not in_thread:
            acts.append(("reply", "↱ Reply  (r)"))
        if message.author == self.me:
            acts += [("edit", "✎ Edit  (e)"), ("delete", "✖ Delete  (d)")]
        elif self._is_admin():
            acts.append(("delete", "✖ Delete (admin)  (d)"))
        acts.append(("react", "☺ React  (+)"))
        if not in_thread:
            acts.append(("thread", "↳ Thread  (Enter)"))
        if not in_thread and message.author == self.me:
            acts.append(("seen", "✓ Seen by…"))

        def chosen(act: str | None) -> None:
            if act == "thread":
                self.view.post_message(MessageView.Activated(self.view, message))
            elif act == "seen":
                self._seen_of = message.id
                self._receipts_seen(message, in_thread=False)
            elif act in ("reply", "edit", "delete", "react"):
                self.act_on(message, act, in_thread=in_thread)  # type: ignore[arg-type]

        self.app.push_screen(MessageMenu(acts), chosen)

    def can_act(self, message: Message, act: Act, *, in_thread: bool = False) -> bool:
        """Whether ``act`` on ``message`` would do something (its key acts; otherwise
        the key is typed into the composer)."""
        if not message.id or message.deleted_at is not None:
            return False
        match act:
            case "reply":
                return not in_thread
            case "edit":
                return message.author == self.me
            case "delete":
                return message.author == self.me or self._is_admin()
        return True

    def act_on(self, message: Message, act: Act, *, in_thread: bool = False) -> None:
        """Reply to, edit, delete or react to ``message`` (keys r, e, d, + or the menu)."""
        if not message.id:
            self.app.notify("That message is still being sent", severity="warning")
            return
        if message.deleted_at is not None:
            self.app.notify("That message was deleted", severity="warning")
            return
        composer = self.thread_composer if in_thread else self.composer
        match act:
            case "reply" if in_thread:
                self.app.notify("In a thread, just comment: replies quote in the chat")
            case "reply":
                composer.begin(Intent("reply", message))
            case "edit" if message.author != self.me:
                self.app.notify("You can edit only your own messages", severity="warning")
            case "edit":
                composer.begin(Intent("edit", message))
            case "delete" if message.author != self.me and not self._is_admin():
                self.app.notify("You can delete only your own messages", severity="warning")
            case "delete":
                excerpt = message.text.split("\n", 1)[0][:50] or "(a file)"

                def confirmed(yes: bool | None) -> None:
                    if yes:
                        self._command("delete", message_id=message.id)

                self.app.push_screen(ConfirmDelete(f"{message.author}: {excerpt}"), confirmed)
            case "react":
                mine = frozenset(r.emoji for r in message.reactions if self.me in r.users)

                def picked(emoji: str | None) -> None:
                    if emoji:
                        self.toggle_reaction(message, emoji)

                self.app.push_screen(ReactionPicker(mine), picked)

    def edit_last(self, *, in_thread: bool) -> bool:
        """Up in an empty composer: select the user's newest message of the open chat (or
        their newest comment of the open thread) and edit it, like Slack and Element;
        False if there is none loaded (Up then walks the input history)."""
        view = self.thread_view if in_thread else self.view
        timeline = view.timeline
        if timeline is None:
            return False
        for index in range(len(timeline) - 1, -1, -1):
            message = timeline[index]
            if in_thread and message.thread_root is None:
                continue  # the root is the chat's message: edited there
            if message.author == self.me and message.id and message.deleted_at is None:
                view.select_index(index)
                self.act_on(message, "edit", in_thread=in_thread)
                return True
        return False

    def toggle_reaction(self, message: Message, emoji: str) -> None:
        """Add ``emoji`` to the message, or take it back if this user had added it."""
        mine = any(r.emoji == emoji and self.me in r.users for r in message.reactions)
        self._command("unreact" if mine else "react", message_id=message.id, emoji=emoji)

    def _command(self, name: str, **args: object) -> None:
        """Run a command of the shared command runner (its answer becomes a toast)."""
        app = self.app
        if isinstance(app, host.Host) and self.current_chat is not None:
            app.run_command(slash.ParsedCommand(name, dict(args)), self.current_chat)

    def _is_admin(self) -> bool:
        app = self.app
        client = app.client if isinstance(app, host.Host) else None
        session = client.session if client is not None else None
        return session is not None and session.user.is_admin

    @on(Composer.IntentChanged)
    def _intent_changed(self, event: Composer.IntentChanged) -> None:
        event.stop()
        if event.composer is not self.composer:
            if event.intent is not None and not event.intent.refused:
                self.app.notify("Editing your comment: Enter saves, Esc cancels")
            return
        intent, bar = event.intent, self.intent_bar
        bar.display = intent is not None
        if intent is None:
            return
        if intent.refused:
            bar.update(f"⚠ Edit not saved (Enter tries again, Esc cancels): {intent.refused}")
        elif intent.act == "edit":
            bar.update("✎ Editing your message  (Enter saves, Esc cancels)")
        else:
            first = intent.message.text.split("\n", 1)[0] or "(a file)"
            bar.update(f"↱ Replying to {intent.message.author}: {first}  (Esc cancels)")
