"""Scheduled messages (F11): pending -> sent | failed | cancelled.

A scheduled message is a row; a loop posts the due ones through
:meth:`MessageService.post` (so bans, membership and rate limits apply at send
time) with the idempotency id ``scheduled:<id>``: if the server dies between the
post and the state change, the next start finds the row still pending, posts
again and gets the message stored the first time. Due rows go out right after a
start, and the author's clients get :class:`ScheduledUpdated` on every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

from messenger_protocol import (
    ApiError,
    ErrorCode,
    Message,
    ScheduledList,
    ScheduledMessage,
    ScheduledUpdated,
    ScheduleMessage,
    SendMessage,
    format_duration,
)

from ..clock import POLL_SECONDS, Clock, wait_until
from ..config import Settings
from ..states import SCHEDULED, allowed
from ..storage import Store, Tx
from ..storage.scheduler import DueMessage, scheduled_queries
from .actor import Actor, require_member
from .events import EventService
from .messages import MessageService
from .moderation import ModerationService

__all__ = ["PAST_SLACK", "POLL_SECONDS", "SchedulerService", "wait_until"]

log = logging.getLogger(__name__)

PAST_SLACK = 60.0
"""A ``send_at`` this far in the past is still accepted (sent at once): clock skew."""
FINISHED_SHOWN = 50
"""Sent, failed and cancelled messages listed after the pending ones."""


class SchedulerService:
    """Stores scheduled messages and posts them when they are due."""

    def __init__(
        self,
        store: Store,
        events: EventService,
        messages: MessageService,
        moderation: ModerationService,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self.store = store
        self.events = events
        self.messages = messages
        self.moderation = moderation
        self.clock = clock
        self.settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending: set[int] = set()

    async def start(self) -> None:
        """Start the loop; messages that fell due while the server was down go out now."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scheduler")

    async def close(self) -> None:
        """Stop the loop (a post in progress is cancelled; it is retried at the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- the API ------------------------------------------------------------

    async def schedule(self, actor: Actor, body: ScheduleMessage) -> ScheduledMessage:
        """Store a message to be posted to ``body.chat_id`` at ``body.send_at``."""
        now = self.clock.now()
        if body.send_at < now - PAST_SLACK:
            raise ApiError(ErrorCode.INVALID, "send_at is in the past")
        ahead = self.settings.schedule_max_ahead
        if body.send_at > now + ahead:
            raise ApiError(
                ErrorCode.INVALID,
                f"a message can be scheduled at most {format_duration(ahead)} ahead",
                limit=ahead,
            )
        await self.moderation.require_not_banned(actor.user_id)
        limit = self.settings.scheduled_max_pending

        def unit(tx: Tx) -> ScheduledMessage:
            require_member(tx, body.chat_id, actor.user_id)
            queries = scheduled_queries(tx)
            if queries.pending_count(actor.user_id) >= limit:
                raise ApiError(
                    ErrorCode.QUOTA_EXCEEDED,
                    f"at most {limit} scheduled messages may be pending",
                    limit=limit,
                )
            scheduled_id = queries.insert(actor.user_id, body.chat_id, body.text, body.send_at, now)
            item = self._load(tx, scheduled_id)
            self.events.emit(tx, ScheduledUpdated(scheduled=item), user_id=actor.user_id)
            return item

        item = await self.store.write(unit)
        self._wake.set()
        return item

    async def scheduled(self, actor: Actor) -> ScheduledList:
        """The user's pending messages (soonest first), then the latest finished ones."""

        def unit(tx: Tx) -> ScheduledList:
            queries = scheduled_queries(tx)
            pending = queries.pending(actor.user_id)
            done = queries.finished(actor.user_id, FINISHED_SHOWN)
            return ScheduledList(scheduled=[*pending, *done])

        return await self.store.read(unit)

    async def cancel(self, actor: Actor, scheduled_id: int) -> ScheduledMessage:
        """Cancel a pending message; ``conflict`` if it was already sent, failed or cancelled."""
        if scheduled_id in self._sending:
            raise ApiError(ErrorCode.CONFLICT, f"scheduled #{scheduled_id} is being sent")

        def unit(tx: Tx) -> ScheduledMessage:
            queries = scheduled_queries(tx)
            found = queries.owned(scheduled_id, actor.user_id)
            if found is None:
                raise ApiError(
                    ErrorCode.NOT_FOUND, f"you have no scheduled message #{scheduled_id}"
                )
            if not allowed(SCHEDULED, found.state, "cancelled") or not queries.move(
                scheduled_id, "cancelled"
            ):
                raise ApiError(
                    ErrorCode.CONFLICT, f"scheduled #{scheduled_id} was already {found.state}"
                )
            item = self._load(tx, scheduled_id)
            self.events.emit(tx, ScheduledUpdated(scheduled=item), user_id=actor.user_id)
            return item

        return await self.store.write(unit)

    @staticmethod
    def _load(tx: Tx, scheduled_id: int) -> ScheduledMessage:
        item = scheduled_queries(tx).get(scheduled_id)
        assert item is not None
        return item

    # --- the loop -----------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.send_due()
                when = await self._next_due()
            except Exception:
                log.exception("scheduler pass failed; retrying shortly")
                when = None
            await wait_until(self.clock, when, self._wake)

    async def _next_due(self) -> float | None:
        return await self.store.read(lambda tx: scheduled_queries(tx).next_due())

    async def send_due(self) -> int:
        """Post every pending message whose time has come; how many were handled."""
        now = self.clock.now()

        due = await self.store.write(partial(_due, now=now))
        for item in due:
            await self._send(item.id, item.user_id, item.login, item.chat_id, item.text)
        return len(due)

    async def _send(
        self, scheduled_id: int, user_id: int, login: str, chat_id: int, text: str
    ) -> None:
        self._sending.add(scheduled_id)
        try:
            actor = Actor(user_id=user_id, login=login, session_id="scheduler")
            body = SendMessage(text=text, client_id=f"scheduled:{scheduled_id}")
            message: Message | None = None
            failure: str | None = None
            try:
                message = await self.messages.post(actor, chat_id, body, scheduled_id=scheduled_id)
            except ApiError as exc:
                failure = exc.message
            state = "sent" if message is not None else "failed"
            message_id = None if message is None else message.id

            def unit(tx: Tx) -> None:
                scheduled_queries(tx).move(
                    scheduled_id, state, failure=failure, message_id=message_id
                )
                item = self._load(tx, scheduled_id)
                self.events.emit(tx, ScheduledUpdated(scheduled=item), user_id=user_id)

            await self.store.write(unit)
        finally:
            self._sending.discard(scheduled_id)
        log.info(
            "scheduled #%d of %s %s%s",
            scheduled_id,
            login,
            state,
            f": {failure}" if failure else "",
        )


def _due(tx: Tx, *, now: float) -> list[DueMessage]:
    """The pass's first unit: one node at a time sends (the others skip; and a message
    sent twice would still be stored once, by its client_id ``scheduled:<id>``)."""
    if not tx.try_job_lock("scheduler"):
        return []
    return scheduled_queries(tx).due(now)
