"""Comments: flat threads, counts on the root, who is notified, thread read state (F10)."""

from __future__ import annotations

import pytest

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    CreateChat,
    ErrorCode,
    HistoryQuery,
    InviteUser,
    MarkRead,
    MessageCreated,
    MessageUpdated,
    ReadMarker,
    SendMessage,
    ThreadActivity,
)

from .conftest import Harness, next_turn


async def test_comments_are_flat_counted_and_kept_out_of_history(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    m = harness.app.messages
    root = await m.post(alice, GENERAL_CHAT_ID, SendMessage(text="root"))
    c1 = await m.comment(bob, root.id, SendMessage(text="c1"))
    harness.clock.advance(5)
    c2 = await m.comment(alice, c1.id, SendMessage(text="c2"))  # on a comment: same thread
    assert c1.thread_root == c2.thread_root == root.id
    thread = await m.thread(bob, c2.id)
    assert thread.root.id == root.id
    assert thread.root.comment_count == 2
    assert thread.root.last_comment_at == c2.created_at
    assert [c.text for c in thread.comments] == ["c1", "c2"]
    page = await m.history(bob, GENERAL_CHAT_ID, HistoryQuery())
    assert [x.text for x in page.messages] == ["root"]
    assert page.messages[0].comment_count == 2
    assert (await m.unread(bob)).total == 1  # the root only; comments count in the thread


async def test_who_hears_about_a_comment(harness: Harness) -> None:
    alice = await harness.user("alice")  # the root's author
    bob = await harness.user("bob")  # commented before
    carol = await harness.user("carol")  # the commenter now
    dave = await harness.user("dave")  # only a chat member
    m = harness.app.messages
    root = await m.post(alice, GENERAL_CHAT_ID, SendMessage(text="root"))
    await m.comment(bob, root.id, SendMessage(text="first"))
    streams = {a.login: harness.stream(a) for a in (alice, bob, carol, dave)}
    await next_turn()
    comment = await m.comment(carol, root.id, SendMessage(text="second"))
    await next_turn()
    for login, stream in streams.items():
        events = [e for _, e in stream.take()]
        created = [e.message.id for e in events if isinstance(e, MessageCreated)]
        updated = [e.message for e in events if isinstance(e, MessageUpdated)]
        activity = [e for e in events if isinstance(e, ThreadActivity)]
        assert created == [comment.id], login
        assert [(u.id, u.comment_count) for u in updated] == [(root.id, 2)], login
        if login in ("alice", "bob"):
            assert [(a.root_id, a.comment.id) for a in activity] == [(root.id, comment.id)]
        else:
            assert activity == [], login


async def test_thread_read_state(harness: Harness) -> None:
    alice = await harness.user("alice")
    bob = await harness.user("bob")
    bob_phone = await harness.device("bob")
    m = harness.app.messages
    root = await m.post(alice, GENERAL_CHAT_ID, SendMessage(text="root"))
    comments = [await m.comment(alice, root.id, SendMessage(text=f"c{i}")) for i in range(3)]
    await m.comment(bob, root.id, SendMessage(text="mine"))
    assert (await m.thread(bob, root.id)).unread == 3
    phone = harness.stream(bob_phone)
    await m.mark_thread_read(bob, root.id, MarkRead(up_to=comments[1].id))
    assert (await m.thread(bob_phone, root.id)).unread == 1
    await next_turn()
    markers = [e for _, e in phone.take() if isinstance(e, ReadMarker)]
    assert [(e.thread_root, e.up_to) for e in markers] == [(root.id, comments[1].id)]
    assert (await m.thread(alice, root.id)).unread == 1  # bob's comment
    # marking "everything, forever" stops at the newest comment
    await m.mark_thread_read(bob, root.id, MarkRead(up_to=10**12))
    await m.comment(alice, root.id, SendMessage(text="later"))
    assert (await m.thread(bob, root.id)).unread == 1


async def test_comments_obey_the_roots_chat(harness: Harness) -> None:
    owner = await harness.user("olga")
    bob = await harness.user("bob")
    eve = await harness.user("eve")
    chat = await harness.app.chats.create(owner, CreateChat(name="team"))
    await harness.app.chats.invite(owner, chat.id, InviteUser(login="bob"))
    root = await harness.app.messages.post(owner, chat.id, SendMessage(text="inside"))
    comment = await harness.app.messages.comment(bob, root.id, SendMessage(text="ok"))
    assert comment.chat_id == chat.id
    for target in (root.id, comment.id):
        with pytest.raises(ApiError) as err:
            await harness.app.messages.comment(eve, target, SendMessage(text="let me in"))
        assert err.value.code is ErrorCode.FORBIDDEN
