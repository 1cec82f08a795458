"""The help screen (``/help``, F1, the palette): every slash command and every key, with a
search field. Generated from the command table and the bindings, so it cannot drift."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingsMap, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label

from ... import commands as slash
from ..robust import Guarded
from ..widgets.chat_list import ChatList
from ..widgets.composer import COMPOSER_KEYS
from ..widgets.footer import KeysFooter
from ..widgets.message_view import MessageView
from ..widgets.users_panel import UsersPanel

__all__ = ["HelpRow", "HelpScreen", "help_rows"]


class HelpRow(NamedTuple):
    """One row of the help screen; a search looks at every field."""

    area: str
    keys: str
    """Keys or a command's usage, as shown."""
    what: str
    """What it does, as shown."""
    words: str = ""
    """More words a search finds it by, not shown: a key's short name ("Prev chat")
    and its key names as bound ("alt+up")."""


_AREAS: tuple[tuple[str, str], ...] = (
    ("App", "MessengerApp"),
    ("Main screen", "MainScreen"),
    ("Messages", "MessageView"),
    ("Chats list", "ChatList"),
    ("People list", "UsersPanel"),
)
_ALWAYS = (HelpRow("App", "ctrl+p", "Command palette: every action, command and chat"),)


def _binding_rows(
    area: str,
    bindings: Sequence[BindingType],
    app: App[Any],
    keymap: Mapping[str, str],
    ids: set[str],
) -> Iterable[HelpRow]:
    """Rows of ``bindings``; a binding id listed in an earlier area (``ids``) is left out
    (the main screen repeats the app's F1 to show it first in its footer)."""
    seen: set[str] = set()
    bound = BindingsMap(bindings)
    if keymap:
        bound.apply_keymap(dict(keymap))
    for group in bound.key_to_bindings.values():
        for binding in group:
            what = binding.tooltip or binding.description
            name = binding.id or binding.action
            if not what or name in seen or name in ids:
                continue
            seen.add(name)
            if binding.id:
                ids.add(binding.id)
            same = [
                b for g in bound.key_to_bindings.values() for b in g if (b.id or b.action) == name
            ]
            keys = [app.get_key_display(b) for b in same]
            words = " ".join([binding.description, *(b.key for b in same)])
            yield HelpRow(area, " / ".join(dict.fromkeys(keys)), what, words)


def help_rows(app: App[Any], keymap: Mapping[str, str] | None = None) -> list[HelpRow]:
    """Every command (from :data:`slash.COMMANDS`) and key (from the bindings, after the
    user's keymap) as rows of the help screen."""
    from .main import MainScreen

    classes: dict[str, Sequence[BindingType]] = {
        "MessengerApp": type(app).BINDINGS,
        "MainScreen": MainScreen.BINDINGS,
        "MessageView": MessageView.BINDINGS,
        "ChatList": ChatList.BINDINGS,
        "UsersPanel": UsersPanel.BINDINGS,
    }
    remap = dict(keymap or {})
    rows: list[HelpRow] = [
        HelpRow("Command", spec.usage, spec.help[:1].upper() + spec.help[1:])
        for spec in slash.COMMANDS.values()
    ]
    rows.append(HelpRow("Command", "text", "Text without a leading / goes to the open chat"))
    rows += [HelpRow("Composer", keys, what) for keys, what in COMPOSER_KEYS]
    rows += list(_ALWAYS)
    ids: set[str] = set()
    for area, cls in _AREAS:
        rows += _binding_rows(area, classes[cls], app, remap, ids)
    return rows


class HelpScreen(Guarded, ModalScreen[None]):
    """Commands and keys; type to filter, Esc closes."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen #help-panel {
        width: 90%; height: 90%; border: round $primary; background: $surface; padding: 0 1;
    }
    HelpScreen #help-table { height: 1fr; }
    HelpScreen #help-count { color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="help.close"),
        Binding("down", "focus_table", "To the list", show=False, id="help.to_list"),
    ]

    def __init__(self, rows: Sequence[HelpRow], query: str = "") -> None:
        super().__init__()
        self.rows = list(rows)
        self._query = query

    def compose(self) -> ComposeResult:
        """A search field over a table."""
        with Vertical(id="help-panel"):
            yield Label("Help: commands and keys", classes="pane-title")
            yield Input(self._query, placeholder="Search (a command, a key, a word)",
                        id="help-search")  # fmt: skip
            yield Label("", id="help-count")
            yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
        yield KeysFooter()

    def on_mount(self) -> None:
        """Fill the table, the search field focused."""
        table = self.query_one("#help-table", DataTable)
        table.add_columns("where", "keys / command", "what it does")
        self._fill(self._query)
        self.query_one("#help-search", Input).focus()

    def matching(self, query: str) -> list[HelpRow]:
        """Rows where every word of ``query`` appears (any case, any column)."""
        words = query.lower().split()
        return [row for row in self.rows if all(w in " ".join(row).lower() for w in words)]

    def _fill(self, query: str) -> None:
        table = self.query_one("#help-table", DataTable)
        table.clear()
        shown = self.matching(query)
        for row in shown:
            # "[chat]" is text, not markup
            table.add_row(Text(row.area), Text(row.keys), Text(row.what))
        count = self.query_one("#help-count", Label)
        count.update(f"{len(shown)} of {len(self.rows)}" if query.strip() else "")

    @on(Input.Changed, "#help-search")
    def _search(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def action_focus_table(self) -> None:
        """Down from the search field moves into the list."""
        self.query_one("#help-table", DataTable).focus()

    async def action_dismiss(self, result: None = None) -> None:
        """Close."""
        self.dismiss(result)
