"""People: who is online, contacts, private chats, and the lists that show them.

:class:`People` is the part of the app that tells the main screen what its chat list
and people panel show, from the store (nobody shows as online while disconnected), as
typed messages (:class:`~.messages.ChatsChanged`, :class:`~.messages.PeopleChanged`)
the screen redraws its widgets from; it opens a private chat (starting it on the server
the first time), adds and removes contacts, and completes logins and chat names in the
composer.
"""

from __future__ import annotations

import logging

import msgspec

from messenger_protocol import Chat, MessengerError, User

from .. import commands as slash
from .host import Host
from .messages import ChatsChanged, PeopleChanged
from .robust import describe_error
from .tasks import app_work

__all__ = ["People"]

log = logging.getLogger(__name__)


class People:
    """Presence, contacts and private chats, for one app."""

    def __init__(self, app: Host) -> None:
        self.app = app

    def presence(self) -> dict[str, User]:
        """Users as shown: while disconnected nobody is known to be online."""
        store = self.app.store
        if store is None:
            return {}
        if self.app.connection.state == "connected":
            return store.users
        return {login: msgspec.structs.replace(u, online=False) for login, u in store.users.items()}

    def refresh_chat_list(self, *, at_once: bool = False) -> None:
        """Redraw the chat list from the store (and let the runner know the chats);
        ``at_once``: now, in the frame being made, not after the screen's queued messages."""
        store, main, runner = self.app.store, self.app.main, self.app.runner
        if store is None or main is None or not main.is_mounted:
            return
        chats = ChatsChanged(store.sorted_chats(), self.presence(), store.encrypted_chats())
        if at_once:
            main.show_chats(chats)
        else:
            main.post_message(chats)
        if runner is not None:
            for chat in store.chats.values():
                runner.remember(chat)

    def refresh(self) -> None:
        """Redraw the people panel and the chat list (presence shows in both)."""
        store, main = self.app.store, self.app.main
        if store is None or main is None or not main.is_mounted:
            return
        presence = self.presence()
        main.post_message(PeopleChanged(presence, dict(store.contacts)))
        main.post_message(ChatsChanged(store.sorted_chats(), presence, store.encrypted_chats()))

    def complete(self, before: str) -> list[str]:
        """Tab completion of commands, logins and chat names."""
        store = self.app.store
        if store is None:
            return []
        chats = [c.name for c in store.chats.values()]
        return slash.complete(before, store.logins(), chats)

    def open_direct(self, login: str) -> None:
        """Open the private conversation with ``login`` (created on first use)."""
        store = self.app.store
        if store is None:
            return
        chat = store.direct_chat(login)
        if chat is not None:
            self.app.open_chat(chat.id)
            if self.app.main is not None:
                self.app.main.composer.focus()
            return
        self._open_direct(login)

    @app_work(group="direct")
    async def _open_direct(self, login: str) -> None:
        app = self.app
        chat = await self.start_direct(login)
        if chat is None:
            return
        app.open_chat(chat.id)
        if app.main is not None:
            app.main.composer.focus()

    async def start_direct(self, login: str) -> Chat | None:
        """The private chat with ``login``, started on the server (None: refused, which
        the user is told in one line)."""
        app = self.app
        client, store = app.client, app.store
        if client is None or store is None:
            return None
        try:
            chat = await client.open_direct(login)
        except MessengerError as exc:
            app.notify(describe_error(exc, app.server), severity="error")
            return None
        store.upsert_chat(chat)
        app.refresh_chat_list()
        return chat

    @app_work(group="contacts")
    async def change_contact(self, login: str, add: bool) -> None:
        """Add ``login`` to the contacts (or remove them), then show the new list."""
        app = self.app
        client, store = app.client, app.store
        if client is None or store is None:
            return
        try:
            if add:
                await client.add_contact(login)
            else:
                await client.del_contact(login)
            store.set_contacts((await client.contacts()).contacts)
        except MessengerError as exc:
            app.notify(describe_error(exc, app.server), severity="error")
            return
        self.refresh()
        app.notify(f"{login} {'added to' if add else 'removed from'} your contacts", timeout=3)
