"""The composer: a multi-line input where Enter sends and Shift+Enter/Ctrl+J breaks a line.

Tab completes slash commands and logins (again to cycle through the matches). Up in the
empty composer edits your last message of the chat (as in Slack and Element); otherwise Up
on the first line and Down on the last walk through what was sent before, as in a shell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

from textual import events
from textual.message import Message as TextualMessage
from textual.widgets import TextArea

from messenger_protocol import Message

from ..robust import Guarded

__all__ = ["COMPOSER_KEYS", "Completer", "Composer", "EditLast", "Intent"]

Completer = Callable[[str], list[str]]
"""Given the text before the cursor, the completed texts to replace it with."""

EditLast = Callable[[], bool]
"""Begin an edit of the user's last message where the composer is (True), or find none."""

COMPOSER_KEYS: tuple[tuple[str, str], ...] = (
    ("enter", "Send the message or run the /command"),
    ("ctrl+j / shift+enter", "New line"),
    ("tab", "Complete a /command or a @login (again: the next match)"),
    ("up", "In an empty composer: edit your last message here"),
    ("up / down", "On the first / last line: walk through what you sent before"),
    ("any key", "Typed here, even while a list has focus (unless the list acts on it)"),
)
"""The composer's keys (handled as typing, not bindings), for the help screen."""


@dataclass(frozen=True, slots=True)
class Intent:
    """What the next line does instead of posting a new message: replace the text of
    ``message`` (``edit``) or answer it with a quote (``reply``)."""

    act: Literal["edit", "reply"]
    message: Message
    refused: str = ""
    """Why the server refused this edit before (shown above the composer; the text
    given back stays an edit of ``message``)."""


HISTORY_MAX = 200
"""Entries kept in the input history."""


