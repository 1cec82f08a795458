"""Private group chats: invite, link + approval, reject, leave, and access (F15)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    ChatLeft,
    ChatUpdated,
    CreateChat,
    CreateLink,
    ErrorCode,
    HistoryQuery,
    InviteUser,
    JoinChat,
    JoinDecided,
    JoinRequested,
    MarkRead,
    SendMessage,
)
from messenger_server.services import Actor

from .conftest import Harness, next_turn


async def test_create_and_names(harness: Harness) -> None:
    owner = await harness.user("olga")
    chat = await harness.app.chats.create(owner, CreateChat(name="team"))
    assert (chat.kind, chat.name, chat.owner, chat.members) == ("group", "team", "olga", 1)
    for name in ("team", "TEAM", "general"):
        with pytest.raises(ApiError) as err:
            await harness.app.chats.create(owner, CreateChat(name=name))
        assert err.value.code is ErrorCode.CONFLICT


async def test_join_without_key_asks_owner_who_invites(harness: Harness) -> None:
    owner = await harness.user("olga")
    bob = await harness.user("bob")
    chat = await harness.app.chats.create(owner, CreateChat(name="team"))
    owner_stream, bob_stream = harness.stream(owner), harness.stream(bob, "127.0.0.1:40001")
    result = await harness.app.chats.join(bob, JoinChat(name="team"))
    assert result.state == "asked_owner"
    with pytest.raises(ApiError):  # asking is not joining
        await harness.app.messages.history(bob, chat.id, HistoryQuery())
    await next_turn()
    asked = [e for _, e in owner_stream.take() if isinstance(e, JoinRequested)]
    assert [(e.request.login, e.request.with_key) for e in asked] == [("bob", False)]
    pending = await harness.app.chats.join_requests(owner, chat.id)
    assert [r.login for r in pending.requests] == ["bob"]
    members = await harness.app.chats.invite(owner, chat.id, InviteUser(login="bob"))
    assert [u.login for u in members.members] == ["bob", "olga"]
    await next_turn()
    updates = [e.chat for _, e in bob_stream.take() if isinstance(e, ChatUpdated)]
    assert [(c.id, c.members) for c in updates] == [(chat.id, 2)]
    assert (await harness.app.chats.join_requests(owner, chat.id)).requests == []
    await harness.app.messages.post(bob, chat.id, SendMessage(text="hi team"))
    again = await harness.app.chats.join(bob, JoinChat(name="team"))
    assert again.state == "already_member"


async def test_link_and_approval(harness: Harness) -> None:
    owner = await harness.user("olga")
    bob = await harness.user("bob")
    chat = await harness.app.chats.create(owner, CreateChat(name="team"))
    link = await harness.app.chats.create_link(owner, chat.id, CreateLink())
    assert link.link == f"http://127.0.0.1:8000/join/team?key={link.key}"
    owner_stream, bob_stream = harness.stream(owner), harness.stream(bob, "127.0.0.1:40001")
    result = await harness.app.chats.join(bob, JoinChat(name="team", key=link.key))
    assert result.state == "requested"
    with pytest.raises(ApiError):  # the key alone does not let anyone in
        await harness.app.messages.post(bob, chat.id, SendMessage(text="hi"))
    await next_turn()
    asked = [e.request for _, e in owner_stream.take() if isinstance(e, JoinRequested)]
    assert [(r.login, r.with_key) for r in asked] == [("bob", True)]
    members = await harness.app.chats.approve(owner, chat.id, "bob")
    assert {u.login for u in members.members} == {"olga", "bob"}
    await next_turn()
    events = [e for _, e in bob_stream.take()]
    decided = [e for e in events if isinstance(e, JoinDecided)]
    assert [(d.chat_id, d.approved) for d in decided] == [(chat.id, True)]
    assert any(isinstance(e, ChatUpdated) and e.chat.id == chat.id for e in events)
    await harness.app.messages.post(bob, chat.id, SendMessage(text="in"))
    with pytest.raises(ApiError) as err:  # nothing left to approve
        await harness.app.chats.approve(owner, chat.id, "bob")
    assert err.value.code is ErrorCode.NOT_FOUND


async def test_reject(harness: Harness) -> None:
    owner = await harness.user("olga")
    bob = await harness.user("bob")
    chat = await harness.app.chats.create(owner, CreateChat(name="team"))
    link = await harness.app.chats.create_link(owner, chat.id, CreateLink())
    bob_stream = harness.stream(bob)
    await harness.app.chats.join(bob, JoinChat(name="team", key=link.key))
    await harness.app.chats.reject(owner, chat.id, "bob")
    await next_turn()
    decided = [e for _, e in bob_stream.take() if isinstance(e, JoinDecided)]
    assert [(d.chat_name, d.approved) for d in decided] == [("team", False)]
    assert (await harness.app.chats.join_requests(owner, chat.id)).requests == []
    with pytest.raises(ApiError) as err:
        await harness.app.chats.chat(bob, chat.id)
    assert err.value.code is ErrorCode.FORBIDDEN


async def test_bad_expired_used_up_and_revoked_keys(harness: Harness) -> None:
    owner = await harness.user("olga")
    users = [await harness.user(f"u{i}") for i in range(4)]
    chat = await harness.app.chats.create(owner, CreateChat(name="team"))
    other = await harness.app.chats.create(owner, CreateChat(name="other"))
    once = await harness.app.chats.create_link(owner, chat.id, CreateLink(max_uses=1))
    short = await harness.app.chats.create_link(owner, chat.id, CreateLink(expires_in=60))
    revoked = await harness.app.chats.create_link(owner, chat.id, CreateLink())
    foreign = await harness.app.chats.create_link(owner, other.id, CreateLink())
    await harness.app.chats.revoke_link(owner, chat.id, revoked.key)
    assert (await harness.app.chats.join(users[0], JoinChat(name="team", key=once.key))).state
    harness.clock.advance(61)
    for user, key in zip(
        users[1:], (once.key, short.key, revoked.key), strict=True
    ):  # used up, expired, revoked
        with pytest.raises(ApiError) as err:
            await harness.app.chats.join(user, JoinChat(name="team", key=key))
        assert err.value.code is ErrorCode.FORBIDDEN
    for key in ("nonsense", foreign.key):
        with pytest.raises(ApiError) as err:
            await harness.app.chats.join(users[3], JoinChat(name="team", key=key))
        assert err.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(ApiError) as err:
        await harness.app.chats.join(users[3], JoinChat(name="nosuchchat"))
    assert err.value.code is ErrorCode.NOT_FOUND
    status = await harness.app.status.status(owner)
    owned = {o.chat.name: o for o in status.owned_chats}
    assert [k.key for k in owned["team"].links] == []  # none usable any more
    assert [r.login for r in owned["team"].pending_requests] == ["u0"]
    assert [k.key for k in owned["other"].links] == [foreign.key]


async def test_leave_and_remove(harness: Harness) -> None:
    owner = await harness.user("olga")
    bob = await harness.user("bob")
    carol = await harness.user("carol")
    chat = await harness.app.chats.create(owner, CreateChat(name="team"))
    await harness.app.chats.invite(owner, chat.id, InviteUser(login="bob"))
    await harness.app.chats.invite(owner, chat.id, InviteUser(login="carol"))
    bob_stream = harness.stream(bob)
    with pytest.raises(ApiError) as err:  # only the owner removes others
        await harness.app.chats.remove_member(carol, chat.id, "bob")
    assert err.value.code is ErrorCode.FORBIDDEN
    await harness.app.chats.remove_member(owner, chat.id, "bob")
    await next_turn()
    left = [e for _, e in bob_stream.take() if isinstance(e, ChatLeft)]
    assert [(e.chat_id, e.reason) for e in left] == [(chat.id, "removed by the owner")]
    with pytest.raises(ApiError):
        await harness.app.messages.history(bob, chat.id, HistoryQuery())
    await harness.app.chats.remove_member(carol, chat.id, "carol")  # leaving
    with pytest.raises(ApiError) as err:
        await harness.app.chats.remove_member(carol, chat.id, "carol")
    assert err.value.code is ErrorCode.FORBIDDEN
    await harness.app.chats.invite(owner, chat.id, InviteUser(login="carol"))
    with pytest.raises(ApiError) as err:  # the owner may not leave others behind
        await harness.app.chats.remove_member(owner, chat.id, "olga")
    assert err.value.code is ErrorCode.CONFLICT
    await harness.app.chats.remove_member(owner, chat.id, "carol")
    await harness.app.chats.remove_member(owner, chat.id, "olga")  # the last one may
    with pytest.raises(ApiError) as err:
        await harness.app.chats.remove_member(owner, GENERAL_CHAT_ID, "olga")
    assert err.value.code is ErrorCode.FORBIDDEN


async def test_non_member_and_non_owner_are_denied_everything(harness: Harness) -> None:
    owner = await harness.user("olga")
    member = await harness.user("mia")
    outsider = await harness.user("eve")
    chat = await harness.app.chats.create(owner, CreateChat(name="team"))
    await harness.app.chats.invite(owner, chat.id, InviteUser(login="mia"))
    msg = await harness.app.messages.post(owner, chat.id, SendMessage(text="secret"))
    link = await harness.app.chats.create_link(owner, chat.id, CreateLink())
    app = harness.app

    def every_chat_operation(actor: Actor, chat_id: int) -> list[Callable[[], Awaitable[object]]]:
        return [
            lambda: app.chats.chat(actor, chat_id),
            lambda: app.messages.history(actor, chat_id, HistoryQuery()),
            lambda: app.messages.post(actor, chat_id, SendMessage(text="x")),
            lambda: app.messages.mark_read(actor, chat_id, MarkRead(up_to=1)),
            lambda: app.chats.members(actor, chat_id),
            lambda: app.chats.invite(actor, chat_id, InviteUser(login="eve")),
            lambda: app.chats.create_link(actor, chat_id, CreateLink()),
            lambda: app.chats.revoke_link(actor, chat_id, link.key),
            lambda: app.chats.join_requests(actor, chat_id),
            lambda: app.chats.approve(actor, chat_id, "eve"),
            lambda: app.chats.reject(actor, chat_id, "eve"),
            lambda: app.chats.remove_member(actor, chat_id, "olga"),
        ]

    def every_message_operation(actor: Actor) -> list[Callable[[], Awaitable[object]]]:
        return [
            lambda: app.messages.message(actor, msg.id),
            lambda: app.messages.comment(actor, msg.id, SendMessage(text="x")),
            lambda: app.messages.thread(actor, msg.id),
            lambda: app.messages.mark_thread_read(actor, msg.id, MarkRead(up_to=1)),
        ]

    denied = [
        *every_chat_operation(outsider, chat.id),
        *every_chat_operation(outsider, 9999),  # no such chat: the same answer
        *every_message_operation(outsider),
        *every_chat_operation(member, chat.id)[5:11],  # owner-only operations
    ]
    for operation in denied:
        with pytest.raises(ApiError) as err:
            await operation()
        assert err.value.code is ErrorCode.FORBIDDEN, operation
    with pytest.raises(ApiError) as err:
        await app.messages.message(outsider, 9999)
    assert err.value.code is ErrorCode.FORBIDDEN
    page = await app.messages.history(member, chat.id, HistoryQuery())
    assert [m.text for m in page.messages] == ["secret"]
