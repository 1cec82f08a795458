"""The general chat, private messages, history paging, idempotency, unread (F2, F3, F6, F14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    ErrorCode,
    HistoryQuery,
    MarkRead,
    MessageCreated,
    OpenDirect,
    ReadMarker,
    SendMessage,
)

from .conftest import Harness, ManualClock, make_app, next_turn


async def test_send_reaches_every_stream_and_history_pages(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    bob_phone = await harness.device("bob")
    streams = [harness.stream(alice), harness.stream(bob), harness.stream(bob_phone)]
    ids = []
    for i in range(25):
        sender = alice if i % 2 else bob
        msg = await harness.app.messages.post(sender, GENERAL_CHAT_ID, SendMessage(text=f"m{i}"))
        ids.append(msg.id)
    await next_turn()
    for stream in streams:  # the sender's own clients get it too
        got = [e.message.id for _, e in stream.take() if isinstance(e, MessageCreated)]
        assert got == ids
    history = harness.app.messages.history
    page = await history(alice, GENERAL_CHAT_ID, HistoryQuery())
    assert [m.text for m in page.messages] == [f"m{i}" for i in range(5, 25)]
    assert page.has_more
    older = await history(alice, GENERAL_CHAT_ID, HistoryQuery(before=page.messages[0].id))
    assert [m.text for m in older.messages] == [f"m{i}" for i in range(5)]
    assert not older.has_more
    newer = await history(alice, GENERAL_CHAT_ID, HistoryQuery(after=ids[19], limit=3))
    assert [m.id for m in newer.messages] == ids[20:23] and newer.has_more
    assert [m.author for m in page.messages[:2]] == ["alice", "bob"]  # m5, m6


async def test_retried_send_returns_the_first_message_and_announces_nothing(
    harness: Harness,
) -> None:
    alice = await harness.user("alice")
    stream = harness.stream(alice)
    post = harness.app.messages.post
    first = await post(alice, GENERAL_CHAT_ID, SendMessage(text="once", client_id="c-1"))
    again = await post(alice, GENERAL_CHAT_ID, SendMessage(text="once", client_id="c-1"))
    assert again == first
    await next_turn()
    assert len([e for _, e in stream.take() if isinstance(e, MessageCreated)]) == 1
    page = await harness.app.messages.history(alice, GENERAL_CHAT_ID, HistoryQuery())
    assert [m.id for m in page.messages] == [first.id]
    # another author may use the same client id
    bob = await harness.user("bob")
    other = await post(bob, GENERAL_CHAT_ID, SendMessage(text="mine", client_id="c-1"))
    assert other.id != first.id


async def test_text_limits(harness: Harness) -> None:
    alice = await harness.user("alice")
    post = harness.app.messages.post
    limit = harness.app.settings.max_message_text
    assert (await post(alice, GENERAL_CHAT_ID, SendMessage(text="x" * limit))).id > 0
    for text in ("x" * (limit + 1), "   "):
        with pytest.raises(ApiError) as err:
            await post(alice, GENERAL_CHAT_ID, SendMessage(text=text))
        assert err.value.code is ErrorCode.INVALID


async def test_private_conversation_is_private(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    eve = await harness.user("eve")
    eve_stream = harness.stream(eve)
    bob_stream = harness.stream(bob)
    chat = await harness.app.chats.open_direct(alice, OpenDirect(login="bob"))
    assert chat.kind == "direct" and chat.name == "@bob" and chat.members == 2
    same = await harness.app.chats.open_direct(bob, OpenDirect(login="alice"))
    assert same.id == chat.id and same.name == "@alice"
    msg = await harness.app.messages.post(alice, chat.id, SendMessage(text="psst"))
    await next_turn()
    assert msg.id in [e.message.id for _, e in bob_stream.take() if isinstance(e, MessageCreated)]
    assert not [e for _, e in eve_stream.take() if isinstance(e, MessageCreated)]
    page = await harness.app.messages.history(bob, chat.id, HistoryQuery())
    assert [m.text for m in page.messages] == ["psst"]
    for call in (
        harness.app.messages.history(eve, chat.id, HistoryQuery()),
        harness.app.messages.post(eve, chat.id, SendMessage(text="hi")),
        harness.app.messages.message(eve, msg.id),
        harness.app.chats.chat(eve, chat.id),
    ):
        with pytest.raises(ApiError) as err:
            await call
        assert err.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(ApiError) as err:
        await harness.app.chats.open_direct(alice, OpenDirect(login="ghost"))
    assert err.value.code is ErrorCode.NOT_FOUND


async def test_unread_counts_mark_read_and_sync_between_clients(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    bob_phone = await harness.device("bob")
    dm = await harness.app.chats.open_direct(alice, OpenDirect(login="bob"))
    post = harness.app.messages.post
    general = [(await post(alice, GENERAL_CHAT_ID, SendMessage(text=f"g{i}"))).id for i in range(3)]
    await post(alice, dm.id, SendMessage(text="d0"))
    await post(bob, GENERAL_CHAT_ID, SendMessage(text="mine"))  # own messages are never unread
    unread = await harness.app.messages.unread(bob)
    assert unread.total == 4
    assert [(c.chat.id, c.count) for c in unread.chats] == [(GENERAL_CHAT_ID, 3), (dm.id, 1)]
    assert [m.text for m in unread.chats[0].messages] == ["g0", "g1", "g2"]
    assert (await harness.app.messages.unread(alice)).total == 1  # bob's "mine"
    phone = harness.stream(bob_phone)
    chat = await harness.app.messages.mark_read(bob, GENERAL_CHAT_ID, MarkRead(up_to=general[1]))
    assert chat.unread == 1 and chat.last_read == general[1]
    await next_turn()
    markers = [e for _, e in phone.take() if isinstance(e, ReadMarker)]
    assert [(m.chat_id, m.up_to) for m in markers] == [(GENERAL_CHAT_ID, general[1])]
    chats = (await harness.app.chats.chats(bob_phone)).chats
    assert {c.id: c.unread for c in chats} == {GENERAL_CHAT_ID: 1, dm.id: 1}
    # the cursor never moves back
    await harness.app.messages.mark_read(bob, GENERAL_CHAT_ID, MarkRead(up_to=0))
    assert (await harness.app.messages.unread(bob)).total == 2


async def test_newcomer_does_not_inherit_old_unread(harness: Harness) -> None:
    alice = await harness.user("alice")
    await harness.app.messages.post(alice, GENERAL_CHAT_ID, SendMessage(text="before you came"))
    bob = await harness.user("bob")
    assert (await harness.app.messages.unread(bob)).total == 0
    page = await harness.app.messages.history(bob, GENERAL_CHAT_ID, HistoryQuery())
    assert [m.text for m in page.messages] == ["before you came"]


async def test_send_checks_can_refuse_and_see_the_draft(harness: Harness) -> None:
    alice = await harness.user("alice")
    seen = []

    def no_shouting(tx: object, draft: object, now: float) -> None:
        seen.append(draft)
        if getattr(draft, "body").text.isupper():  # noqa: B009
            raise ApiError(ErrorCode.RATE_LIMITED, "calm down", retry_after=5)

    messages = harness.app.messages
    messages.send_checks = (*messages.send_checks, no_shouting)
    await harness.app.messages.post(alice, GENERAL_CHAT_ID, SendMessage(text="hello"))
    with pytest.raises(ApiError) as err:
        await harness.app.messages.post(alice, GENERAL_CHAT_ID, SendMessage(text="HELLO"))
    assert err.value.retry_after == 5
    page = await harness.app.messages.history(alice, GENERAL_CHAT_ID, HistoryQuery())
    assert [m.text for m in page.messages] == ["hello"]
    assert len(seen) == 2


async def test_history_without_a_limit_is_the_services_history_on_connect(
    tmp_path: Path,
) -> None:
    """Issue 10 item 3: the page of a query without a limit is filled in by the message
    service (so every caller gets it, not only the HTTP route), one over it is not shown."""
    clock = ManualClock()
    app, hub = make_app(tmp_path, clock, history_on_connect=3)
    await app.start()
    try:
        h = Harness(app, clock, hub)
        alice = await h.user("alice")
        for i in range(4):
            await app.messages.post(alice, GENERAL_CHAT_ID, SendMessage(text=f"m{i}"))
        page = await app.messages.history(alice, GENERAL_CHAT_ID, HistoryQuery())
        assert [m.text for m in page.messages] == ["m1", "m2", "m3"] and page.has_more
        page = await app.messages.history(alice, GENERAL_CHAT_ID, HistoryQuery(limit=4))
        assert len(page.messages) == 4 and not page.has_more
    finally:
        await app.close()
