"""Scheduled messages (F11): pending -> sent | failed | cancelled.

A scheduled message is a row; a loop on every node posts the due ones. One write unit
claims a batch of due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: nodes sending at
once never take the same row) and, for each, stores the message with the post's own unit
(so bans, membership and rate limits apply at send time; idempotency id
``scheduled:<id>``) in a savepoint, moves the row to ``sent`` or ``failed`` and tells the
author, all in that one transaction: a node that dies mid-pass leaves the rows pending
for the next pass on any node, and a cancel (which locks its row) sees either ``pending``
or ``sent``, never both. Due rows go out right after a start, and the author's clients
get :class:`ScheduledUpdated` on every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

from messenger_protocol import (
    ApiError,
    ErrorCode,
    ScheduledList,
    ScheduledMessage,
    ScheduledUpdated,
    ScheduleMessage,
    SendMessage,
    format_duration,
)

from ..bus import exit_for_test_fault
from ..clock import POLL_SECONDS, Clock, wait_until
from ..config import Settings
from ..loglimit import log_pass_failure
from ..states import SCHEDULED, allowed
from ..storage import Store, Tx
from ..storage.scheduler import scheduled_queries
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
SEND_BATCH = 20
"""Due messages one write unit claims and sends (the next batch is the next unit)."""


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
        *,
        exit_mid_pass: int = 0,
    ) -> None:
        self.store = store
        self.events = events
        self.messages = messages
        self.moderation = moderation
        self.clock = clock
        self.settings = settings
        self.exit_mid_pass = exit_mid_pass
        """Test fault (0: none): the process exits inside a pass, right after the unit of
        its Nth due message (counted over the process's life) ran, before that batch
        commits (a node killed mid-pass with rows claimed)."""
        self._units_run = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

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

        def unit(tx: Tx) -> ScheduledMessage:
            queries = scheduled_queries(tx)
            # locked: a send of this row on another node commits first, then it is "sent"
            found = queries.owned_for_update(scheduled_id, actor.user_id)
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
            except Exception as exc:
                log_pass_failure(
                    log, "scheduler pass failed; retrying shortly", exc, self.store.unavailable
                )
                when = None
            await wait_until(self.clock, when, self._wake)

    async def _next_due(self) -> float | None:
        return await self.store.read(lambda tx: scheduled_queries(tx).next_due())

    async def send_due(self) -> int:
        """Post every pending message whose time has come; how many were handled."""
        now = self.clock.now()
        handled = 0
        while True:
            outcomes = await self.store.write(partial(self._send_batch, now=now))
            handled += len(outcomes)
            for scheduled_id, login, state, failure in outcomes:
                log.info("scheduled #%d of %s %s%s", scheduled_id, login, state,
                         f": {failure}" if failure else "")  # fmt: skip
            if len(outcomes) < SEND_BATCH:
                return handled

    def _send_batch(self, tx: Tx, *, now: float) -> list[tuple[int, str, str, str | None]]:
        """Claim up to :data:`SEND_BATCH` due rows and send each: (id, login, state, why)."""
        queries = scheduled_queries(tx)
        outcomes: list[tuple[int, str, str, str | None]] = []
        for item in queries.claim_due(now, SEND_BATCH):
            actor = Actor(user_id=item.user_id, login=item.login, session_id="scheduler")
            body = SendMessage(text=item.text, client_id=f"scheduled:{item.id}")
            failure: str | None = None
            message_id: int | None = None
            try:
                self.messages.check_body(body)
                unit = self.messages.post_unit(actor, item.chat_id, body, scheduled_id=item.id)
                message_id = tx.nested(unit).id
            except ApiError as exc:
                failure = exc.message
            self._units_run += 1
            if self._units_run == self.exit_mid_pass:
                exit_for_test_fault(f"in a scheduler pass after {self._units_run} due messages")
            state = "sent" if message_id is not None else "failed"
            queries.move(item.id, state, failure=failure, message_id=message_id)
            updated = self._load(tx, item.id)
            self.events.emit(tx, ScheduledUpdated(scheduled=updated), user_id=item.user_id)
            outcomes.append((item.id, item.login, state, failure))
        return outcomes
