"""The history of one chat as the message view shows it, and how it is laid out in lines.

No Textual here: :class:`Timeline` is the ordered, de-duplicated list of messages of a
chat (plus the sends still pending), and :class:`Layout` turns it into rows of terminal
lines at a given width -- day separators, a header when the author changes, the text
wrapped with Markdown-ish styling -- keeping only line *counts* for every message and
rendering the few that are on screen. Appending or prepending a page costs the new
messages, not the whole history, so a chat with 100,000 messages stays fast.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import accumulate
from typing import Literal, Protocol

from rich._wrap import divide_line  # what Text.wrap uses; lets plain text skip Text
from rich.cells import cell_len
from rich.console import Console
from rich.style import Style
from rich.text import Text

from messenger_protocol import Message, format_count, format_size, format_time

from .markdown import (
    TAB,
    block_height,
    has_blocks,
    plain_inline,
    plain_text,
    render_blocks,
    render_markdown,
)

__all__ = [
    "GROUP_GAP_SECONDS",
    "Layout",
    "SendState",
    "Timeline",
    "TimelineObserver",
    "render_markdown",
]

GROUP_GAP_SECONDS = 300
"""Messages of one author closer than this share a header."""
BODY_INDENT = 2
"""Columns the text of a message is indented under its header."""

SendState = Literal["sent", "pending", "failed", "saving"]

_AUTHOR_COLORS = (
    "#e5c07b",
    "#61afef",
    "#c678dd",
    "#98c379",
    "#e06c75",
    "#56b6c2",
    "#d19a66",
    "#7aa2f7",
)
_DIM = Style(dim=True)
_PENDING = Style(dim=True, italic=True)
_FAILED = Style(color="#e06c75")
_CARD = Style(color="#56b6c2")
_DIVIDER = Style(color="#e06c75", bold=True)
_TOMBSTONE = Style(dim=True, italic=True)
_QUOTE = Style(color="#8a8a8a", italic=True)
_CHIP = Style(color="#d0d0d0", bgcolor="#303030")
_CHIP_MINE = Style(color="#1e1e1e", bgcolor="#61afef", bold=True)
TOMBSTONE = "message deleted"
"""What a deleted message (and a quote of one) shows instead of its text."""
EDITED_MARK = " (edited)"
"""After the text of a message that was edited."""
DIVIDER_LABEL = " new messages "
"""The line above the first unread message of a chat."""


def author_style(login: str) -> Style:
    """A stable color per author, so a conversation is easy to follow."""
    return Style(color=_AUTHOR_COLORS[sum(login.encode()) % len(_AUTHOR_COLORS)], bold=True)


class TimelineObserver(Protocol):
    """Told about every change of a timeline (the layout of the view showing it)."""

    def inserted(self, index: int, count: int) -> None:
        """``count`` items were inserted at ``index``."""

    def changed(self, index: int) -> None:
        """The item at ``index`` changed in place."""

    def removed(self, index: int) -> None:
        """The item at ``index`` was removed."""


@dataclass(eq=False)
class Timeline:
    """The messages of one chat, oldest first, without duplicates, plus pending sends.

    ``messages`` are confirmed by the server and ordered by id; ``pending`` are sends
    the server has not acknowledged yet (``id`` 0, matched later by ``client_id``).
    Every change is reported to ``observer`` so a layout can follow incrementally.
    """

    chat_id: int
    messages: list[Message] = field(default_factory=list)
    pending: list[Message] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)
    has_more: bool = True
    """Older history may exist on the server (or in the cache)."""
    has_newer: bool = False
    """The timeline is a window into the past (after a jump to the first message):
    newer messages exist on the server and load as the view nears the bottom."""
    saving: Container[int] = frozenset()
    """Ids of messages with an edit or a reaction change the server does not have yet
    (the store's outbox, shared by its timelines; shown with a mark)."""
    observer: TimelineObserver | None = None
    _ids: set[int] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.messages.sort(key=_by_id)
        self._ids = {m.id for m in self.messages}

    def __len__(self) -> int:
        return len(self.messages) + len(self.pending)

    def __getitem__(self, index: int) -> Message:
        confirmed = len(self.messages)
        return self.messages[index] if index < confirmed else self.pending[index - confirmed]

    def __iter__(self) -> Iterator[Message]:
        yield from self.messages
        yield from self.pending

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids

    @property
    def oldest_id(self) -> int | None:
        """Id of the oldest loaded message (to page further back from)."""
        return self.messages[0].id if self.messages else None

    @property
    def newest_id(self) -> int | None:
        """Id of the newest confirmed message."""
        return self.messages[-1].id if self.messages else None

    def state(self, message: Message) -> SendState:
        """Whether a message is confirmed, pending or failed (and being retried), or
        confirmed with a change of the user's on its way (``saving``)."""
        if message.id:
            return "saving" if message.id in self.saving else "sent"
        return "failed" if message.client_id in self.failed else "pending"

    def index_of(self, message_id: int) -> int | None:
        """Position of a confirmed message, or None."""
        if message_id not in self._ids:
            return None
        return bisect_left(self.messages, message_id, key=_by_id)

    def add(self, message: Message) -> bool:
        """Add a message from the server; False if it was there already (dedupe by id).

        A pending send with the same ``client_id`` is replaced by it.
        """
        if message.client_id:
            self._drop_pending(message.client_id)
        if message.id in self._ids:
            self.update(message)
            return False
        self._ids.add(message.id)
        if not self.messages or message.id > self.messages[-1].id:
            index = len(self.messages)
            self.messages.append(message)
        else:
            index = bisect_left(self.messages, message.id, key=_by_id)
            self.messages.insert(index, message)
        self._notify_inserted(index, 1)
        return True

    def update(self, message: Message) -> bool:
        """Replace a known message (e.g. its comment count changed)."""
        index = self.index_of(message.id)
        if index is None:
            return False
        self.messages[index] = message
        if self.observer is not None:
            self.observer.changed(index)
        return True

    def add_older(self, messages: list[Message], has_more: bool) -> int:
        """Add a page of older history; returns how many were new."""
        self.has_more = has_more
        fresh = sorted((m for m in messages if m.id not in self._ids), key=_by_id)
        if not fresh:
            return 0
        if self.messages and fresh[-1].id > self.messages[0].id:
            # Not purely older (a gap was filled): insert one by one.
            for message in fresh:
                self.add(message)
            return len(fresh)
        self._ids.update(m.id for m in fresh)
        self.messages[:0] = fresh
        self._notify_inserted(0, len(fresh))
        return len(fresh)

    def remove(self, message_id: int) -> bool:
        """Drop a message that disappeared."""
        index = self.index_of(message_id)
        if index is None:
            return False
        del self.messages[index]
        self._ids.discard(message_id)
        if self.observer is not None:
            self.observer.removed(index)
        return True

    def add_pending(self, message: Message) -> None:
        """Show a send the server has not acknowledged yet."""
        assert message.client_id
        self._drop_pending(message.client_id)
        self.pending.append(message)
        self._notify_inserted(len(self) - 1, 1)

    def set_failed(self, client_id: str, failed: bool) -> None:
        """Mark a pending send as failed (it stays, and is retried) or pending again."""
        if failed:
            self.failed.add(client_id)
        else:
            self.failed.discard(client_id)
        for i, pending in enumerate(self.pending):
            if pending.client_id == client_id and self.observer is not None:
                self.observer.changed(len(self.messages) + i)

    def _drop_pending(self, client_id: str) -> None:
        for i, pending in enumerate(self.pending):
            if pending.client_id == client_id:
                del self.pending[i]
                self.failed.discard(client_id)
                if self.observer is not None:
                    self.observer.removed(len(self.messages) + i)
                return

    def _notify_inserted(self, index: int, count: int) -> None:
        if self.observer is not None:
            self.observer.inserted(index, count)


def _by_id(message: Message) -> int:
    return message.id


class Layout:
    """A :class:`Timeline` laid out in lines at one width.

    Keeps the line count of every message and their prefix sums (``offsets``), so
    finding the message at a line is a bisect and the total height is known without
    rendering. It observes its timeline and re-measures only what a change touches
    (a message's header depends on the one before it, so its successor too).
    """

    def __init__(
        self,
        timeline: Timeline,
        width: int,
        me: str = "",
        tz: tzinfo | None = None,
        divider_after: int | None = None,
    ) -> None:
        self.timeline = timeline
        self.width = max(width, BODY_INDENT + 8)
        self.me = me
        self.tz = tz
        self._console = Console(width=self.width, color_system="truecolor")
        now = time.time()
        local = datetime.fromtimestamp(now, tz) if tz else datetime.fromtimestamp(now).astimezone()
        offset = local.utcoffset() or timedelta(0)
        # One offset for the whole history keeps day keys cheap; DST shifts are an hour.
        self._offset = offset.total_seconds()
        self.heights: list[int] = []
        self.offsets: list[int] = [0]
        self.divider_after = divider_after
        """Id of the last read message when the chat was opened: a "new messages" line
        sits above the first message after it (None: no line)."""
        self.listener: Callable[[int], None] | None = None
        """Called with the first changed index after every change (the view re-scrolls)."""
        self.relayout()
        timeline.observer = self

    def detach(self) -> None:
        """Stop following the timeline (another layout takes over)."""
        if self.timeline.observer is self:
            self.timeline.observer = None

    @property
    def total(self) -> int:
        """Height of the whole timeline in lines."""
        return self.offsets[-1]

    def set_divider(self, after: int | None) -> None:
        """Put the "new messages" line above the first message newer than ``after``."""
        if after == self.divider_after:
            return
        old = self.divider_index()
        self.divider_after = after
        new = self.divider_index()
        for index in sorted({i for i in (old, new) if i is not None}):
            self._remeasure(index, index + 1)

    def history_start_known(self) -> None:
        """The timeline learned it holds the chat's first message (no older history):
        the divider may now sit above that one."""
        if self.divider_index() == 0:
            self._remeasure(0, 1)

    def divider_index(self) -> int | None:
        """Index of the message the "new messages" line sits above, if it is loaded."""
        after = self.divider_after
        messages = self.timeline.messages
        if after is None or not messages or messages[-1].id <= after:
            return None
        index = bisect_right(messages, after, key=_by_id)
        if index == 0 and self.timeline.has_more:
            return None  # the first unread one may be older than what is loaded
        return index

    def is_divider(self, index: int) -> bool:
        """Whether the "new messages" line sits above message ``index``."""
        after = self.divider_after
        if after is None or index >= len(self.timeline.messages):
            return False
        message = self.timeline.messages[index]
        if message.id <= after:
            return False
        if index == 0:
            return not self.timeline.has_more
        return self.timeline.messages[index - 1].id <= after

    def relayout(self) -> None:
        """Measure every message again."""
        self.heights = [self._height(i) for i in range(len(self.timeline))]
        self.offsets = list(accumulate(self.heights, initial=0))

    # --- TimelineObserver -------------------------------------------------------

    def inserted(self, index: int, count: int) -> None:
        """Measure the new items and the one after them."""
        self.heights[index:index] = [0] * count
        self._remeasure(index, index + count + 1)

    def changed(self, index: int) -> None:
        """Measure the item and the one after it."""
        self._remeasure(index, index + 2)

    def removed(self, index: int) -> None:
        """Forget the item, measure the one that took its place."""
        del self.heights[index]
        self._remeasure(index, index + 1)

    def _remeasure(self, start: int, stop: int) -> None:
        stop = min(stop, len(self.heights))
        for i in range(start, stop):
            self.heights[i] = self._height(i)
        if start == len(self.offsets) - 1 and stop == len(self.heights):
            # Appended at the end: extend the prefix sums instead of rebuilding them.
            total = self.offsets[-1]
            for i in range(start, stop):
                total += self.heights[i]
                self.offsets.append(total)
        else:
            sums = accumulate(self.heights[start:], initial=self.offsets[start])
            next(sums)
            del self.offsets[start + 1 :]
            self.offsets.extend(sums)
        if self.listener is not None:
            self.listener(start)

    # --- lookups ------------------------------------------------------------------

    def index_at(self, y: int) -> int | None:
        """Index of the message that line ``y`` belongs to."""
        if y < 0 or y >= self.total:
            return None
        return bisect_right(self.offsets, y) - 1

    def line_of(self, index: int) -> int:
        """First line of message ``index``."""
        return self.offsets[index]

    # --- measuring and rendering ---------------------------------------------------

    def _day(self, ts: float) -> int:
        return int((ts + self._offset) // 86400)

    def _starts(self, index: int) -> tuple[bool, bool]:
        """(new day, new group) for message ``index``."""
        message = self.timeline[index]
        if index == 0:
            return True, True
        previous = self.timeline[index - 1]
        new_day = self._day(message.created_at) != self._day(previous.created_at)
        new_group = (
            new_day
            or self.is_divider(index)
            or message.author != previous.author
            or message.created_at - previous.created_at > GROUP_GAP_SECONDS
        )
        return new_day, new_group

    def _height(self, index: int) -> int:
        message = self.timeline[index]
        new_day, new_group = self._starts(index)
        height = 0
        if new_day:
            height += 1
        if self.is_divider(index):
            height += 1
        if new_group:
            # a blank line between groups (the divider line takes its place)
            height += 1 if new_day or index == 0 or self.is_divider(index) else 2
        body_width = self.width - BODY_INDENT
        if message.reply_to is not None:
            height += 1
        if message.reactions:
            height += len(self._chips(message).wrap(self._console, body_width))
        if message.deleted_at is not None:
            return height + 1 + (1 if message.comment_count else 0)
        text = message.text.replace("\t", TAB)
        suffix = self._suffix(message)
        if has_blocks(text):
            # Code, quotes, lists: counted by rendering them (memoised).
            height += block_height(message.text, body_width, suffix)
        elif "\n" not in text and text.isascii() and len(text) + len(suffix) <= body_width:
            # The common case: one short line. Markup only ever removes characters.
            height += 1
        else:
            # Wrap the plain string as Text.wrap would, without building styled Text.
            plain = plain_inline(text) + suffix
            for line in plain.split("\n"):
                height += len(divide_line(line, body_width, fold=True)) + 1
        return height + len(message.attachments) + (1 if message.comment_count else 0)

    def _suffix(self, message: Message) -> str:
        """What follows the text: the send state, or that it was edited."""
        state = self.timeline.state(message)
        suffix = _SUFFIX.get(state, "") if state != "saving" else ""
        if message.edited_at is not None:
            suffix += EDITED_MARK
        return suffix + _SUFFIX["saving"] if state == "saving" else suffix

    def _body_lines(self, message: Message, width: int) -> list[Text]:
        """The text of a message (with its suffix) in lines of ``width`` cells."""
        if message.deleted_at is None and has_blocks(message.text):
            state = self.timeline.state(message)
            suffix = Text(_SUFFIX.get(state, "") if state != "saving" else "", _state_style(state))
            if message.edited_at is not None:
                suffix.append(EDITED_MARK, _DIM)
            if state == "saving":
                suffix.append(_SUFFIX[state], _DIM)
            lines = render_blocks(message.text, width, self._console, me=self.me, suffix=suffix)
            if state in ("pending", "failed"):
                for line in lines:
                    line.stylize_before(_PENDING)
            return lines
        return list(self._body(message).wrap(self._console, width))

    def _body(self, message: Message) -> Text:
        if message.deleted_at is not None:
            return Text(TOMBSTONE, _TOMBSTONE)
        body = render_markdown(message.text, self.me) if message.text else Text("")
        state = self.timeline.state(message)
        if state in ("pending", "failed"):
            body.stylize(_PENDING)
            body.append(_SUFFIX[state], _state_style(state))
        if message.edited_at is not None:
            body.append(EDITED_MARK, _DIM)
        if state == "saving":
            body.append(_SUFFIX[state], _DIM)
        return body

    def _quote(self, message: Message) -> Text:
        """The one line above a reply: whom it answers and how that began."""
        quote = message.reply_to
        assert quote is not None
        line = Text(" " * BODY_INDENT + "↱ ", _QUOTE)
        line.append(quote.author, author_style(quote.author))
        line.append(" ")
        if quote.deleted:
            line.append(TOMBSTONE, _TOMBSTONE)
        else:
            first = plain_text(quote.text).strip().split("\n", 1)[0]
            line.append(first, _QUOTE)  # markup shown plain
        line.truncate(self.width, overflow="ellipsis")
        return line

    def _chips(self, message: Message) -> Text:
        """Reactions as ``👍 3`` chips, the user's own ones highlighted."""
        chips = Text()
        for i, reaction in enumerate(message.reactions):
            if i:
                chips.append(" ")
            mine = self.me in reaction.users
            chips.append(f" {reaction.emoji} {reaction.count} ", _CHIP_MINE if mine else _CHIP)
        return chips

    def lines(self, index: int) -> list[Text]:
        """The rendered lines of message ``index`` (exactly ``heights[index]`` of them)."""
        message = self.timeline[index]
        new_day, new_group = self._starts(index)
        out: list[Text] = []
        if new_day:
            out.append(self._day_separator(message.created_at))
        divider = self.is_divider(index)
        if divider:
            side = max(self.width - cell_len(DIVIDER_LABEL), 2)
            out.append(Text("─" * (side // 2) + DIVIDER_LABEL + "─" * (side - side // 2), _DIVIDER))
        if new_group:
            if not new_day and not divider and index:
                out.append(Text(""))
            header = Text(message.author, author_style(message.author))
            header.append("  ")
            header.append(self._clock(message.created_at), _DIM)
            out.append(header)
        body_width = self.width - BODY_INDENT
        indent = " " * BODY_INDENT
        if message.reply_to is not None:
            out.append(self._quote(message))
        for line in self._body_lines(message, body_width):
            out.append(Text(indent) + line)
        for attachment in message.attachments:
            card = Text(indent)
            card.append(f"▤ {attachment.name}", _CARD)
            card.append(f"  {format_size(attachment.size)} · {attachment.mime}", _DIM)
            card.truncate(self.width, overflow="ellipsis")
            out.append(card)
        if message.reactions:
            for line in self._chips(message).wrap(self._console, body_width):
                out.append(Text(indent) + line)
        if message.comment_count:
            out.append(Text(f"{indent}↳ {format_count(message.comment_count, 'comment')}", _CARD))
        return out

    def quote_at(self, index: int, line: int) -> int | None:
        """Id of the message that message ``index`` answers, if line ``line`` of it
        (counted from the message's first) is its quote."""
        message = self.timeline[index]
        if message.reply_to is None:
            return None
        new_day, new_group = self._starts(index)
        divider = self.is_divider(index)
        above = int(new_day) + int(divider)
        if new_group:
            above += 1 + (0 if new_day or divider or not index else 1)
        return message.reply_to.id if line == above else None

    def reaction_at(self, index: int, line: int, column: int) -> str | None:
        """The emoji of the reaction chip at ``column`` of line ``line`` of message
        ``index`` (lines counted from the message's first), if a chip is there."""
        if not self.timeline[index].reactions:
            return None
        lines = self.lines(index)
        if not 0 <= line < len(lines):
            return None
        text = lines[line]
        for span in text.spans:
            if span.style not in (_CHIP, _CHIP_MINE):
                continue
            start = cell_len(text.plain[: span.start])
            chip = text.plain[span.start : span.end]
            if start <= column < start + cell_len(chip):
                return chip.split()[0]
        return None

    def _clock(self, ts: float) -> str:
        return format_time(ts, tz=self.tz, form="clock")

    def _day_separator(self, ts: float) -> Text:
        label = f" {format_time(ts, tz=self.tz, form='day')} "
        side = max(self.width - cell_len(label), 2)
        left = side // 2
        return Text("─" * left + label + "─" * (side - left), _DIM)


_SUFFIX: dict[str, str] = {
    "pending": "  ⋯ sending",
    "failed": "  ⚠ not sent, retrying",
    "saving": "  ⋯ saving",
}


def _state_style(state: SendState) -> Style:
    return _FAILED if state == "failed" else _DIM


def utc() -> tzinfo:
    """The UTC timezone (for deterministic tests and snapshots)."""
    return UTC
