"""The failed-login throttle (issue 9 item 17) against the real server process.

Every loopback address reaches the server, so a client bound to ``127.0.0.2`` is an
attacker and one bound to ``127.0.0.3`` the owner on another network.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from messenger_client.api import tls_context
from tests.support.server import ServerProcess
from tests.support.wire import register

T0 = 1_700_000_000.0
LOGIN = "/api/v1/auth/login"
ATTACKER, OWNER, OTHER = "127.0.0.2", "127.0.0.3", "127.0.0.4"


def _clocked(
    server_factory: Callable[..., ServerProcess], tmp_path: Path, *args: str
) -> ServerProcess:
    clock = tmp_path / "clock"
    clock.write_text(repr(T0))
    return server_factory(clock_file=clock, args=list(args))


async def _login(srv: ServerProcess, source: str, login: str, password: str) -> httpx.Response:
    """POST /auth/login from the local address ``source``."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(
        verify=tls_context(), base_url=srv.url, transport=transport, timeout=10.0
    ) as client:
        return await client.post(LOGIN, json={"login": login, "password": password})


async def test_owner_logs_in_from_a_fresh_address_while_the_attacker_is_throttled(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Item 17: wrong passwords from one address no longer lock the owner out."""
    srv = _clocked(server_factory, tmp_path, "--login-failures-max", "3")
    await register(srv.url, "alice")
    for _ in range(3):
        assert (await _login(srv, ATTACKER, "alice", "wrong-pw")).status_code == 401
    throttled = await _login(srv, ATTACKER, "alice", "password1")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "rate_limited"
    assert throttled.json()["error"]["retry_after"] == 300
    owner = await _login(srv, OWNER, "alice", "password1")
    assert owner.status_code == 200 and owner.json()["user"]["login"] == "alice"
    srv.set_time(T0 + 299)
    assert (await _login(srv, ATTACKER, "alice", "password1")).status_code == 429
    srv.set_time(T0 + 300)
    assert (await _login(srv, ATTACKER, "alice", "password1")).status_code == 200


async def test_unknown_login_is_throttled_like_a_known_one(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Item 17: a login that does not exist gets the same 401s and then the same 429."""
    srv = _clocked(server_factory, tmp_path, "--login-failures-max", "3")
    await register(srv.url, "alice")
    answers: dict[str, list[httpx.Response]] = {}
    for login, source in (("alice", ATTACKER), ("ghost", OTHER)):
        answers[login] = [await _login(srv, source, login, "wrong-pw") for _ in range(4)]
    known, unknown = answers["alice"], answers["ghost"]
    assert [r.status_code for r in known] == [r.status_code for r in unknown] == [401] * 3 + [429]
    assert [r.json() for r in known] == [r.json() for r in unknown]


async def test_spraying_many_accounts_from_one_address_is_throttled(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Item 17: one guess each on many accounts; the address is refused after the limit."""
    srv = _clocked(server_factory, tmp_path, "--login-failures-per-address", "5")
    for n in range(6):
        await register(srv.url, f"user{n}")
    for n in range(5):
        assert (await _login(srv, ATTACKER, f"user{n}", "wrong-pw")).status_code == 401
    sprayed = await _login(srv, ATTACKER, "user5", "wrong-pw")
    assert sprayed.status_code == 429 and sprayed.json()["error"]["retry_after"] == 300
    # the address is refused for every login, right password or not
    assert (await _login(srv, ATTACKER, "user5", "password1")).status_code == 429
    # the accounts themselves are not locked
    assert (await _login(srv, OWNER, "user5", "password1")).status_code == 200
    srv.set_time(T0 + 300)
    assert (await _login(srv, ATTACKER, "user5", "password1")).status_code == 200
