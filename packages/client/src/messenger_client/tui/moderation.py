"""Moderation and admin: the ban banner, the rate-limit wait, scheduled messages, the
admin and status screens.

:class:`Moderation` is the part of the app that shows a ban (live, or one that started
while the app was away), a refused send's ban or wait, keeps the scheduled screen up to
date, says when a message disappears, and opens the admin (admins only) and status
screens.
"""

from __future__ import annotations

import logging
from datetime import tzinfo

from messenger_protocol import (
    ApiError,
    Banned,
    ErrorCode,
    Event,
    Message,
    MessengerError,
    ScheduledUpdated,
)

from .host import Host
from .messages import BanChanged, RateLimited
from .robust import describe_error
from .screens.status import StatusScreen
from .tasks import app_work
from .widgets.moderation import ScheduledScreen

__all__ = ["Moderation"]

log = logging.getLogger(__name__)


class Moderation:
    """Bans, waits, scheduled messages and the admin screens, for one app."""

    def __init__(self, app: Host, tz: tzinfo | None) -> None:
        self.app = app
        self.tz = tz
        """Time zone of shown times (None: local)."""

    def event(self, event: Event) -> None:
        """A live event: our own ban shows in the banner, the scheduled screen follows."""
        app = self.app
        main, me = app.main, app.store.me if app.store is not None else None
        if isinstance(event, Banned) and main is not None and event.login == me:
            main.post_message(BanChanged(event.until, event.reason))
        elif isinstance(event, ScheduledUpdated) and isinstance(app.screen, ScheduledScreen):
            app.run_worker(app.screen.scheduled_changed(event.scheduled), group="scheduled")

    @app_work(exclusive=True, group="ban")
    async def check_ban(self) -> None:
        """A ban that started while we were away shows at once, not at the first send."""
        client, store, main = self.app.client, self.app.store, self.app.main
        if client is None or store is None or main is None:
            return
        try:
            user = await client.user(store.me)
        except MessengerError as exc:
            log.info("ban check: %s", exc)
            return
        main.post_message(BanChanged(user.banned_until))

    def refusal(self, exc: ApiError) -> None:
        """A refused send: show the ban, or the wait a rate limit asks for."""
        main = self.app.main
        if main is None:
            return
        if exc.code == ErrorCode.BANNED and exc.until is not None:
            main.post_message(BanChanged(exc.until))
        elif exc.code == ErrorCode.RATE_LIMITED and exc.retry_after:
            main.post_message(RateLimited(exc.retry_after))

    def disappears_at(self, message: Message) -> float | None:
        """When a message disappears for us: as the server said, or an hour (ttl) after
        it arrived live (a live message reaches us when it is posted)."""
        if message.expires_at is not None:
            return message.expires_at
        client = self.app.client
        session = client.session if client is not None else None
        ttl = session.message_ttl if session is not None else 0
        return message.created_at + ttl if ttl else None

    def is_admin(self) -> bool:
        """Whether the session's user is an admin (known once the login answered)."""
        client = self.app.client
        session = client.session if client is not None else None
        return session is not None and session.user.is_admin

    def show_admin(self) -> None:
        """Show the admin screen (F3; admins only)."""
        app = self.app
        if app.client is None or not self.is_admin():
            app.notify("Only admins have an admin screen", severity="warning")
            return
        # imported on first use: its tables and tabs are no part of a start-up
        from .screens.admin import AdminScreen

        if not isinstance(app.screen, AdminScreen):
            app.push_screen(AdminScreen(app.client, tz=self.tz))

    def show_scheduled(self) -> None:
        """The scheduled messages of the user (``/scheduled``)."""
        app = self.app
        if app.client is None or app.store is None:
            return
        names = {c.id: c.name for c in app.store.chats.values()}
        app.push_screen(ScheduledScreen(app.client, chat_names=names, tz=self.tz))

    def show_status(self) -> None:
        """Show the status screen (F2, /status)."""
        app = self.app
        if isinstance(app.screen, StatusScreen):
            screen = app.screen
        else:
            screen = StatusScreen(tz=self.tz)
            app.push_screen(screen)
        self._load_status(screen)

    @app_work(exclusive=True, group="status")
    async def _load_status(self, screen: StatusScreen) -> None:
        client = self.app.client
        if client is None:
            return
        try:
            status = await client.status()
        except MessengerError as exc:
            screen.show_error(describe_error(exc, self.app.server))
            return
        screen.show_status(status)
