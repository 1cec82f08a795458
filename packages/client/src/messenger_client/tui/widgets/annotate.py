"""Dialogs for acting on a message: confirm a deletion, pick a reaction.

Both are small modal screens that answer through ``dismiss``: :class:`ConfirmDelete`
with True or False, :class:`ReactionPicker` with the chosen emoji (None: closed).
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

from ..robust import Guarded

__all__ = ["REACTIONS", "ConfirmDelete", "MessageMenu", "ReactionPicker"]

REACTIONS: tuple[tuple[str, str, str], ...] = (
    ("👍", "thumbs up", "thumbs up yes ok agree +1"),
    ("👎", "thumbs down", "thumbs down no disagree -1"),
    ("❤️", "heart", "heart love"),
    ("😂", "laughing", "joy laugh lol tears"),
    ("🎉", "party", "tada party celebrate hooray"),
    ("😮", "wow", "wow surprised open mouth"),
    ("😢", "sad", "cry sad tear"),
    ("🙏", "thanks", "pray thanks please"),
    ("👀", "eyes", "eyes looking watching"),
    ("🔥", "fire", "fire hot lit"),
    ("✅", "done", "check done yes white heavy check mark"),
    ("❌", "no", "cross no wrong x"),
    ("🚀", "rocket", "rocket ship launch"),
    ("🤔", "thinking", "thinking hmm"),
    ("👏", "clap", "clap applause"),
    ("💯", "hundred", "hundred 100 perfect"),
    ("😄", "smile", "smile happy grin"),
    ("😅", "phew", "sweat smile phew"),
    ("🙂", "slight smile", "slight smile"),
    ("😬", "grimace", "grimace awkward"),
    ("🙌", "hooray", "raised hands hooray"),
    ("💪", "strong", "muscle strong flex"),
    ("⭐", "star", "star"),
    ("☕", "coffee", "coffee tea hot beverage"),
    ("🐛", "bug", "bug insect"),
    ("⚠️", "warning", "warning caution"),
    ("👋", "wave", "wave hello hi bye"),
)
"""The emoji the picker offers: each with its name and the words that find it."""


class ConfirmDelete(Guarded, ModalScreen[bool]):
    """ "Delete this message?" -- the Delete key or button deletes; Esc, n, or Enter on
    Keep (which has the focus) keeps it."""

    DEFAULT_CSS = """
    ConfirmDelete { align: center middle; }
    ConfirmDelete #confirm-panel {
        width: 60; height: auto; border: round $error; background: $surface; padding: 0 1;
    }
    ConfirmDelete #confirm-text { margin: 1 0; }
    ConfirmDelete Horizontal { height: auto; align-horizontal: right; }
    ConfirmDelete Button { margin-left: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "keep", "Keep", id="confirm.keep"),
        # not a letter: typing on after a stray "d" must never delete anything
        Binding("delete", "delete", "Delete", id="confirm.delete"),
    ]

    def __init__(self, excerpt: str) -> None:
        super().__init__()
        self._excerpt = excerpt

    def compose(self) -> ComposeResult:
        """The message's first line and two buttons."""
        with Vertical(id="confirm-panel"):
            yield Label("Delete this message?", classes="pane-title")
            yield Label(self._excerpt, id="confirm-text")
            yield Label("Del deletes, Esc keeps it", classes="hint")
            with Horizontal():
                yield Button("Keep", id="keep")
                yield Button("Delete", id="delete", variant="error")

    def on_mount(self) -> None:
        """Focus on Keep: a stray Enter deletes nothing."""
        self.query_one("#keep", Button).focus()

    @on(Button.Pressed, "#keep")
    def action_keep(self) -> None:
        """Keep the message."""
        self.dismiss(False)

    @on(Button.Pressed, "#delete")
    def action_delete(self) -> None:
        """Delete it."""
        self.dismiss(True)


class ReactionPicker(Guarded, ModalScreen[str | None]):
    """A small searchable list of emoji; Enter or a click picks one, Esc closes."""

    DEFAULT_CSS = """
    ReactionPicker { align: center middle; }
    ReactionPicker #picker-panel {
        width: 44; height: 20; border: round $primary; background: $surface; padding: 0 1;
    }
    ReactionPicker OptionList { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="picker.close"),
        Binding("down", "to_list", "To the list", show=False, id="picker.to_list"),
    ]

    def __init__(self, mine: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self._mine = mine
        """The emoji this user already added (picking one again takes it back)."""

    def compose(self) -> ComposeResult:
        """A search field over the list."""
        with Vertical(id="picker-panel"):
            yield Label("React", classes="pane-title")
            yield Input(placeholder="Search (a word, or paste an emoji)", id="picker-search")
            yield OptionList(id="picker-list")

    def on_mount(self) -> None:
        """Fill the list; typing searches."""
        self._fill("")
        self.query_one("#picker-search", Input).focus()

    def _fill(self, query: str) -> None:
        words = query.strip().lower()
        options = self.query_one("#picker-list", OptionList)
        options.clear_options()
        found = [
            (emoji, name) for emoji, name, keywords in REACTIONS
            if not words or words in f"{name} {keywords}" or words == emoji
        ]  # fmt: skip
        if words and not found and not words.isascii():
            found = [(query.strip(), "")]  # an emoji that is not in the list: take it
        for emoji, name in found:
            label = f"{emoji}  {name}"
            if emoji in self._mine:
                label += "  (yours: takes it back)"
            options.add_option(Option(label, id=emoji))
        if found:
            options.highlighted = 0

    @on(Input.Changed, "#picker-search")
    def _search(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted, "#picker-search")
    def _take_first(self) -> None:
        options = self.query_one("#picker-list", OptionList)
        if options.option_count:
            self.dismiss(options.get_option_at_index(options.highlighted or 0).id)

    @on(OptionList.OptionSelected, "#picker-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_to_list(self) -> None:
        """Down from the search field goes to the list."""
        self.query_one("#picker-list", OptionList).focus()

    def action_close(self) -> None:
        """Close without a reaction."""
        self.dismiss(None)


class MessageMenu(Guarded, ModalScreen[str | None]):
    """What can be done with one message (a right click): answers the chosen act."""

    DEFAULT_CSS = """
    MessageMenu { align: center middle; }
    MessageMenu #menu-panel {
        width: 40; height: auto; border: round $primary; background: $surface; padding: 0 1;
    }
    MessageMenu OptionList { height: auto; max-height: 10; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="menu.close"),
    ]

    def __init__(self, acts: list[tuple[str, str]]) -> None:
        super().__init__()
        self._acts = acts
        """(act, label) pairs, in menu order."""

    def compose(self) -> ComposeResult:
        """The acts as a list."""
        with Vertical(id="menu-panel"):
            yield OptionList(*(Option(label, id=act) for act, label in self._acts))

    def on_mount(self) -> None:
        """Keys work at once."""
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_close(self) -> None:
        """Close, doing nothing."""
        self.dismiss(None)
