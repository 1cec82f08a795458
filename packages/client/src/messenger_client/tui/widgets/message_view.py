"""The message view: a virtualised, Line-API view of one chat's timeline.

Like toolong's log view: a ``ScrollView`` whose ``virtual_size`` is the height of the
whole timeline (known from the :class:`~messenger_client.tui.timeline.Layout` without
rendering), ``render_line`` renders only what is on screen, and rendered strips sit in
an LRU cache. The view stays pinned to the bottom while the user is there; scrolled up,
it counts new messages instead (the "N new messages" badge). Near the top it asks for
older history (:class:`MessageView.OlderWanted`), and keeps the viewport still when the
page arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import tzinfo
from typing import ClassVar, Literal

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message as TextualMessage
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.style import Style as VisualStyle

from messenger_protocol import Message

from ..robust import Guarded
from ..timeline import Layout, Timeline
from .attachments import AttachmentClicked, attachment_at
from .moderation import fade_level

__all__ = ["ACTS", "Act", "MessageView"]

OLDER_MARGIN_PAGES = 2
"""Ask for older history when the top is closer than this many pages."""

_StripKey = tuple[object, ...]
Act = Literal["reply", "edit", "delete", "react"]
"""What can be done to a message from the view."""
ACTS: tuple[Act, ...] = ("reply", "edit", "delete", "react")
FADE_REFRESH_SECONDS = 10.0
"""How often messages about to disappear are redrawn (they fade in steps)."""


class MessageView(Guarded, ScrollView, can_focus=True):
    """The messages of the open chat; click or j/k to select, Enter to open a thread."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"message-view--selected"}

    DEFAULT_CSS = """
    MessageView {
        overflow-x: hidden;
        overflow-y: scroll;
        scrollbar-size-vertical: 1;
    }
    MessageView > .message-view--selected {
        background: $boost;
    }
    MessageView:focus > .message-view--selected {
        background: $accent 25%;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "select_previous", "Prev message", show=False, id="messages.previous"),
        Binding("down,j", "select_next", "Next message", show=False, id="messages.next"),
        Binding("home,g", "top", "Oldest", show=False, id="messages.top"),
        Binding("end,G", "bottom", "Newest", show=False, id="messages.bottom"),
        Binding("pageup", "page_up", "Page up", show=False, id="messages.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="messages.page_down"),
        Binding("enter", "activate", "Thread", id="messages.open",
                tooltip="Open the thread (comments) of the selected message"),
        Binding("escape", "deselect", "Back", show=False, id="messages.deselect"),
        Binding("r", "act('reply')", "Reply", id="messages.reply",
                tooltip="Reply to the selected message, quoting it (Esc cancels)"),
        Binding("e", "act('edit')", "Edit", id="messages.edit",
                tooltip="Edit your selected message (Esc cancels)"),
        Binding("d", "act('delete')", "Delete", show=False, id="messages.delete",
                tooltip="Delete your selected message (asks first)"),
        Binding("plus", "act('react')", "React", show=False, id="messages.react",
                tooltip="Add a reaction to the selected message (again: take it back)"),
    ]  # fmt: skip

    unseen: reactive[int] = reactive(0)
    """Messages that arrived below the viewport while scrolled up."""

    class OlderWanted(TextualMessage):
        """The user scrolled near the top: load history older than ``before``."""

        def __init__(self, view: MessageView, chat_id: int, before: int | None) -> None:
            super().__init__()
            self.view = view
            self.chat_id = chat_id
            self.before = before

    class JumpWanted(TextualMessage):
        """Home with older history not loaded (``oldest``), or End in a window into the
        past: load the chat's first (or newest) page directly, not page by page."""

        def __init__(self, view: MessageView, chat_id: int, oldest: bool) -> None:
            super().__init__()
            self.view = view
            self.chat_id = chat_id
            self.oldest = oldest

    class NewerWanted(TextualMessage):
        """The user scrolled near the bottom of a window into the past."""

        def __init__(self, view: MessageView, chat_id: int, after: int) -> None:
            super().__init__()
            self.view = view
            self.chat_id = chat_id
            self.after = after

    class Selected(TextualMessage):
        """A message was selected (click, j/k)."""

        def __init__(self, message: Message, view: MessageView | None = None) -> None:
            super().__init__()
            self.message = message
            self.view = view

    class Activated(TextualMessage):
        """A message was opened (Enter, double click): show its thread."""

        def __init__(self, view: MessageView, message: Message) -> None:
            super().__init__()
            self.view = view
            self.message = message

    class ActWanted(TextualMessage):
        """The user wants to act on a message: reply, edit, delete or react (keys r, e,
        d, +, or the menu of a right click)."""

        def __init__(self, view: MessageView, message: Message, act: Act) -> None:
            super().__init__()
            self.view = view
            self.message = message
            self.act = act

    class ReactionClicked(TextualMessage):
        """A click on a reaction chip: add that reaction, or take yours back."""

        def __init__(self, view: MessageView, message: Message, emoji: str) -> None:
            super().__init__()
            self.view = view
            self.message = message
            self.emoji = emoji

    class QuoteClicked(TextualMessage):
        """A click on a reply's quote: go to the message it answers."""

        def __init__(self, view: MessageView, message: Message, original: int) -> None:
            super().__init__()
            self.view = view
            self.message = message
            self.original = original

    class Deselected(TextualMessage):
        """The selection was cleared (Esc)."""

        def __init__(self, view: MessageView) -> None:
            super().__init__()
            self.view = view

    class MenuWanted(TextualMessage):
        """A right click on a message: offer what can be done with it."""

        def __init__(self, view: MessageView, message: Message) -> None:
            super().__init__()
            self.view = view
            self.message = message

    class Shown(TextualMessage):
        """The newest message on screen changed (read state follows what is shown)."""

        def __init__(self, view: MessageView, up_to: int) -> None:
            super().__init__()
            self.view = view
            self.up_to = up_to

    class UnseenChanged(TextualMessage):
        """The count of new messages below the viewport changed."""

        def __init__(self, view: MessageView, count: int) -> None:
            super().__init__()
            self.view = view
            self.count = count

    def __init__(
        self,
        me: str = "",
        tz: tzinfo | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.me = me
        self.tz = tz
        self.timeline: Timeline | None = None
        self.layout_: Layout | None = None
        self.selected: object | None = None
        """Key (id, or client id of a pending send) of the selected message."""
        self._pinned = True
        self._divider_after: int | None = None
        self._reveal_pending = False
        self._last_shown = 0
        self._older_requested = False
        self._newer_requested = False
        self._total = 0
        self._strips: LRUCache[_StripKey, list[Strip]] = LRUCache(1024)
        self._positions: dict[int, tuple[bool, int, int | None]] = {}
        self._style_cache: tuple[Style, Style, Style] | None = None
        self.disappears_at: Callable[[Message], float | None] | None = None
        self.can_act: Callable[[Message, Act], bool] = lambda message, act: True
        """Whether a key's act applies to a message (the screen knows whose it is)."""
        self.badge_below = False
        """Whether the pane shows the "N new messages" badge under this view while
        ``unseen`` (the badge takes one of the view's lines)."""
        self._height_without_badge = 0
        """When a message disappears for this user (set by the app); it fades before."""

    # --- showing a timeline -------------------------------------------------------

    def show(self, timeline: Timeline, at: Literal["top", "bottom"] | None = None) -> None:
        """Show another chat; its scroll position is remembered per chat (a chat with
        unread messages then opens at its divider: :meth:`open_at_divider`)."""
        if self.timeline is timeline:
            return
        same_chat = self.timeline is not None and self.timeline.chat_id == timeline.chat_id
        if not same_chat:
            self._divider_after, self._reveal_pending = None, False
        self._last_shown = 0
        self._remember_position()
        if self.layout_ is not None:
            self.layout_.detach()
        self.timeline = timeline
        self.layout_ = None
        self.selected = None
        self.unseen = 0
        self._older_requested = False
        self._strips.clear()
        self._newer_requested = False
        pinned, _line, anchor = self._positions.get(timeline.chat_id, (True, 0, None))
        if at is not None:
            self._reveal_pending = False
            pinned, anchor = at == "bottom", None
        self._pinned = pinned and not self._reveal_pending and not timeline.has_newer
        self._build_layout()
        if at == "top" and self.layout_ is not None:
            self.scroll_to(y=0, animate=False, force=True)
            self.select_index(0)
        elif not pinned and anchor is not None and self.layout_ is not None:
            index = timeline.index_of(anchor)
            if index is not None:
                self.scroll_to(y=self.layout_.line_of(index), animate=False, force=True)
        self.refresh()
        self._maybe_want_older()

    def _remember_position(self) -> None:
        if self.timeline is None or self.layout_ is None:
            return
        index = self.layout_.index_at(round(self.scroll_y))
        anchor = self.timeline[index].id if index is not None else None
        self._positions[self.timeline.chat_id] = (self._pinned, round(self.scroll_y), anchor)

    def _content_width(self) -> int:
        return self.scrollable_content_region.width

    def _build_layout(self) -> None:
        width = self._content_width()
        if self.timeline is None or width <= 0:
            return
        self.layout_ = Layout(
            self.timeline, width, me=self.me, tz=self.tz, divider_after=self._divider_after
        )
        self.layout_.listener = self._timeline_changed
        self._total = self.layout_.total
        self.virtual_size = Size(width, self._total)
        if self._reveal_pending:
            self._reveal()
        elif self._pinned:
            self.scroll_to(y=self.max_scroll_y, animate=False, force=True)

    # --- the "new messages" divider -------------------------------------------------

    def open_at_divider(self, last_read: int, *, again: bool = False) -> None:
        """Show a "new messages" line above the first message after ``last_read`` and
        scroll there (now, or when that message arrives); End goes on to the newest.
        The first opening's line stays while the chat is shown, unless ``again`` (after a
        reconnect: what was missed since, even if the view followed its replay)."""
        if self._divider_after is not None and not again:
            return
        self._divider_after = last_read
        self._reveal_pending = True
        self._pinned = False
        self._last_shown = 0  # reading starts again from the line
        if self.layout_ is not None:
            self.layout_.set_divider(last_read)
            self._reveal()

    def _reveal(self) -> None:
        layout = self.layout_
        if layout is None:
            return
        index = layout.divider_index()
        if index is None:
            return  # not loaded yet: older pages are on their way
        self._reveal_pending = False
        self.virtual_size = Size(layout.width, layout.total)
        top = layout.line_of(index)
        # a line of what was read before stays in view, for context
        self.scroll_to(y=max(top - 1, 0), animate=False, force=True)
        self._pinned = top - 1 >= self.max_scroll_y
        if not self._pinned:
            bottom = self._visible_index(bottom=True)
            if bottom is not None:
                self.unseen = max(len(layout.timeline.messages) - 1 - bottom, 0)
            bottom = self._visible_index(bottom=True)  # the badge, if any, hides a line
            if bottom is not None and self.unseen:
                self.unseen = max(len(layout.timeline.messages) - 1 - bottom, 0)
        self._note_shown()

    @property
    def reveal_pending(self) -> bool:
        """The chat opens at its divider, which is not loaded yet (nothing is read)."""
        return self._reveal_pending

    def last_shown_id(self) -> int | None:
        """Id of the newest confirmed message on screen (it counts as read)."""
        layout, timeline = self.layout_, self.timeline
        if layout is None or timeline is None or not timeline.messages or not layout.total:
            return None
        bottom = self._visible_index(bottom=True)
        if bottom is None:
            return None
        return timeline.messages[min(bottom, len(timeline.messages) - 1)].id

    def _note_shown(self) -> None:
        if self._reveal_pending:
            return
        shown = self.last_shown_id()
        if shown is not None and shown > self._last_shown:
            self._last_shown = shown
            self.post_message(self.Shown(self, shown))

    def on_resize(self, event: events.Resize) -> None:
        """Lay out again at the new width, keeping the top message in place."""
        if not self.unseen:
            self._height_without_badge = self.size.height
        width = self._content_width()
        if self.timeline is None or width <= 0:
            return
        if self.layout_ is not None and self.layout_.width == width:
            return
        anchor: int | None = None
        if self.layout_ is not None and not self._pinned:
            anchor = self.layout_.index_at(round(self.scroll_y))
            self.layout_.detach()
        self._strips.clear()
        self._build_layout()
        if anchor is not None and self.layout_ is not None:
            self.scroll_to(y=self.layout_.line_of(anchor), animate=False, force=True)

    # --- following changes ----------------------------------------------------------

    def _timeline_changed(self, index: int) -> None:
        layout = self.layout_
        if layout is None:
            return
        old_total, self._total = self._total, layout.total
        delta = self._total - old_total
        appended = index >= len(layout.heights) - 1 and delta >= 0
        self.virtual_size = Size(layout.width, self._total)
        if self._pinned:
            self.scroll_to(y=self.max_scroll_y, animate=False, force=True)
        elif layout.line_of(min(index, len(layout.heights))) <= self.scroll_y and delta:
            # Something above the viewport grew (older history): keep the view still.
            self.scroll_to(y=self.scroll_y + delta, animate=False, force=True)
            self._older_requested = False
        elif appended and delta > 0 and not self._newer_requested:
            self.unseen += 1
        if index == 0:
            self._older_requested = False
        selected = self._selected_index()
        if selected == index and index < len(layout.timeline):
            # the selected message itself changed (edited, deleted): said again, and the
            # footer shows the keys that act on it now (no e on a tombstone)
            self.post_message(self.Selected(layout.timeline[index], self))
            self.refresh_bindings()
        if self._reveal_pending:
            self._reveal()
        self._note_shown()
        self._maybe_want_older()  # the first page may not fill the view up to the top
        self.refresh()

    def newer_loaded(self) -> None:
        """A page of newer history arrived in a window into the past."""
        self._newer_requested = False
        self._maybe_want_newer()

    def _maybe_want_newer(self) -> None:
        timeline = self.timeline
        if timeline is None or not timeline.has_newer or self._newer_requested:
            return
        newest = timeline.newest_id
        if newest is not None and self.scroll_y >= self.max_scroll_y - self.size.height * 2:
            self._newer_requested = True
            self.post_message(self.NewerWanted(self, timeline.chat_id, newest))

    def older_loaded(self) -> None:
        """A page of older history arrived (or none is left); ask again when needed."""
        self._older_requested = False
        if self.layout_ is not None and self.timeline is not None and not self.timeline.has_more:
            self.layout_.history_start_known()
        if self._reveal_pending:
            self._reveal()
        self._maybe_want_older()

    def _maybe_want_older(self) -> None:
        timeline = self.timeline
        if timeline is None or not timeline.has_more or self._older_requested:
            return
        if timeline.oldest_id is None:
            return  # nothing from the server yet; asked again when the first page shows
        if self.scroll_y <= self.size.height * OLDER_MARGIN_PAGES:
            self._older_requested = True
            self.post_message(self.OlderWanted(self, timeline.chat_id, timeline.oldest_id))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        """Track whether the view is pinned to the bottom; load older near the top."""
        super().watch_scroll_y(old_value, new_value)
        if not self._reveal_pending:
            at_bottom = round(new_value) >= self.max_scroll_y
            self._pinned = at_bottom and not (self.timeline and self.timeline.has_newer)
        if self._pinned:
            self.unseen = 0
        self._maybe_want_older()
        self._maybe_want_newer()
        self._note_shown()

    def watch_unseen(self, count: int) -> None:
        """Tell the chat pane, which shows the badge."""
        self.post_message(self.UnseenChanged(self, count))

    def follow(self) -> None:
        """Go to the bottom and stay there (the user just sent something)."""
        self._reveal_pending = False
        if self.timeline is not None and self.timeline.has_newer:
            self.post_message(self.JumpWanted(self, self.timeline.chat_id, oldest=False))
        self._pinned = True
        self.unseen = 0
        self.scroll_to(y=self.max_scroll_y, animate=False, force=True)

    @property
    def pinned(self) -> bool:
        """Whether the view follows new messages."""
        return self._pinned

    # --- rendering ------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """One screen line: a line of the message it falls in, from the strip cache."""
        layout = self.layout_
        width = self.size.width
        base = self._base_style()
        line = self._line_at(y)
        if layout is None:
            return Strip.blank(width, base)
        index = layout.index_at(line)
        if index is None:
            return Strip.blank(width, base)
        strips = self._message_strips(index, layout, base)
        return strips[line - layout.line_of(index)]

    def _line_at(self, y: int) -> int:
        """Timeline line at screen row ``y``; a short chat sits at the bottom, near the
        composer, as in every chat app."""
        layout = self.layout_
        gap = self.size.height - layout.total if layout is not None else 0
        return round(self.scroll_y) + y - max(gap, 0)

    def _base_style(self) -> Style:
        # rich_style walks every ancestor's styles; once per style change is enough.
        if self._style_cache is None:
            base_background, background = self.background_colors
            self._style_cache = (
                self.rich_style,
                self.get_component_rich_style("message-view--selected", partial=True),
                # what Textual pads a line to the content width with (the widget's background)
                VisualStyle(background=base_background + background).rich_style,
            )
        return self._style_cache[0]

    def notify_style_update(self) -> None:
        """Styles (focus, theme) changed: forget the cached ones and rendered strips."""
        super().notify_style_update()
        self._style_cache = None
        self._strips.clear()

    def on_mount(self) -> None:
        """Messages about to disappear fade as time passes."""
        self.set_interval(FADE_REFRESH_SECONDS, self._refade)

    def _refade(self) -> None:
        if self.disappears_at is not None:
            self.refresh()

    def _fade(self, message: Message) -> float:
        if self.disappears_at is None or not message.id:
            return 0.0
        return round(fade_level(self.disappears_at(message), time.time()), 1)

    def _message_strips(self, index: int, layout: Layout, base: Style) -> list[Strip]:
        timeline = layout.timeline
        message = timeline[index]
        previous = timeline[index - 1] if index else None
        key = message.id or message.client_id
        selected = key == self.selected
        cache_key: _StripKey = (
            key,
            message.text,
            message.comment_count,
            len(message.attachments),
            message.edited_at,
            message.deleted_at,
            message.reply_to,
            tuple((r.emoji, r.count, layout.me in r.users) for r in message.reactions),
            timeline.state(message),
            (previous.id or previous.client_id, previous.author) if previous else None,
            layout.width,
            layout.is_divider(index),
            selected,
            base,
            self.has_focus,
            fade := self._fade(message),
        )
        strips = self._strips.get(cache_key)
        if strips is not None:
            return strips
        style = base
        if selected:
            self._base_style()
            assert self._style_cache is not None
            style = base + self._style_cache[1]
        if fade:
            style = style + Style(dim=True)
        console = self.app.console
        width = layout.width
        # Lines as wide as the content region, so Textual takes them as they are (one
        # Strip per line: each of Textual's Strips makes seven caches).
        full = max(self.content_region.width, width)
        assert self._style_cache is not None
        pad = [Segment(" " * (full - width), self._style_cache[2])] if full > width else []
        strips = []
        for text in layout.lines(index):
            segments = list(text.render(console))
            length = text.cell_len
            if length > width:
                segments = Segment.adjust_line_length(segments, width)
            elif length < width:
                segments.append(Segment(" " * (width - length)))
            strips.append(Strip([*Segment.apply_style(segments, style), *pad], full))
        if not strips:  # pragma: no cover - every message has at least its body line
            strips = [Strip([Segment(" " * layout.width, style)], layout.width)]
        self._strips[cache_key] = strips
        return strips

    def on_focus(self) -> None:
        """Selection colors depend on focus."""
        self.refresh()

    def on_blur(self) -> None:
        """Selection colors depend on focus."""
        self.refresh()

    # --- selection and keys ---------------------------------------------------------

    def _selected_index(self) -> int | None:
        timeline = self.timeline
        if timeline is None or self.selected is None:
            return None
        if isinstance(self.selected, int):
            return timeline.index_of(self.selected)
        for i, pending in enumerate(timeline.pending):
            if pending.client_id == self.selected:
                return len(timeline.messages) + i
        return None

    def select_index(self, index: int) -> None:
        """Select message ``index`` and scroll it into view."""
        timeline, layout = self.timeline, self.layout_
        if timeline is None or layout is None or not len(timeline):
            return
        index = max(0, min(index, len(timeline) - 1))
        message = timeline[index]
        self.selected = message.id or message.client_id
        self.refresh_bindings()  # r, e, d, + apply to this message or not
        top = layout.line_of(index)
        bottom = top + layout.heights[index]
        if top < self.scroll_y:
            self.scroll_to(y=top, animate=False, force=True)
        elif bottom > self.scroll_y + self.size.height:
            self.scroll_to(y=bottom - self.size.height, animate=False, force=True)
        self.refresh()
        self.post_message(self.Selected(message, self))

    def reveal_message(self, message_id: int) -> bool:
        """Select message ``message_id`` and show it a third down the view, with what came
        before and after it (a jump from search, a quote); False if it is not loaded."""
        timeline, layout = self.timeline, self.layout_
        index = timeline.index_of(message_id) if timeline is not None else None
        if index is None or layout is None:
            return False
        self._reveal_pending = False
        top = max(layout.line_of(index) - self.size.height // 3, 0)
        self.scroll_to(y=top, animate=False, force=True)
        self.select_index(index)
        return True

    def _visible_index(self, bottom: bool) -> int | None:
        layout = self.layout_
        if layout is None or not layout.total:
            return None
        y = round(self.scroll_y) + (self.size.height - 1 - self._badge_to_come() if bottom else 0)
        index = layout.index_at(min(y, layout.total - 1))
        return index

    def _badge_to_come(self) -> int:
        """Lines of the view the badge takes on the next layout (it has just appeared,
        and the view has not shrunk yet): they are not on screen."""
        if self.badge_below and self.unseen and self.size.height == self._height_without_badge:
            return 1
        return 0

    def action_select_previous(self) -> None:
        """Select the message above (k)."""
        current = self._selected_index()
        if current is None:
            current = self._visible_index(bottom=True)
            if current is not None:
                self.select_index(current)
            return
        self.select_index(current - 1)

    def action_select_next(self) -> None:
        """Select the message below (j)."""
        current = self._selected_index()
        if current is None:
            current = self._visible_index(bottom=False)
            if current is not None:
                self.select_index(current)
            return
        self.select_index(current + 1)

    def action_top(self) -> None:
        """Jump to the chat's first message (g): its first page loads at once."""
        timeline = self.timeline
        self._reveal_pending = False
        if timeline is not None and timeline.has_more and timeline.oldest_id is not None:
            self.post_message(self.JumpWanted(self, timeline.chat_id, oldest=True))
            return
        self.top_of_loaded()

    def top_of_loaded(self) -> None:
        """Go to the oldest loaded message; older ones load on the way (from the cache
        while offline)."""
        self.select_index(0)
        self.scroll_to(y=0, animate=False, force=True)

    def action_bottom(self) -> None:
        """Jump to the newest message (G) and follow new ones again."""
        self._reveal_pending = False
        if self.timeline is not None and self.timeline.has_newer:
            self.post_message(self.JumpWanted(self, self.timeline.chat_id, oldest=False))
            return
        if self.timeline is not None and len(self.timeline):
            self.select_index(len(self.timeline) - 1)
        self.scroll_to(y=self.max_scroll_y, animate=False, force=True)

    def action_page_up(self) -> None:
        """Scroll a page up."""
        self.scroll_to(y=self.scroll_y - max(self.size.height - 1, 1), animate=False, force=True)

    def action_page_down(self) -> None:
        """Scroll a page down."""
        self.scroll_to(y=self.scroll_y + max(self.size.height - 1, 1), animate=False, force=True)

    def selected_message(self) -> Message | None:
        """The selected message, if any."""
        index = self._selected_index()
        if index is None or self.timeline is None:
            return None
        return self.timeline[index]

    def action_activate(self) -> None:
        """Open the selected message's thread."""
        index = self._selected_index()
        if index is not None and self.timeline is not None:
            self.post_message(self.Activated(self, self.timeline[index]))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """r, e, d and + act only on a selected message they apply to (else the key is
        typed into the composer)."""
        if action != "act":
            return True
        message = self.selected_message()
        act = parameters[0] if parameters else None
        return message is not None and act in ACTS and self.can_act(message, act)

    def action_act(self, act: str) -> None:
        """Act on the selected message (a key's action)."""
        message = self.selected_message()
        if message is not None and act in ACTS:
            self.post_message(self.ActWanted(self, message, act))

    def action_deselect(self) -> None:
        """Clear the selection; Esc again goes back to the composer."""
        if self.selected is None:
            self.screen.focus_next()
            return
        self.selected = None
        self.refresh()
        self.refresh_bindings()
        self.post_message(self.Deselected(self))

    def on_click(self, event: events.Click) -> None:
        """Click selects a message; double click opens its thread."""
        offset = event.get_content_offset(self)
        if offset is None or self.layout_ is None or self.timeline is None:
            return
        line = self._line_at(offset.y)
        index = self.layout_.index_at(line)
        if index is None:
            return
        self.select_index(index)
        if event.button == 3:
            self.post_message(self.MenuWanted(self, self.timeline[index]))
            return
        emoji = self.layout_.reaction_at(index, line - self.layout_.line_of(index), offset.x)
        if emoji is not None:
            self.post_message(self.ReactionClicked(self, self.timeline[index], emoji))
            return
        original = self.layout_.quote_at(index, line - self.layout_.line_of(index))
        if original is not None:
            self.post_message(self.QuoteClicked(self, self.timeline[index], original))
            return
        card = attachment_at(self.layout_, self.timeline, index, line)
        if card is not None:
            self.post_message(AttachmentClicked(self.timeline[index], card))
            return
        if event.chain >= 2:
            self.post_message(self.Activated(self, self.timeline[index]))
