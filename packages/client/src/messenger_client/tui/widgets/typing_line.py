"""The line under the timeline that says who is typing ("alice is typing…").

:class:`TypingLine` shows the members typing in the open chat, each until the moment
the server's typing event says the notice expires (a newer notice renews it; a message
of theirs ends it). It hides itself when nobody is typing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.timer import Timer
from textual.widgets import Static

from ..robust import Guarded

__all__ = ["TypingLine", "typing_text"]


def typing_text(logins: list[str]) -> str:
    """``alice is typing…``, ``alice and bob are typing…``, ``alice, bob and carol are
    typing…``; more than three fold into a count."""
    if not logins:
        return ""
    if len(logins) == 1:
        return f"{logins[0]} is typing…"
    if len(logins) <= 3:
        return f"{', '.join(logins[:-1])} and {logins[-1]} are typing…"
    return f"{len(logins)} people are typing…"


class TypingLine(Guarded, Static):
    """Who is typing in the open chat; hidden while nobody is."""

    def __init__(self, *, id: str | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__("", id=id)
        self.clock = clock
        self.chat_id: int | None = None
        self._expires: dict[str, float] = {}
        self._timer: Timer | None = None

    def show_typing(self, chat_id: int | None, expires: dict[str, float]) -> None:
        """The typists of ``chat_id`` now (login -> when their notice expires); shown if
        it is the open chat."""
        if chat_id != self.chat_id:
            return
        self._expires = dict(expires)
        self._redraw()

    def open_chat(self, chat_id: int | None) -> None:
        """Another chat is open: nobody is known to type there until they say so."""
        self.chat_id = chat_id
        self._expires = {}
        self._redraw()

    def _redraw(self) -> None:
        now = self.clock()
        self._expires = {login: at for login, at in self._expires.items() if at > now}
        text = typing_text(sorted(self._expires))
        self.update(text)
        self.display = bool(text)
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self._expires and self.is_mounted:
            wait = max(min(self._expires.values()) - now, 0.05)
            self._timer = self.set_timer(wait, self._redraw)
