"""Moderation: complaints and bans (F12) and the general-chat rate limit (F9).

Rules (docs/moderation.md has the whole story):

* A complaint about yourself is refused; a repeat from the same user is stored but
  does not count again. When ``complaints_to_ban`` distinct users have complained
  (counted since the target's last ban), the target is banned for ``ban_seconds``
  and the count starts again.
* A banned user cannot post (messages, comments, files, scheduled sends) until the
  ban ends by itself; reading is unaffected. Bans live in the database and are
  checked there on every send, so a ban written by ``messenger-server ban`` while
  the server runs is honoured at once.
* The general chat takes ``rate_limit_messages`` messages per user per fixed window
  of ``rate_limit_window`` seconds aligned to the epoch (``floor(now / window)``).
  An idempotent retry never reaches the check (the stored message is returned).
* The ban check and the rate-limit count run inside the unit that stores the post
  (:meth:`ModerationService.check_send` is a send check of the message service), so
  they hold on every path that posts (HTTP, the scheduler) and, the counter being one
  upsert in the database, across server nodes; a refused post rolls its count back.
  In the general chat that upsert also says whether a ban runs: one statement per
  send for both checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from datetime import UTC

import msgspec

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    Banned,
    Complaint,
    ComplaintList,
    ComplaintResult,
    ErrorCode,
    FileComplaint,
    format_duration,
    format_time,
)

from ..clock import Clock
from ..config import Settings
from ..loglimit import log_pass_failure
from ..storage import Store, Tx
from ..storage.moderation import moderation_queries
from .actor import Actor
from .events import EventService
from .messages import Draft

__all__ = [
    "CLI_POLL_SECONDS",
    "ModerationService",
]

log = logging.getLogger(__name__)

CLI_POLL_SECONDS = 1.0
"""How often the server looks for bans the admin CLI wrote (to tell the users)."""


def _refuse_ban(ban: tuple[float, str] | None, now: float) -> None:
    """``banned`` (with ``until``) for a running ban."""
    if ban is not None:
        until, reason = ban
        why = f" ({reason})" if reason else ""
        when = format_time(until, now=now, tz=UTC, relative=True, zone=True)
        raise ApiError(
            ErrorCode.BANNED, f"you are banned from sending until {when}{why}", until=until
        )


class ModerationService:
    """Complaints, bans and the general-chat rate limit."""

    def __init__(
        self,
        store: Store,
        events: EventService,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self.settings = settings
        self._audit_seen = 0
        self._watcher: asyncio.Task[None] | None = None

    async def running_bans(self) -> dict[str, float]:
        """``until`` of every running ban, by lower-case login."""
        now = self.clock.now()

        return await self.store.read(lambda tx: moderation_queries(tx).running_bans(now))

    # --- sending --------------------------------------------------------------

    def check_send(self, tx: Tx, draft: Draft, now: float) -> None:
        """Inside the unit that stores a post: refuse a banned user, and count the post
        against the general-chat rate limit (refused over it)."""
        queries = moderation_queries(tx)
        user_id = draft.actor.user_id
        if draft.chat.id != GENERAL_CHAT_ID:
            _refuse_ban(queries.active_ban(user_id, now), now)
            return
        size = self.settings.rate_limit_window
        start = math.floor(now / size) * size
        limit = self.settings.rate_limit_messages
        # one statement counts the post and says whether a ban runs (a refusal rolls the
        # count back); the ban's end and reason are read only for a banned user
        count, banned = queries.count_post(user_id, start, now)
        if banned:
            _refuse_ban(queries.active_ban(user_id, now), now)
        if count > limit:
            retry_after = float(math.ceil(start + size - now))
            raise ApiError(
                ErrorCode.RATE_LIMITED,
                f"at most {limit} messages per {format_duration(size)}"
                f" in the general chat; try again in {format_duration(retry_after)}",
                retry_after=retry_after,
                limit=limit,
            )

    async def require_not_banned(self, user_id: int) -> None:
        """``banned`` (with ``until``) while the user has a running ban."""
        now = self.clock.now()
        ban = await self.store.read(lambda tx: moderation_queries(tx).active_ban(user_id, now))
        _refuse_ban(ban, now)

    async def banned_until(self, user_id: int) -> float | None:
        """When the user's running ban ends, or None."""
        now = self.clock.now()
        ban = await self.store.read(lambda tx: moderation_queries(tx).active_ban(user_id, now))
        return None if ban is None else ban[0]

    async def start(self) -> None:
        """Watch the audit log for bans made by the admin CLI (another process)."""
        self._audit_seen = await self.store.read(
            lambda tx: moderation_queries(tx).newest_audit_id()
        )
        self._watcher = asyncio.get_running_loop().create_task(self._watch_cli(), name="bans")

    async def _watch_cli(self) -> None:
        while True:
            # another process writes the database: there is nothing to await but time
            await asyncio.sleep(CLI_POLL_SECONDS)
            try:
                await self.announce_cli_bans()
            except Exception as exc:
                log_pass_failure(log, "could not read the audit log", exc, self.store.unavailable)

    async def announce_cli_bans(self) -> int:
        """Tell users and admins of bans and unbans the CLI made since the last look."""
        now = self.clock.now()
        after = self._audit_seen
        newest = await self.store.read(lambda tx: moderation_queries(tx).newest_audit_id())
        if newest <= after:
            return 0  # the usual case: no write

        def unit(tx: Tx) -> int:
            queries = moderation_queries(tx)
            for login in queries.cli_ban_targets(after):
                target = tx.user_by_login(login)
                if target is None:
                    continue
                ban = queries.active_ban(target.id, now)
                until, reason = ban if ban is not None else (None, "unbanned")
                self._announce_ban(tx, target.id, target.login, until, reason)
            return queries.newest_audit_id()

        self._audit_seen = await self.store.write(unit)
        return self._audit_seen - after

    async def close(self) -> None:
        """Stop watching the CLI."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    # --- complaints -------------------------------------------------------------

    async def complain(self, actor: Actor, body: FileComplaint) -> ComplaintResult:
        """File a complaint; at the threshold of distinct users the target is banned."""
        now = self.clock.now()
        threshold = self.settings.complaints_to_ban
        ban_seconds = self.settings.ban_seconds

        def unit(tx: Tx) -> ComplaintResult:
            queries = moderation_queries(tx)
            target = tx.user_by_login(body.login)
            if target is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"no such user: {body.login}")
            if target.id == actor.user_id:
                raise ApiError(ErrorCode.INVALID, "you cannot complain about yourself")
            if body.message_id is not None:
                self._check_message(tx, body.message_id, target.id, actor.user_id)
            elif body.quoted:
                raise ApiError(ErrorCode.INVALID, "a quoted text needs the message it quotes")
            repeat = queries.has_counted_complaint(actor.user_id, target.id)
            complaint_id = queries.insert_complaint(
                actor.user_id,
                target.id,
                body.reason,
                body.message_id,
                now,
                counted=not repeat,
                quoted=body.quoted,
            )
            queries.add_audit(now, actor.login, "complain", target.login, body.reason)
            distinct = queries.distinct_complainers(target.id)
            banned_until: float | None = None
            if distinct >= threshold:
                reason = f"{distinct} users complained"
                banned_until = queries.ban(
                    target.id, target.login, now, ban_seconds, reason, "auto"
                )
                self._announce_ban(tx, target.id, target.login, banned_until, reason)
                log.info("%s banned until %.0f: %s", target.login, banned_until, reason)
            complaint = queries.complaint(complaint_id)
            assert complaint is not None
            return ComplaintResult(
                complaint=complaint, distinct_complaints=distinct, banned_until=banned_until
            )

        return await self.store.write(unit)

    @staticmethod
    def _check_message(tx: Tx, message_id: int, target_id: int, user_id: int) -> None:
        message = tx.message(message_id)
        visible = message is not None and tx.last_read(message.chat_id, user_id) is not None
        if not visible:
            raise ApiError(ErrorCode.INVALID, "no such message, or not in a chat of yours")
        if tx.message_author_id(message_id) != target_id:
            raise ApiError(ErrorCode.INVALID, "that message is not by this user")

    def _announce_ban(
        self, tx: Tx, user_id: int, login: str, until: float | None, reason: str
    ) -> None:
        """Tell the user and every admin (a logged event: offline clients learn it too)."""
        event = Banned(login=login, until=until, reason=reason)
        for uid in sorted({user_id, *self.admin_ids(tx)}):
            self.events.emit(tx, event, user_id=uid)

    def admin_ids(self, tx: Tx) -> list[int]:
        """Ids of admins: flagged in the database or named in the settings."""
        names = {a.lower() for a in self.settings.admins}
        return [u.id for u in tx.users() if u.is_admin or u.login.lower() in names]

    async def complaints(self) -> ComplaintList:
        """The open complaints, oldest first."""

        def unit(tx: Tx) -> ComplaintList:
            return ComplaintList(complaints=moderation_queries(tx).open_complaints())

        return await self.store.read(unit)

    async def dismiss(self, by: str, complaint_id: int) -> Complaint:
        """Dismiss an open complaint: it no longer counts towards a ban."""
        now = self.clock.now()

        def unit(tx: Tx) -> Complaint:
            queries = moderation_queries(tx)
            complaint = queries.complaint(complaint_id)
            if complaint is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"no complaint #{complaint_id}")
            if not queries.dismiss_complaint(complaint_id, by, now):
                raise ApiError(
                    ErrorCode.CONFLICT, f"complaint #{complaint_id} is {complaint.state}"
                )
            queries.add_audit(now, by, "dismiss", complaint.target, f"complaint #{complaint_id}")
            return msgspec.structs.replace(complaint, state="dismissed")

        return await self.store.write(unit)

    async def ban(self, by: str, login: str, seconds: int, reason: str) -> float:
        """An admin bans ``login`` for ``seconds``; when the ban ends."""
        now = self.clock.now()

        def unit(tx: Tx) -> float:
            target = tx.user_by_login(login)
            if target is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"no such user: {login}")
            why = reason or f"banned by {by}"
            until = moderation_queries(tx).ban(target.id, target.login, now, seconds, why, by)
            self._announce_ban(tx, target.id, target.login, until, why)
            return until

        until = await self.store.write(unit)
        log.info("%s banned %s for %d s", by, login, seconds)
        return until

    async def unban(self, by: str, login: str) -> None:
        """An admin lifts every running ban of ``login``."""
        now = self.clock.now()

        def unit(tx: Tx) -> None:
            target = tx.user_by_login(login)
            if target is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"no such user: {login}")
            if moderation_queries(tx).lift_bans(target.id, target.login, now, by):
                self._announce_ban(tx, target.id, target.login, None, f"unbanned by {by}")

        await self.store.write(unit)
