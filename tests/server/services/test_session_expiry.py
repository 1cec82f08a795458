"""Sessions expire after an idle timeout and at a maximum age (issue 9 item 19), on a
real app with a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger_protocol import ApiError, Credentials, ErrorCode

from .conftest import PASSWORD, Harness, ManualClock, make_app

IDLE = 3600
MAX_AGE = 10 * 3600


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Harness]:
    """An app whose sessions expire after an hour unused or ten hours after login."""
    clock = ManualClock()
    app, hub = make_app(tmp_path, clock, session_idle_timeout=IDLE, session_max_age=MAX_AGE)
    await app.start()
    try:
        yield Harness(app, clock, hub)
    finally:
        await app.close()


async def _token(h: Harness, login: str = "alice") -> str:
    session = await h.app.accounts.register(Credentials(login=login, password=PASSWORD), "ip")
    return session.token


async def _refusal(h: Harness, token: str) -> ApiError:
    with pytest.raises(ApiError) as err:
        await h.app.accounts.authenticate(token, "127.0.0.1:1")
    return err.value


async def test_an_idle_session_expires_one_second_after_the_timeout(sessions: Harness) -> None:
    """Item 19: unused for IDLE - 1 s it works (and is renewed); unused for IDLE it expires."""
    token = await _token(sessions)
    sessions.clock.advance(IDLE - 1)
    await sessions.app.accounts.authenticate(token, "127.0.0.1:1")
    sessions.clock.advance(IDLE - 1)
    await sessions.app.accounts.authenticate(token, "127.0.0.1:1")
    sessions.clock.advance(IDLE)
    err = await _refusal(sessions, token)
    assert err.code is ErrorCode.SESSION_EXPIRED and err.status == 401
    assert err.message == "session expired (unused for 1 h); log in again"
    # it stays expired, also once the token is no longer cached
    sessions.app.accounts._actors.clear()
    assert (await _refusal(sessions, token)).code is ErrorCode.SESSION_EXPIRED
    # the password still works: a new session
    fresh = await sessions.app.accounts.login(Credentials(login="alice", password=PASSWORD), "ip")
    await sessions.app.accounts.authenticate(fresh.token, "127.0.0.1:1")


async def test_a_used_session_expires_at_its_maximum_age(sessions: Harness) -> None:
    """Item 19: used every half hour, a session still ends MAX_AGE after login."""
    token = await _token(sessions)
    for _ in range(MAX_AGE // 1800 - 1):
        sessions.clock.advance(1800)
        await sessions.app.accounts.authenticate(token, "127.0.0.1:1")
    sessions.clock.advance(1799)
    await sessions.app.accounts.authenticate(token, "127.0.0.1:1")
    sessions.clock.advance(1)
    err = await _refusal(sessions, token)
    assert err.code is ErrorCode.SESSION_EXPIRED
    assert err.message == "session expired (10 h after login); log in again"


async def test_status_says_when_this_session_expires(sessions: Harness) -> None:
    """Item 19: /status carries the expiry: idle timeout from now, capped by the maximum age."""
    token = await _token(sessions)
    start = sessions.clock.now()
    actor = await sessions.app.accounts.authenticate(token, "127.0.0.1:1")
    status = await sessions.app.status.status(actor)
    assert status.session_expires_at == start + IDLE
    for _ in range(MAX_AGE // 1800 - 1):
        sessions.clock.advance(1800)
        await sessions.app.accounts.authenticate(token, "127.0.0.1:1")
    status = await sessions.app.status.status(actor)
    assert status.session_expires_at == start + MAX_AGE


async def test_the_last_use_survives_a_restart(tmp_path: Path) -> None:
    """Item 19: after a restart the idle time counts from the last use written before it."""
    clock = ManualClock()
    settings = {"session_idle_timeout": IDLE, "session_max_age": MAX_AGE}
    app, _ = make_app(tmp_path, clock, **settings)
    await app.start()
    session = await app.accounts.register(Credentials(login="alice", password=PASSWORD), "ip")
    clock.advance(IDLE - 1)
    await app.accounts.authenticate(session.token, "127.0.0.1:1")  # renews, and is written
    await app.close()
    app, _ = make_app(tmp_path, clock, **settings)
    await app.start()
    try:
        clock.advance(IDLE - 1)
        await app.accounts.authenticate(session.token, "127.0.0.1:1")
        clock.advance(IDLE)
        with pytest.raises(ApiError) as err:
            await app.accounts.authenticate(session.token, "127.0.0.1:1")
        assert err.value.code is ErrorCode.SESSION_EXPIRED
    finally:
        await app.close()
