"""Group chats as live events change them: join requests, decisions, invitations.

:class:`Groups` is the part of the app that shows join requests to owners (the bar
above the messages), announces a join once, follows a chat's new title, and leaves a
chat the user is out of. The dialogs (new chat, join, invite, links, members) are in
:mod:`.screens.groups`.
"""

from __future__ import annotations

import logging

from messenger_protocol import (
    GENERAL_CHAT_ID,
    Chat,
    ChatLeft,
    ChatUpdated,
    Event,
    JoinDecided,
    JoinRequested,
    MessengerError,
    Reset,
)

from .host import Host
from .screens.groups import bar_of, find_bar
from .tasks import app_work

__all__ = ["Groups"]

log = logging.getLogger(__name__)


class Groups:
    """Join requests and group membership as it changes, for one app."""

    def __init__(self, app: Host) -> None:
        self.app = app
        self.known: set[int] = set()
        """Chats the user is known to be in (so joining one is announced once)."""

    def add_chat(self, chat: Chat, *, open_it: bool) -> None:
        """A chat the user is in now (created, joined): into the list, and open it."""
        store = self.app.store
        if store is None:
            return
        store.upsert_chat(chat)
        self.known.add(chat.id)
        self.app.refresh_chat_list()
        if open_it:
            self.app.open_chat(chat.id)

    def event(self, event: Event) -> None:
        """React to a live event: join requests for owners, decisions for requesters."""
        app, known = self.app, self.known
        if app.main is None or not app.main.is_mounted:
            return
        me = app.store.me if app.store is not None else ""
        match event:
            case JoinRequested(request=request):
                bar_of(app).add(request)
                how = "with an invite link" if request.with_key else "without a link"
                app.notify(
                    f"{request.login} asks to join {request.chat_name} ({how}). "
                    "Approve it above the messages.",
                    title="Join request",
                    timeout=8,
                )
            case JoinDecided(chat_id=chat_id, login=login) if login != me:
                # On the owner's devices: settled here or on another device, so it goes.
                bar = find_bar(app)
                if bar is not None:
                    bar.settled(chat_id, login)
            case JoinDecided(chat_id=chat_id, chat_name=name, approved=approved):
                if not approved:
                    app.notify(
                        f"The owner of {name} said no", title="Join request", severity="warning"
                    )
                elif chat_id not in known:
                    known.add(chat_id)
                    app.notify(f"You are in {name} now", title="Join request approved", timeout=6)
            case ChatUpdated(chat=chat) if chat.kind == "group":
                app.main.update_title(chat)
                if chat.id not in known and chat.owner != me:
                    # Invited (or approved, when this comes before the decision): say so once.
                    app.notify(f"You are in {chat.name} now (owner {chat.owner})", timeout=6)
                known.add(chat.id)
            case ChatLeft(chat_id=chat_id):
                # Out of a chat (left, removed): do not keep showing what we can no longer read.
                known.discard(chat_id)
                main = app.main
                if main.thread_root is not None and main.thread_root.chat_id == chat_id:
                    main.close_thread()
                if main.current_chat == chat_id:
                    app.open_chat(GENERAL_CHAT_ID)
            case Reset():
                self.connected()  # state refetched from scratch: the pending requests too
            case _:
                pass

    def request_decided(self, chat_name: str, login: str) -> None:
        """``/approve`` or ``/reject`` went through: that request leaves the bar too."""
        bar = find_bar(self.app)
        if bar is None:
            return
        wanted = (chat_name.lower(), login.lower())
        for request in list(bar.requests):
            if (request.chat_name.lower(), request.login.lower()) == wanted:
                bar.forget(request)

    def connected(self) -> None:
        """The stream is (back) online: load the pending join requests of owned chats."""
        app = self.app
        if app.main is None or app.client is None or app.store is None:
            return
        self.known.update(app.store.chats)
        self._load_requests()

    @app_work(group="join-requests", exclusive=True)
    async def _load_requests(self) -> None:
        app = self.app
        client = app.client
        if client is None or app.main is None:
            return
        try:
            status = await client.status()
        except MessengerError as exc:
            log.info("join requests not loaded: %s", exc)
            return
        pending = [r for owned in status.owned_chats for r in owned.pending_requests]
        if app.main is not None and app.main.is_mounted and (pending or find_bar(app)):
            bar_of(app).replace(pending)
