"""Complaints and bans (F12), the general-chat rate limit (F9), the login throttle,
the admin service (F21), on a real app with a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    Banned,
    BanUser,
    Credentials,
    ErrorCode,
    FileComplaint,
    Message,
    OpenDirect,
    SendMessage,
)
from messenger_server.services import Actor

from .conftest import PASSWORD, Harness, ManualClock, make_app, next_turn

WINDOW_START = 1_700_002_800.0
"""A multiple of 3600: the start of a fixed rate-limit window."""


@pytest.fixture
async def mod(tmp_path: Path) -> AsyncIterator[Harness]:
    """An app with the default moderation settings (rate limit on)."""
    clock = ManualClock(WINDOW_START + 100)
    app, hub = make_app(tmp_path, clock, rate_limit_messages=20, admins=("root",))
    await app.start()
    h = Harness(app, clock, hub)
    try:
        yield h
    finally:
        for sub in h.subs:
            app.close_stream(sub)
        await app.close()


async def _users(h: Harness, *names: str) -> list[Actor]:
    return [await h.user(n) for n in names]


async def _post(
    h: Harness, actor: Actor, text: str = "hi", chat_id: int = GENERAL_CHAT_ID
) -> Message:
    return await h.app.messages.post(actor, chat_id, SendMessage(text=text))


async def test_ban_at_exactly_the_third_distinct_complaint(mod: Harness) -> None:
    target = await mod.user("target")
    a, b, c = await _users(mod, "a", "b", "c")
    complain = mod.app.moderation.complain
    first = await complain(a, FileComplaint(login="target", reason="spam"))
    assert (first.distinct_complaints, first.banned_until) == (1, None)
    # repeats from the same user do not count again
    for _ in range(3):
        again = await complain(a, FileComplaint(login="target"))
        assert (again.distinct_complaints, again.banned_until) == (1, None)
    second = await complain(b, FileComplaint(login="target"))
    assert (second.distinct_complaints, second.banned_until) == (2, None)
    await _post(mod, target, "still allowed")
    third = await complain(c, FileComplaint(login="target", reason="rude"))
    assert third.distinct_complaints == 3
    assert third.banned_until == mod.clock.now() + 4 * 3600
    with pytest.raises(ApiError) as err:
        await _post(mod, target, "refused")
    assert err.value.code is ErrorCode.BANNED and err.value.until == third.banned_until
    # comments and private messages are refused too; reading is not
    chat = await mod.app.chats.open_direct(target, OpenDirect(login="a"))
    with pytest.raises(ApiError):
        await _post(mod, target, "dm", chat.id)
    assert (await mod.app.messages.unread(target)).total >= 0


async def test_complaints_about_yourself_or_nobody_are_refused(mod: Harness) -> None:
    a = await mod.user("a")
    with pytest.raises(ApiError) as err:
        await mod.app.moderation.complain(a, FileComplaint(login="a"))
    assert err.value.code is ErrorCode.INVALID
    with pytest.raises(ApiError) as err:
        await mod.app.moderation.complain(a, FileComplaint(login="ghost"))
    assert err.value.code is ErrorCode.NOT_FOUND


async def test_ban_ends_by_itself_and_the_count_starts_again(mod: Harness) -> None:
    target = await mod.user("target")
    others = await _users(mod, "a", "b", "c")
    for who in others:
        result = await mod.app.moderation.complain(who, FileComplaint(login="target"))
    assert result.banned_until is not None
    mod.clock.advance(4 * 3600 - 1)
    with pytest.raises(ApiError):
        await _post(mod, target)
    mod.clock.advance(1)
    await _post(mod, target, "free again")
    # the earlier complaints were used up by the ban
    again = await mod.app.moderation.complain(others[0], FileComplaint(login="target"))
    assert (again.distinct_complaints, again.banned_until) == (1, None)


async def test_banned_user_and_admins_are_told(mod: Harness) -> None:
    root = await mod.user("root")
    target = await mod.user("target")
    root_events, target_events = mod.stream(root), mod.stream(target, "127.0.0.1:40001")
    a, b, c = await _users(mod, "a", "b", "c")
    for who in (a, b, c):
        await mod.app.moderation.complain(who, FileComplaint(login="target", reason="x"))
    await next_turn()
    for stream in (root_events, target_events):
        banned = [e for _, e in stream.take() if isinstance(e, Banned)]
        assert [(e.login, e.until is not None) for e in banned] == [("target", True)]


async def test_rate_limit_twenty_then_retry_after_then_window_reset(mod: Harness) -> None:
    alice = await mod.user("alice")
    for i in range(20):
        await _post(mod, alice, f"m{i}")
    with pytest.raises(ApiError) as err:
        await _post(mod, alice, "21st")
    assert err.value.code is ErrorCode.RATE_LIMITED
    assert err.value.retry_after == 3600 - 100
    # other chats are not limited, and a retried send does not count
    bob = await mod.user("bob")
    chat = await mod.app.chats.open_direct(alice, OpenDirect(login="bob"))
    await _post(mod, alice, "private", chat.id)
    mod.clock.advance(3600 - 100)  # the next window
    post = mod.app.messages.post
    first = await post(alice, GENERAL_CHAT_ID, SendMessage(text="x", client_id="c1"))
    for _ in range(5):
        assert await post(alice, GENERAL_CHAT_ID, SendMessage(text="x", client_id="c1")) == first
    for i in range(19):
        await _post(mod, alice, f"n{i}")
    with pytest.raises(ApiError):
        await _post(mod, alice, "over")
    await _post(mod, bob, "bob has his own count")


async def test_rate_limit_counter_survives_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(WINDOW_START + 10)
    app, _ = make_app(tmp_path, clock, rate_limit_messages=3)
    await app.start()
    h = Harness(app, clock, _)
    alice = await h.user("alice")
    for _i in range(3):
        await _post(h, alice)
    await app.close()
    app, _hub = make_app(tmp_path, clock, rate_limit_messages=3)
    await app.start()
    try:
        with pytest.raises(ApiError) as err:
            await app.messages.post(alice, GENERAL_CHAT_ID, SendMessage(text="again"))
        assert err.value.code is ErrorCode.RATE_LIMITED
    finally:
        await app.close()


async def test_ban_survives_a_restart_and_ends_on_time(tmp_path: Path) -> None:
    clock = ManualClock()
    app, hub = make_app(tmp_path, clock, admins=("root",))
    await app.start()
    h = Harness(app, clock, hub)
    root, target = await h.user("root"), await h.user("target")
    await app.admin.ban(root, BanUser(login="target", seconds=600, reason="calm down"))
    await app.close()
    app, hub = make_app(tmp_path, clock)
    await app.start()
    try:
        with pytest.raises(ApiError) as err:
            await app.messages.post(target, GENERAL_CHAT_ID, SendMessage(text="no"))
        assert err.value.code is ErrorCode.BANNED
        clock.advance(600)
        await app.messages.post(target, GENERAL_CHAT_ID, SendMessage(text="yes"))
    finally:
        await app.close()


async def test_admin_queue_dismiss_ban_unban(mod: Harness) -> None:
    root = await mod.user("root")
    target, a, b = await _users(mod, "target", "a", "b")
    admin = mod.app.admin
    with pytest.raises(ApiError) as err:
        await admin.complaints(a)
    assert err.value.code is ErrorCode.FORBIDDEN
    first = await mod.app.moderation.complain(a, FileComplaint(login="target", reason="spam"))
    await mod.app.moderation.complain(b, FileComplaint(login="target", reason="spam too"))
    queue = await admin.complaints(root)
    assert [(c.author, c.target, c.state) for c in queue.complaints] == [
        ("a", "target", "open"),
        ("b", "target", "open"),
    ]
    dismissed = await admin.dismiss(root, first.complaint.id)
    assert dismissed.state == "dismissed"
    with pytest.raises(ApiError) as err:
        await admin.dismiss(root, first.complaint.id)
    assert err.value.code is ErrorCode.CONFLICT
    users = {u.login: u for u in (await admin.users(root)).users}
    assert users["target"].complaints == 1 and users["root"].is_admin
    user = await admin.ban(root, BanUser(login="target", seconds=60))
    assert user.banned_until == mod.clock.now() + 60
    assert (await admin.complaints(root)).complaints == []  # actioned by the ban
    users = {u.login: u for u in (await admin.users(root)).users}
    assert users["target"].banned_until == user.banned_until
    await admin.unban(root, "target")
    await _post(mod, target, "unbanned")
    stats = await admin.stats(root)
    assert stats.users == 4 and stats.messages == 1
    settings = await admin.effective_settings(root)
    assert settings.values["complaints_to_ban"] == 3


async def test_login_throttle_after_five_failures(mod: Harness) -> None:
    await mod.user("alice")
    login = mod.app.accounts.login
    for _ in range(5):
        with pytest.raises(ApiError) as err:
            await login(Credentials(login="alice", password="wrong-one"), "10.0.0.1")
        assert err.value.code is ErrorCode.UNAUTHORIZED
    with pytest.raises(ApiError) as err:  # even the right password waits now
        await login(Credentials(login="alice", password=PASSWORD), "10.0.0.1")
    assert err.value.code is ErrorCode.RATE_LIMITED
    assert err.value.retry_after == 300
    mod.clock.advance(300)
    await login(Credentials(login="alice", password=PASSWORD), "10.0.0.1")
