"""Scheduled messages (F11) and disappearing messages (F8) on a real app with a manual
clock; the passes are run by hand, so nothing here waits for a loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    BanUser,
    ErrorCode,
    HistoryQuery,
    MessageCreated,
    MessageDeleted,
    ScheduledUpdated,
    ScheduleMessage,
    SendMessage,
    event_name,
)
from messenger_server.services import Actor
from messenger_server.storage import Tx

from .conftest import Harness, ManualClock, make_app, next_turn


@pytest.fixture
async def timed(tmp_path: Path) -> AsyncIterator[Harness]:
    """An app with disappearing messages (ttl 1 h, max age 10 h) and admin ``root``."""
    clock = ManualClock()
    app, hub = make_app(
        tmp_path, clock, message_ttl=3600, message_max_age=36000, admins=("root",),
        scheduled_max_pending=2,
    )  # fmt: skip
    await app.start()
    # the loops run on their own too; these tests drive the passes themselves
    await app.scheduler.close()
    await app.retention.close()
    h = Harness(app, clock, hub)
    try:
        yield h
    finally:
        for sub in h.subs:
            app.close_stream(sub)
        await app.close()


async def test_scheduled_goes_out_at_its_time_once(timed: Harness) -> None:
    alice, bob = await timed.user("alice"), await timed.user("bob")
    bob_stream, alice_stream = timed.stream(bob), timed.stream(alice, "127.0.0.1:40001")
    at = timed.clock.now() + 600
    item = await timed.app.scheduler.schedule(
        alice, ScheduleMessage(chat_id=GENERAL_CHAT_ID, text="later", send_at=at)
    )
    timed.clock.advance(599)
    assert await timed.app.scheduler.send_due() == 0
    timed.clock.advance(1)
    assert await timed.app.scheduler.send_due() == 1
    assert await timed.app.scheduler.send_due() == 0  # never twice
    await next_turn()
    created = [e for _, e in bob_stream.take() if isinstance(e, MessageCreated)]
    assert [(m.message.text, m.message.scheduled_id) for m in created] == [("later", item.id)]
    updates = [e for _, e in alice_stream.take() if isinstance(e, ScheduledUpdated)]
    assert [u.scheduled.state for u in updates] == ["pending", "sent"]
    assert updates[-1].scheduled.message_id == created[0].message.id


async def test_cancel_pending_only_and_limits(timed: Harness) -> None:
    alice = await timed.user("alice")
    scheduler = timed.app.scheduler
    at = timed.clock.now() + 60
    one = await scheduler.schedule(alice, ScheduleMessage(chat_id=1, text="one", send_at=at))
    await scheduler.schedule(alice, ScheduleMessage(chat_id=1, text="two", send_at=at))
    with pytest.raises(ApiError) as err:
        await scheduler.schedule(alice, ScheduleMessage(chat_id=1, text="three", send_at=at))
    assert err.value.code is ErrorCode.QUOTA_EXCEEDED and err.value.limit == 2
    assert (await scheduler.cancel(alice, one.id)).state == "cancelled"
    with pytest.raises(ApiError) as err:
        await scheduler.cancel(alice, one.id)
    assert err.value.code is ErrorCode.CONFLICT
    bob = await timed.user("bob")
    with pytest.raises(ApiError) as err:  # not his
        await scheduler.cancel(bob, one.id)
    assert err.value.code is ErrorCode.NOT_FOUND
    timed.clock.advance(60)
    assert await scheduler.send_due() == 1
    page = await timed.app.messages.history(alice, 1, HistoryQuery())
    assert [m.text for m in page.messages] == ["two"]


async def test_a_ban_makes_a_due_message_fail_with_the_reason(timed: Harness) -> None:
    root, alice = await timed.user("root"), await timed.user("alice")
    at = timed.clock.now() + 60
    item = await timed.app.scheduler.schedule(
        alice, ScheduleMessage(chat_id=1, text="x", send_at=at)
    )
    await timed.app.admin.ban(root, BanUser(login="alice", seconds=3600))
    with pytest.raises(ApiError) as err:  # and no new ones while banned
        await timed.app.scheduler.schedule(alice, ScheduleMessage(chat_id=1, text="y", send_at=at))
    assert err.value.code is ErrorCode.BANNED
    timed.clock.advance(60)
    await timed.app.scheduler.send_due()
    [failed] = (await timed.app.scheduler.scheduled(alice)).scheduled
    assert (failed.id, failed.state) == (item.id, "failed")
    assert failed.failure is not None and "banned" in failed.failure


async def test_disappears_per_recipient_and_then_from_the_server(timed: Harness) -> None:
    alice, bob = await timed.user("alice"), await timed.user("bob")
    alice_stream = timed.stream(alice)  # alice is online, bob is not
    # posting notes who did not get it (no separate step: the rule holds on every path)
    message = await timed.app.messages.post(alice, 1, SendMessage(text="brief"))
    retention, history = timed.app.retention, timed.app.messages.history

    async def seen(actor: Actor) -> list[int]:
        page = await history(actor, 1, HistoryQuery())
        return [m.id for m in page.messages]

    timed.clock.advance(3600)
    await retention.expire()
    await next_turn()
    gone = [e for _, e in alice_stream.take() if isinstance(e, MessageDeleted)]
    assert [g.message_id for g in gone] == [message.id]
    assert await seen(alice) == []
    timed.clock.advance(3600)  # bob comes back two hours later
    assert await seen(bob) == [message.id]
    timed.clock.advance(3599)
    await retention.expire()
    assert await seen(bob) == [message.id]
    timed.clock.advance(1)
    await retention.expire()
    assert await seen(bob) == []
    assert await timed.app.store.read(lambda tx: tx.message(message.id)) is None


async def test_the_end_of_the_copies_delivered_when_posted_is_one_logged_event(
    timed: Harness,
) -> None:
    """Issue 11: when the copies pushed live expire, the log gets one message_deleted for
    the chat (not one per member); a member whose copy came late never gets it."""
    alice, bob, carol = (
        await timed.user("alice"),
        await timed.user("bob"),
        await timed.user("carol"),
    )
    alice_stream, carol_stream = timed.stream(alice), timed.stream(carol)  # bob is away
    message = await timed.app.messages.post(alice, 1, SendMessage(text="brief"))
    await next_turn()
    timed.clock.advance(1800)
    page = await timed.app.messages.history(bob, 1, HistoryQuery())  # bob's copy: late
    assert [m.id for m in page.messages] == [message.id]
    timed.clock.advance(1800)
    await timed.app.retention.expire()
    await next_turn()
    for sink in (alice_stream, carol_stream):
        gone = [e for _, e in sink.take() if isinstance(e, MessageDeleted)]
        assert [g.message_id for g in gone] == [message.id]
    name = event_name(MessageDeleted(chat_id=1, message_id=message.id))

    def logged(tx: Tx) -> tuple[int, list[int]]:
        newest = tx.event_max()
        every = [r for r in tx.events_range(0, newest, 1000) if r.name == name]
        per_user = [
            len([r for r in tx.events_after(u.user_id, 0, newest, 1000) if r.name == name])
            for u in (alice, bob, carol)
        ]
        return len(every), per_user

    assert await timed.app.store.read(logged) == (1, [1, 0, 1])
    page = await timed.app.messages.history(bob, 1, HistoryQuery())
    assert [m.id for m in page.messages] == [message.id]  # still his for half an hour


async def test_who_had_no_live_stream_when_it_came_waits_for_it(timed: Harness) -> None:
    """Issue 11: a send writes nothing per offline member; who waits follows from when
    each member had a live stream. Bob's stream goes before the second message; Carol's
    comes after the first (and does not resume): each keeps what they did not get."""
    alice, bob, carol = (
        await timed.user("alice"),
        await timed.user("bob"),
        await timed.user("carol"),
    )
    timed.stream(alice)
    bob_sub_count = len(timed.subs)
    timed.stream(bob)
    first = await timed.app.messages.post(alice, 1, SendMessage(text="bob got this live"))
    timed.app.close_stream(timed.subs.pop(bob_sub_count))  # bob goes offline
    await next_turn()
    second = await timed.app.messages.post(alice, 1, SendMessage(text="bob was away"))
    timed.stream(carol)  # carol comes online after both, without resuming
    await next_turn()
    history = timed.app.messages.history

    async def seen(actor: Actor) -> dict[int, float | None]:
        page = await history(actor, 1, HistoryQuery())
        return {m.id: m.expires_at for m in page.messages}

    timed.clock.advance(3600)
    await timed.app.retention.expire()
    assert await seen(alice) == {}
    now = timed.clock.now()
    assert await seen(bob) == {second.id: now + 3600}
    assert await seen(carol) == {first.id: now + 3600, second.id: now + 3600}
    timed.clock.advance(3600)
    await timed.app.retention.expire()
    assert await seen(bob) == {} and await seen(carol) == {}
    gone = await timed.app.store.read(lambda tx: [tx.message(first.id), tx.message(second.id)])
    assert gone == [None, None]


async def test_comments_go_with_their_root_and_max_age_applies(timed: Harness) -> None:
    alice = await timed.user("alice")
    await timed.user("bob")  # never comes back
    root = await timed.app.messages.post(alice, 1, SendMessage(text="root"))
    comment = await timed.app.messages.comment(alice, root.id, SendMessage(text="comment"))
    timed.clock.advance(36000)
    await timed.app.retention.expire()
    left = await timed.app.store.read(lambda tx: [tx.message(root.id), tx.message(comment.id)])
    assert left == [None, None]


async def test_too_far_ahead_says_the_limit_in_words(timed: Harness) -> None:
    """Issue 9 item 12: "at most 31536000 s ahead" was a raw number of seconds."""
    alice = await timed.user("alice")
    ahead = timed.app.scheduler.settings.schedule_max_ahead
    too_far = timed.clock.now() + ahead + 60
    with pytest.raises(ApiError) as refused:
        await timed.app.scheduler.schedule(
            alice, ScheduleMessage(chat_id=1, text="x", send_at=too_far)
        )
    assert refused.value.code is ErrorCode.INVALID
    assert refused.value.message == f"a message can be scheduled at most {ahead // 86400} d ahead"
