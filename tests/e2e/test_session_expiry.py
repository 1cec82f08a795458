"""Sessions expire (issue 9 item 19): the real server with its clock moved by the test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support.server import ServerProcess
from tests.support.wire import call, register

T0 = 1_700_000_000.0
DAY = 24 * 3600


def _clocked(
    server_factory: Callable[..., ServerProcess], tmp_path: Path, *args: str
) -> ServerProcess:
    clock = tmp_path / "clock"
    clock.write_text(repr(T0))
    return server_factory(clock_file=clock, args=list(args))


async def test_default_idle_timeout_is_30_days_and_status_says_so(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Item 19: unused for 30 days a token gets 401 session_expired; /status shows the expiry."""
    srv = _clocked(server_factory, tmp_path)
    token = (await register(srv.url, "alice"))["token"]
    status = await call(srv.url, "GET", "/api/v1/status", token)
    assert status.status_code == 200 and status.json()["session_expires_at"] == T0 + 30 * DAY
    srv.set_time(T0 + 30 * DAY - 1)
    assert (await call(srv.url, "GET", "/api/v1/status", token)).status_code == 200
    srv.set_time(T0 + 60 * DAY - 1)
    expired = await call(srv.url, "GET", "/api/v1/status", token)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "session_expired"
    assert "log in again" in expired.json()["error"]["message"]
    # the event stream says the same; the password makes a new session
    stream = await call(srv.url, "GET", "/api/v1/events", token)
    assert (stream.status_code, stream.json()["error"]["code"]) == (401, "session_expired")
    login = await call(
        srv.url, "POST", "/api/v1/auth/login", json={"login": "alice", "password": "password1"}
    )
    assert login.status_code == 200
    assert (await call(srv.url, "GET", "/api/v1/status", login.json()["token"])).status_code == 200
    # a logged-out token is still just unauthorized
    assert (await call(srv.url, "POST", "/api/v1/auth/logout", login.json()["token"])).is_success
    ended = await call(srv.url, "GET", "/api/v1/status", login.json()["token"])
    assert ended.json()["error"]["code"] == "unauthorized"


async def test_max_age_flag_ends_a_busy_session(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Item 19: --session-max-age ends a session in use; /status caps the expiry at it."""
    srv = _clocked(server_factory, tmp_path, "--session-max-age", "7200")
    token = (await register(srv.url, "alice"))["token"]
    status = await call(srv.url, "GET", "/api/v1/status", token)
    assert status.json()["session_expires_at"] == T0 + 7200
    srv.set_time(T0 + 3600)
    assert (await call(srv.url, "GET", "/api/v1/status", token)).status_code == 200
    srv.set_time(T0 + 7199)
    assert (await call(srv.url, "GET", "/api/v1/status", token)).status_code == 200
    srv.set_time(T0 + 7200)
    expired = await call(srv.url, "GET", "/api/v1/chats", token)
    assert (expired.status_code, expired.json()["error"]["code"]) == (401, "session_expired")
