"""The footer of every screen: Textual's, drawn again only when its keys change.

Textual's ``Footer`` recomposes (removes and mounts all its keys) each time the screen's
bindings signal fires -- every focus change, several times while a screen starts -- and
each of its keys starts compact and is made not compact by its data binding, which
restyles it twice. At the main screen's start that was five recomposes of nine keys,
a third of the app's time to its first frame. :class:`KeysFooter` looks the same and
answers clicks and tooltips the same; it recomposes at most once per refresh and only
when what it would show (keys, names, enabled or not, order) changed, and its keys are
born with the footer's compactness.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from ..robust import Guarded

__all__ = ["KeysFooter"]

Shown = tuple[tuple[str, str, str, str, bool, str], ...]
"""What the footer shows: (key, display, description, action, enabled, tooltip) each."""


class KeysFooter(Guarded, Footer):
    """Textual's footer without its repeated recomposes and restyles (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: Shown | None = None
        self._pending = False

    def _showing(self) -> Shown:
        app = self.app
        return tuple(
            (binding.key, app.get_key_display(binding), binding.description, binding.action,
             enabled, tooltip)
            for _node, binding, enabled, tooltip in self.screen.active_bindings.values()
            if binding.show
        )  # fmt: skip

    def bindings_changed(self, screen: Screen[object]) -> None:
        """The screen's bindings changed: recompose after this refresh, if they show."""
        self._bindings_ready = True
        if not screen.app.app_focus or self._pending:
            return
        if self.is_attached and screen is self.screen:
            self._pending = True
            if self._shown is None:  # the first keys: in the screen's first frame
                self.call_later(self._recompose_if_changed)
            else:
                self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        self._pending = False
        if not self.is_attached:
            return
        shown = self._showing()
        if shown != self._shown:
            self._shown = shown
            await self.recompose()

    def compose(self) -> ComposeResult:
        """Textual's keys, compact as the footer is from the start (no second restyle;
        the command palette's key is not bound to the footer's compactness)."""
        for widget in super().compose():
            if isinstance(widget, FooterKey) and not widget.has_class("-command-palette"):
                widget.set_reactive(FooterKey.compact, self.compact)
            yield widget
