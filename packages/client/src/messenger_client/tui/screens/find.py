"""Finding messages across chats: the search screen (Ctrl+F) and the Mentions view.

Both are lists of messages, each with its chat, author and time over a line of its
text, that answer through ``dismiss`` with the chosen message (None: closed); the app
then jumps to it in its chat, with the history around it. :class:`SearchScreen` asks
again as the query changes (live results, newest first, the words it matched
highlighted); :class:`MentionsScreen` lists the messages that mention the user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from functools import partial
from typing import ClassVar

from rich.console import Group
from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option
from textual.worker import Worker

from messenger_protocol import Message, Span, format_time

from ..host import TakesEarlyKeys
from ..markdown import plain_snippet, plain_text, render_markdown
from ..robust import Guarded
from ..timeline import author_style

__all__ = ["Found", "MentionsScreen", "SearchScreen", "found_prompt"]

_MATCH = Style(color="#1e1e1e", bgcolor="#e5c07b", bold=True)
_WHERE = Style(color="#56b6c2")
_DIM = Style(dim=True)
_UNREAD = Style(color="#e06c75", bold=True)
SEARCH_DEBOUNCE_SECONDS = 0.15
"""A query is asked once typing pauses this long (each key does not ask the server)."""


@dataclass(frozen=True)
class Found:
    """What a search or the mentions list found: messages with their chat's name."""

    items: Sequence[tuple[Message, str, Sequence[Span] | None, bool]]
    """(message, chat name, highlighted snippet or None, unread) per hit, newest first."""
    note: str = ""
    """A line about the answer: searched offline, a refused query, nothing found."""


def found_prompt(
    message: Message,
    chat: str,
    snippet: Sequence[Span] | None,
    *,
    me: str,
    tz: tzinfo | None,
    unread: bool = False,
) -> Group:
    """One hit: ``# chat · author · time`` over its snippet (matches highlighted) or its
    first line, as plain text (``**`` or a code fence would only be noise there)."""
    head = Text(no_wrap=True, overflow="ellipsis")
    head.append(chat if chat.startswith("@") else f"# {chat}", _WHERE)
    head.append("  ")
    head.append(message.author, author_style(message.author))
    head.append("  " + format_time(message.created_at, tz=tz), _DIM)
    if unread:
        head.append("  unread", _UNREAD)
    if snippet is not None:
        body = Text(no_wrap=True, overflow="ellipsis")
        for span in plain_snippet(snippet):  # the words, not the message's markup
            body.append(span.text.replace("\n", " "), _MATCH if span.match else None)
    else:
        first = plain_text(message.text).strip().split("\n", 1)[0] or "(a file)"
        body = render_markdown(first, me)
        body.no_wrap, body.overflow = True, "ellipsis"
    return Group(head, Text("  ") + body)