class Composer(Guarded, TextArea):
    """Where messages and slash commands are typed."""

    DEFAULT_CSS = """
    Composer {
        height: auto;
        min-height: 3;
        max-height: 10;
    }
    """

    NEWLINE_KEYS: ClassVar[frozenset[str]] = frozenset({"ctrl+j", "shift+enter"})
    """Keys that break the line. Handled with the typing itself, not as a binding, so a
    fast typist's next characters land after the break, not before it."""

    class Submitted(TextualMessage):
        """The user pressed Enter: send ``text`` (an edit or a reply, with ``intent``)."""

        def __init__(self, composer: Composer, text: str, intent: Intent | None = None) -> None:
            super().__init__()
            self.composer = composer
            self.text = text
            self.intent = intent

    class IntentChanged(TextualMessage):
        """An edit or a reply began (``intent``) or ended (None)."""

        def __init__(self, composer: Composer, intent: Intent | None) -> None:
            super().__init__()
            self.composer = composer
            self.intent = intent

    def __init__(
        self,
        completer: Completer | None = None,
        *,
        placeholder: str = "Message  (Enter sends, Ctrl+J new line, / commands)",
        id: str | None = None,
    ) -> None:
        super().__init__(
            id=id,
            placeholder=placeholder,
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            highlight_cursor_line=False,
            compact=True,
        )
        self.completer = completer
        self.edit_last: EditLast | None = None
        """What Up in the empty composer does first (the screen sets it)."""
        self.reserved_keys: set[str] = set()
        """Keys left to the screen's bindings although they would type a character."""
        self.sent_history: list[str] = []
        self._history_index: int | None = None
        self._draft = ""
        self.intent: Intent | None = None
        """An edit or reply in progress (the next Enter does it)."""
        self._completions: list[str] = []
        self._completion_index = -1

    # --- keys -----------------------------------------------------------------

    def check_consume_key(self, key: str, character: str | None = None) -> bool:
        """Type every printable key except the reserved ones (chat switching)."""
        if key in self.reserved_keys:
            return False
        return super().check_consume_key(key, character)

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key != "tab":
            self._completions = []
        if key == "enter":
            event.stop()
            event.prevent_default()
            self.submit()
            return
        if key in self.NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.action_newline()
            return
        if key == "tab" and self._complete():
            event.stop()
            event.prevent_default()
            return
        if key == "up" and not self.text and self.intent is None and self._edit_last():
            event.stop()
            event.prevent_default()
            return
        row = self.cursor_location[0]
        editing = self.intent is not None and self.intent.act == "edit"
        if not editing and (
            (key == "up" and row == 0 and self._recall(-1))
            or (key == "down" and row == self.document.line_count - 1 and self._recall(+1))
        ):
            event.stop()
            event.prevent_default()
            return
        if not event.is_printable and await self.app._check_bindings(key):
            # A key bound here (Backspace, the arrows, Delete…) acts now, in the order
            # the keys came: left to bubble up to the app, it acted after the letters
            # typed behind it in the same read of the terminal ("noom", Backspace, "n"
            # in one burst gave "noomn").
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)

    def _edit_last(self) -> bool:
        return self.edit_last is not None and self.edit_last()

    def take_stray_paste(self, event: events.Paste) -> None:
        """A paste into a list lands in the composer too."""
        event.stop()
        self.focus()
        self.insert(event.text)

    def action_newline(self) -> None:
        """Insert a line break."""
        self.insert("\n")

    def submit(self) -> None:
        """Post the text (if any) and clear the input."""
        text = self.text.strip("\n").rstrip()
        intent = self.intent
        if intent is not None and intent.act == "edit" and text == intent.message.text.rstrip():
            self.end_intent()  # nothing changed (a file's empty caption too): the edit is over
            return
        if not text.strip():
            return
        if not self.sent_history or self.sent_history[-1] != text:
            self.sent_history.append(text)
            del self.sent_history[:-HISTORY_MAX]
        self._history_index = None
        self.clear()
        if intent is not None:
            # after an edit, what was typed before it comes back
            self.end_intent(keep_text=intent.act != "edit")
        self.post_message(self.Submitted(self, text, intent))

    # --- edit and reply -------------------------------------------------------------

    def begin(self, intent: Intent, text: str | None = None) -> None:
        """Start an edit (the message's text to change, or ``text``) or a reply (the
        text typed so far stays); the next Enter does it, Esc cancels."""
        if intent.act == "edit":
            if self.intent is None or self.intent.act != "edit":
                self._draft = self.text  # given back if the edit is cancelled
            self._set_text(intent.message.text if text is None else text)
        self.intent = intent
        self.focus()
        self.post_message(self.IntentChanged(self, intent))

    def end_intent(self, *, keep_text: bool = False) -> None:
        """Stop editing or replying (Esc, or done); a cancelled edit gives back the
        draft it replaced."""
        intent, self.intent = self.intent, None
        if intent is None:
            return
        if intent.act == "edit" and not keep_text:
            self._set_text(self._draft)
        self.post_message(self.IntentChanged(self, None))

    # --- history --------------------------------------------------------------

    def _recall(self, step: int) -> bool:
        if not self.sent_history:
            return False
        if self._history_index is None:
            if step > 0:
                return False
            self._draft = self.text
            index = len(self.sent_history) - 1
        else:
            index = self._history_index + step
        if index >= len(self.sent_history):
            self._history_index = None
            self._set_text(self._draft)
            return True
        if index < 0:
            return True
        self._history_index = index
        self._set_text(self.sent_history[index])
        return True

    def _set_text(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)

    # --- completion -----------------------------------------------------------

    def _complete(self) -> bool:
        """Complete (or cycle) the text before the cursor; False if nothing to do."""
        if self.completer is None:
            return False
        row, column = self.cursor_location
        if not self._completions:
            before = self.get_text_range((0, 0), (row, column))
            if not before or (before[-1].isspace() and not before.startswith("/")):
                return False
            candidates = self.completer(before)
            if not candidates:
                # Typing is going on: Tab should not jump away from the text.
                return bool(before.strip())
            self._completions = candidates
            self._completion_index = -1
            if len(candidates) > 1:
                words = [c.rstrip().rsplit(" ", 1)[-1] for c in candidates]
                self.app.notify(
                    "  ".join(words[:12]) + (" …" if len(words) > 12 else ""),
                    title="Completions",
                    timeout=3,
                )
        self._completion_index = (self._completion_index + 1) % len(self._completions)
        choice = self._completions[self._completion_index]
        if len(self._completions) == 1 and not choice.endswith(" "):
            choice += " "
        self.replace(choice, (0, 0), (row, column))
        return True
