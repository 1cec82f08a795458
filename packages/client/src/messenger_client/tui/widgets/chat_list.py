"""The chat list: general, group chats and private conversations, with unread badges
and presence dots. Click or Enter opens a chat; j/k/g/G move like in iamb or elia."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message as TextualMessage
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from messenger_protocol import Chat, User

from ..robust import Guarded

__all__ = ["ChatList", "chat_label"]

_ONLINE = Style(color="#98c379")
_OFFLINE = Style(color="#5c6370")
_BADGE = Style(color="#1e1e1e", bgcolor="#e5c07b", bold=True)
_QUIET = Style(dim=True)
_MUTED_BADGE = Style(color="#abb2bf", bgcolor="#3e4451")
_MENTIONS = Style(color="#1e1e1e", bgcolor="#e06c75", bold=True)


def chat_label(
    chat: Chat, users: dict[str, User], number: int | None = None, *, encrypted: bool = False
) -> Table:
    """One row of the list: number key, kind or presence dot, name (a lock before it when
    the chat is end-to-end encrypted; dim with ``⊘`` when muted, ``⊘@`` when only mentions
    get through), mention and unread badges."""
    left = Text(no_wrap=True, overflow="ellipsis")
    if number is not None and number <= 9:
        left.append(f"{number} ", _QUIET)
    else:
        left.append("  ")
    lock = "🔒" if encrypted else ""
    if chat.kind == "direct":
        peer = users.get(chat.peer or "")
        online = peer is not None and peer.online
        left.append("● " if online else "○ ", _ONLINE if online else _OFFLINE)
        left.append(lock + (chat.peer or chat.name.lstrip("@")))
    elif chat.kind == "general":
        left.append("# ", _QUIET)
        left.append(chat.name)
    else:
        left.append("≡ ", _QUIET)
        left.append(lock + chat.name)
    muted = chat.mute != "off"
    if muted:
        left.stylize(_QUIET)
        left.append(" ⊘" if chat.mute == "all" else " ⊘@", _QUIET)  # muted (but mentions)
    elif chat.unread:
        left.stylize("bold")
    count = str(chat.unread) if chat.unread < 1000 else "999+"
    badge = Text("")
    if chat.mentions:
        badge.append(f" @{chat.mentions} ", _MENTIONS)  # shows even in a muted chat
    if chat.unread and not (muted and chat.mentions):
        badge.append(f" {count} ", _MUTED_BADGE if muted else _BADGE)
    grid = Table.grid(expand=True, padding=0)
    grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    grid.add_column(justify="right", no_wrap=True)
    grid.add_row(left, badge)
    return grid


class ChatList(Guarded, OptionList):
    """The chats of the user; posts :class:`ChatList.ChatChosen`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="chats.down"),
        Binding("k", "cursor_up", "Up", show=False, id="chats.up"),
        Binding("g", "first", "First", show=False, id="chats.first"),
        Binding("G", "last", "Last", show=False, id="chats.last"),
    ]

    class ChatChosen(TextualMessage):
        """The user picked a chat (click, Enter)."""

        def __init__(self, chat_id: int) -> None:
            super().__init__()
            self.chat_id = chat_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.chat_ids: list[int] = []
        self.current: int | None = None

    def update_chats(
        self,
        chats: list[Chat],
        users: dict[str, User],
        current: int | None,
        encrypted: frozenset[int] = frozenset(),
    ) -> None:
        """Redraw the list (order, names, badges, dots), keeping the highlight.

        The highlight follows the open chat when that changes; otherwise it stays
        where the user moved it (a redraw must not yank the cursor away).
        """
        moved = current != self.current
        option = self.highlighted_option
        highlighted = int(option.id) if option is not None and option.id else None
        self.current = current
        ids = [c.id for c in chats]
        options = [
            Option(chat_label(c, users, i, encrypted=c.id in encrypted), id=str(c.id))
            for i, c in enumerate(chats, 1)
        ]
        if ids == self.chat_ids:
            for index, option in enumerate(options):
                self.replace_option_prompt_at_index(index, option.prompt)
        else:
            self.chat_ids = ids
            self.set_options(options)
        target = current if moved or highlighted not in ids else highlighted
        if target in ids:
            self.highlighted = ids.index(target)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Open the chosen chat."""
        event.stop()
        if event.option.id is not None:
            self.post_message(self.ChatChosen(int(event.option.id)))