class _FoundList(Guarded, ModalScreen[Message | None]):
    """A list of found messages; Enter or a click answers the chosen one."""

    DEFAULT_CSS = """
    _FoundList { align: center middle; }
    _FoundList #found-panel {
        width: 90%; max-width: 100; height: 80%; border: round $primary;
        background: $surface; padding: 0 1;
    }
    _FoundList OptionList { height: 1fr; }
    _FoundList #found-note { color: $text-muted; height: auto; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="found.close"),
    ]

    def __init__(self, title: str, *, me: str, tz: tzinfo | None) -> None:
        super().__init__()
        self._title = title
        self._me = me
        self._tz = tz
        self._messages: list[Message] = []

    def _fields(self) -> ComposeResult:
        yield from ()

    def compose(self) -> ComposeResult:
        """Title, the screen's own fields, the list and a note line."""
        with Vertical(id="found-panel"):
            yield Label(self._title, classes="pane-title")
            yield from self._fields()
            yield OptionList(id="found-list")
            yield Label("", id="found-note")

    def show_found(self, found: Found) -> None:
        """Replace the list with what was found."""
        options = self.query_one("#found-list", OptionList)
        options.clear_options()
        self._messages = [message for message, *_ in found.items]
        for i, (message, chat, snippet, unread) in enumerate(found.items):
            prompt = found_prompt(message, chat, snippet, me=self._me, tz=self._tz, unread=unread)
            options.add_option(Option(prompt, id=str(i)))
        if found.items:
            options.highlighted = 0
        self.query_one("#found-note", Label).update(found.note)

    @on(OptionList.OptionSelected, "#found-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.dismiss(self._messages[int(event.option.id)])

    def action_close(self) -> None:
        """Close, going nowhere."""
        self.dismiss(None)


class SearchScreen(TakesEarlyKeys, _FoundList):
    """Search across chats (Ctrl+F, or / outside a composer): results as you type, Enter
    jumps to the first (or, from the list, the highlighted) one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down", "to_list", "To the list", show=False, id="search.to_list"),
    ]

    def __init__(
        self,
        search: Callable[[str], Awaitable[Found]],
        *,
        me: str,
        tz: tzinfo | None,
        query: str = "",
    ) -> None:
        super().__init__("Search", me=me, tz=tz)
        self._search = search
        self._query = query
        self.asked: list[str] = []
        """The queries answered so far, in order (the newest is on screen)."""

    def _fields(self) -> ComposeResult:
        yield Input(
            self._query,
            placeholder='Words, "a phrase", in:chat from:login before:/after:YYYY-MM-DD has:file',
            id="search-query",
        )

    def on_mount(self) -> None:
        """Typing searches at once."""
        self.query_one("#search-query", Input).focus()
        if self._query.strip():
            self._ask(self._query, at_once=True)

    def take_early_key(self, event: events.Key) -> bool:
        """A printable key typed before the query field has the focus -- the words after
        a "/" typed at once in the message list -- goes into the query, not nowhere."""
        if self.focused is not None or not event.is_printable or not event.character:
            return False
        fields = self.query("#search-query").results(Input)
        field = next(fields, None)
        if field is None:  # not composed yet: it starts with the query
            self._query += event.character
        else:
            field.insert_text_at_cursor(event.character)
        return True

    @on(Input.Changed, "#search-query")
    def _changed(self, event: Input.Changed) -> None:
        self._ask(event.value)

    def _ask(self, query: str, *, at_once: bool = False) -> Worker[None]:
        # the function, not a coroutine: a worker cancelled by the next key before it
        # starts leaves no coroutine that was never awaited (a RuntimeWarning)
        return self.run_worker(
            partial(self._answer, query, at_once), group="search", exclusive=True
        )

    async def _answer(self, query: str, at_once: bool) -> None:
        if not query.strip():
            self.show_found(Found(()))
            return
        if not at_once:
            # a newer key press cancels this worker (exclusive) before it asks
            await asyncio.sleep(SEARCH_DEBOUNCE_SECONDS)
        found = await self._search(query)
        self.show_found(found)
        self.asked.append(query)

    @on(Input.Submitted, "#search-query")
    def _take_highlighted(self) -> None:
        options = self.query_one("#found-list", OptionList)
        if options.option_count:
            self.dismiss(self._messages[options.highlighted or 0])

    def action_to_list(self) -> None:
        """Down from the query goes to the results."""
        self.query_one("#found-list", OptionList).focus()


class MentionsScreen(_FoundList):
    """Messages that mention the user, across chats, newest first; Enter jumps."""

    def __init__(self, load: Callable[[], Awaitable[Found]], *, me: str, tz: tzinfo | None) -> None:
        super().__init__("Mentions of you", me=me, tz=tz)
        self._load = load
        self.loaded = False

    def on_mount(self) -> None:
        """Ask for the mentions; the list has the keys."""
        self.query_one("#found-list", OptionList).focus()
        self.query_one("#found-note", Label).update("Loading…")
        self.run_worker(self._fill(), group="mentions", exclusive=True)

    async def _fill(self) -> None:
        self.show_found(await self._load())
        self.loaded = True
