"""A modal that shows what a slash command answered: tables, messages, lines."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from messenger_protocol import format_count, format_time

from ... import commands as slash
from ..robust import Guarded
from ..timeline import author_style, render_markdown
from ..widgets.footer import KeysFooter

__all__ = ["OutputScreen", "render_outputs"]


def render_outputs(outputs: Sequence[slash.Output], tz: tzinfo | None = None) -> RenderableType:
    """Outputs of a command as Rich renderables."""
    parts: list[RenderableType] = []
    for out in outputs:
        match out:
            case slash.TableOut(title=title, columns=columns, rows=rows):
                table = Table(title=title, title_justify="left", title_style="bold", box=None,
                              header_style="dim", expand=True, pad_edge=False)  # fmt: skip
                for column in columns:
                    table.add_column(column)
                for row in rows:
                    table.add_row(*row)
                if not rows:
                    table.add_row(*(["-"] * len(columns)))
                parts.append(table)
            case slash.MessageOut(message=m, chat=chat):
                line = Text()
                line.append(f"#{m.id} ", "dim")
                line.append(m.author, author_style(m.author))
                line.append(f" {format_time(m.created_at, tz=tz)} · {chat}", "dim")
                if m.comment_count:
                    line.append(f" · {format_count(m.comment_count, 'comment')}", "#56b6c2")
                parts.append(line)
                parts.append(Text("  ") + render_markdown(m.text))
            case slash.InfoOut(text=text):
                parts.append(Text(text))
            case slash.ErrorOut(text=text):
                parts.append(Text(text, "#e06c75"))
            case _:
                parts.append(Text(str(out), "dim"))
    return Group(*parts)


class OutputScreen(Guarded, ModalScreen[None]):
    """The answer of a command; Esc closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="output.close"),
    ]

    def __init__(
        self, title: str, outputs: Sequence[slash.Output], tz: tzinfo | None = None
    ) -> None:
        super().__init__()
        self._title = title
        self._outputs = outputs
        self._tz = tz

    def compose(self) -> ComposeResult:
        """A scrollable panel with the command line as its title."""
        with VerticalScroll(id="output-panel") as panel:
            panel.border_title = self._title
            yield Static(render_outputs(self._outputs, self._tz), id="output-body")
        yield KeysFooter()

    def action_close(self) -> None:
        """Close."""
        self.dismiss(None)
