"""Finding messages: search across chats, the Mentions view, and jumping to a message.

:class:`Finding` is the part of the app that opens the search screen (Ctrl+F, ``/`` in
the message list, ``/search``) and the Mentions view, and takes the user to the chosen
message in its chat with the history around it loaded (older and newer), selected --
also to the original of a reply whose quote was clicked. Search goes through the
command runner, so it falls back to this device's cache while the server is out of
reach.
"""

from __future__ import annotations

import logging
from datetime import tzinfo

from messenger_protocol import Message, MessengerError

from .. import commands as slash
from ..outputs import SearchOut
from .host import Host
from .robust import describe_error
from .screens.find import Found, MentionsScreen, SearchScreen
from .tasks import app_work

__all__ = ["AROUND", "Finding"]

log = logging.getLogger(__name__)

AROUND = 25
"""Messages loaded on each side of a message jumped to."""


class Finding:
    """Search, mentions and jumps to a message, for one app."""

    def __init__(self, app: Host, tz: tzinfo | None) -> None:
        self.app = app
        self.tz = tz
        """Time zone of shown times (None: local)."""

    def search(self, query: str = "") -> None:
        """Open the search screen (with ``query`` already typed)."""
        store = self.app.store
        if store is None or isinstance(self.app.screen, SearchScreen):
            return
        screen = SearchScreen(self.find, me=store.me, tz=self.tz, query=query)
        self.app.push_screen(screen, self._chosen)

    def mentions(self) -> None:
        """Open the Mentions view."""
        store = self.app.store
        if store is None or isinstance(self.app.screen, MentionsScreen):
            return
        screen = MentionsScreen(self.find_mentions, me=store.me, tz=self.tz)
        self.app.push_screen(screen, self._chosen)

    def _chosen(self, message: Message | None) -> None:
        if message is not None:
            self.jump_to(message.chat_id, message.id)

    async def find(self, query: str) -> Found:
        """The hits for ``query`` (from this device's cache while offline)."""
        runner = self.app.runner
        if runner is None:
            return Found((), "Not logged in")
        outputs = await runner.run(slash.ParsedCommand("search", {"query": query}))
        for out in outputs:
            if isinstance(out, SearchOut):
                items = [(h.message, h.chat_name, h.snippet, False) for h in out.hits]
                note = "Searched this device (offline)" if out.offline else ""
                if not items:
                    note = note or "Nothing found"
                elif out.next_before is not None:
                    note = note or "Newest results; refine the query to find older ones"
                return Found(items, note)
            if isinstance(out, slash.ErrorOut):
                return Found((), out.text)
        return Found((), "Nothing found")

    async def find_mentions(self) -> Found:
        """Recent messages that mention this user."""
        client = self.app.client
        if client is None:
            return Found((), "Not logged in")
        try:
            page = await client.mentions()
        except MessengerError as exc:
            return Found((), describe_error(exc, self.app.server))
        items = [(m.message, m.chat_name, None, m.unread) for m in page.mentions]
        return Found(items, "" if items else "Nobody mentioned you yet")

    def jump_to(self, chat_id: int, message_id: int) -> None:
        """Open ``chat_id`` at message ``message_id``, selected, with the history around
        it (loaded first if the chat's timeline does not hold it)."""
        store, main = self.app.store, self.app.main
        if store is None or main is None:
            return
        if chat_id not in store.chats:
            self.app.notify("You are not in that chat any more", severity="warning")
            return
        opened = main.current_chat == chat_id
        if not opened:
            self.app.open_chat(chat_id)
        shown = message_id in store.timeline(chat_id) and main.view.reveal_message(message_id)
        if shown and opened:
            return
        # (also when just opened: this takes the place of its jump to the unread ones)
        self._load_around(chat_id, message_id)

    @app_work(group="jump", exclusive=True)
    async def _load_around(self, chat_id: int, message_id: int) -> None:
        app = self.app
        client, store, main = app.client, app.store, app.main
        if client is None or store is None or main is None:
            return
        try:
            older = await client.history(chat_id, before=message_id + 1, limit=AROUND)
            newer = await client.history(chat_id, after=message_id, limit=AROUND)
        except MessengerError as exc:
            app.notify(describe_error(exc, app.server), severity="error")
            return
        if all(m.id != message_id for m in older.messages):
            app.notify("That message is gone", severity="warning")
            return
        timeline = store.around(chat_id, older, newer)
        if main.current_chat == chat_id:
            main.view.show(timeline)
            main.view.reveal_message(message_id)
