"""Admin tools (F21): users as admins see them, the complaint queue, bans, live stats,
the effective settings. Every method needs an admin actor (``forbidden`` otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from messenger_protocol import (
    AdminUser,
    AdminUserList,
    ApiError,
    BanUser,
    Complaint,
    ComplaintList,
    ErrorCode,
    LoopLag,
    ServerStats,
    Settings,
    User,
)

from ..clock import Clock
from ..config import Settings as ServerSettings
from ..storage import Store, Tx
from ..storage.admin import AdminUserRecord, admin_queries
from .accounts import AccountService
from .actor import Actor
from .events import EventService
from .moderation import ModerationService

__all__ = ["RATE_SAMPLE_SECONDS", "AdminService", "admin_view", "dir_bytes"]

log = logging.getLogger(__name__)

RATE_SAMPLE_SECONDS = 60.0
"""``messages_per_second`` is the average over this many seconds."""


def dir_bytes(path: Path) -> int:
    """Bytes of all files under ``path`` (0 if it does not exist)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue  # removed while we walked
    return total


def admin_view(
    records: list[AdminUserRecord], online: set[int], admins: set[str]
) -> list[AdminUser]:
    """Users as an admin sees them; ``admins`` are the lower-case logins the settings name."""
    return [
        AdminUser(
            login=r.login,
            online=r.id in online,
            created_at=r.created_at,
            last_login_at=r.last_login_at,
            last_login_address=r.last_login_address,
            messages=r.messages,
            complaints=r.complaints,
            banned_until=r.banned_until,
            is_admin=r.is_admin or r.login.lower() in admins,
        )
        for r in records
    ]


class AdminService:
    """What the admin screen and the admin endpoints show and do."""

    def __init__(
        self,
        store: Store,
        events: EventService,
        accounts: AccountService,
        moderation: ModerationService,
        clock: Clock,
        settings: ServerSettings,
        *,
        connections: Callable[[], int] = lambda: 0,
        started_at: Callable[[], float] | None = None,
        loop_lag: Callable[[], LoopLag] = LoopLag,
    ) -> None:
        self.store = store
        self.events = events
        self.accounts = accounts
        self.moderation = moderation
        self.clock = clock
        self.settings = settings
        self.connections = connections
        """Live TCP connections of the transport (set by the app)."""
        self.started_at = started_at or clock.now
        self.loop_lag = loop_lag
        """This node's event-loop lag so far (set by the app)."""

    async def require_admin(self, actor: Actor) -> None:
        """``forbidden`` unless the actor is an admin now: named in the settings or flagged
        in the database (read each time, so ``admin add/remove`` on the CLI count at once)."""
        if actor.login.lower() in {a.lower() for a in self.settings.admins}:
            return
        record = await self.store.read(lambda tx: tx.user_by_id(actor.user_id))
        if record is None or not record.is_admin:
            raise ApiError(ErrorCode.FORBIDDEN, "only admins may do that")

    async def users(self, actor: Actor) -> AdminUserList:
        """All users as an admin sees them."""
        await self.require_admin(actor)
        now = self.clock.now()
        online = self.accounts.online_user_ids()
        admins = {a.lower() for a in self.settings.admins}
        records = await self.store.read(lambda tx: admin_queries(tx).admin_users(now))
        return AdminUserList(users=admin_view(records, online, admins))

    async def complaints(self, actor: Actor) -> ComplaintList:
        """The open complaints, oldest first."""
        await self.require_admin(actor)
        return await self.moderation.complaints()

    async def dismiss(self, actor: Actor, complaint_id: int) -> Complaint:
        """Dismiss a complaint."""
        await self.require_admin(actor)
        return await self.moderation.dismiss(actor.login, complaint_id)

    async def ban(self, actor: Actor, body: BanUser) -> User:
        """Ban a user for a chosen time."""
        await self.require_admin(actor)
        until = await self.moderation.ban(actor.login, body.login, body.seconds, body.reason)
        user = await self.accounts.user(body.login)
        return User(
            login=user.login,
            online=user.online,
            last_seen=user.last_seen,
            is_admin=user.is_admin,
            banned_until=until,
        )

    async def unban(self, actor: Actor, login: str) -> User:
        """Lift a user's ban."""
        await self.require_admin(actor)
        await self.moderation.unban(actor.login, login)
        return await self.accounts.user(login)

    async def stats(self, actor: Actor) -> ServerStats:
        """Live numbers of this server."""
        await self.require_admin(actor)
        now = self.clock.now()

        def unit(tx: Tx) -> tuple[int, int, int, int]:
            queries = admin_queries(tx)
            recent = queries.messages_since(now - RATE_SAMPLE_SECONDS)
            return queries.user_count(), tx.message_count(), recent, tx.database_bytes()

        users, messages, recent, storage = await self.store.read(unit)
        files = await asyncio.to_thread(dir_bytes, self.settings.data_dir / "files")
        return ServerStats(
            uptime=max(0.0, now - self.started_at()),
            connections=self.connections(),
            streams=self.events.hub.stream_count(),
            users=users,
            users_online=len(self.accounts.online_user_ids()),
            messages=messages,
            messages_per_second=recent / RATE_SAMPLE_SECONDS,
            storage_bytes=storage,
            files_bytes=files,
            loop_lag=self.loop_lag(),
        )

    async def effective_settings(self, actor: Actor) -> Settings:
        """The settings this server runs with (read-only)."""
        await self.require_admin(actor)
        return Settings(values=self.settings.as_public_dict())
