"""The failed-login throttle and the bounded password hashing (issue 9 item 17), on a
real app with a manual clock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import argon2
import pytest
from argon2 import PasswordHasher

from messenger_protocol import ApiError, Credentials, ErrorCode
from messenger_server.services.throttle import address_key

from .conftest import PASSWORD, Harness, ManualClock, make_app

ATTACKER = "203.0.113.7"
OWNER = "198.51.100.20"


@pytest.fixture
async def auth(tmp_path: Path) -> AsyncIterator[Harness]:
    """An app with 3 failures per (login, address) and 6 per address in 300 s."""
    clock = ManualClock()
    app, hub = make_app(tmp_path, clock, login_failures_max=3, login_failures_per_address=6)
    await app.start()
    try:
        yield Harness(app, clock, hub)
    finally:
        await app.close()


async def _login(h: Harness, login: str, password: str, address: str) -> ErrorCode | None:
    """None if logged in, else the error code."""
    try:
        await h.app.accounts.login(Credentials(login=login, password=password), address)
    except ApiError as err:
        return err.code
    return None


async def _refusal(h: Harness, login: str, address: str) -> ApiError:
    with pytest.raises(ApiError) as err:
        await h.app.accounts.login(Credentials(login=login, password="wrong-pw"), address)
    return err.value


async def test_failures_throttle_the_pair_not_the_owner(auth: Harness) -> None:
    """Item 17: wrong passwords from one address do not lock the owner out elsewhere."""
    await auth.user("alice")
    for _ in range(3):
        assert await _login(auth, "alice", "wrong-pw", ATTACKER) is ErrorCode.UNAUTHORIZED
    # the pair is throttled, even with the right password
    assert await _login(auth, "alice", PASSWORD, ATTACKER) is ErrorCode.RATE_LIMITED
    # the owner from an address that has not failed gets in
    assert await _login(auth, "alice", PASSWORD, OWNER) is None
    # a success forgives that pair's failures, not the attacker's
    for _ in range(2):
        assert await _login(auth, "alice", "wrong-pw", OWNER) is ErrorCode.UNAUTHORIZED
    assert await _login(auth, "alice", PASSWORD, OWNER) is None
    for _ in range(2):
        assert await _login(auth, "alice", "wrong-pw", OWNER) is ErrorCode.UNAUTHORIZED
    assert await _login(auth, "alice", PASSWORD, OWNER) is None
    assert await _login(auth, "alice", PASSWORD, ATTACKER) is ErrorCode.RATE_LIMITED
    auth.clock.advance(300)
    assert await _login(auth, "alice", PASSWORD, ATTACKER) is None


async def test_third_failure_throttles_second_does_not(auth: Harness) -> None:
    """Item 17: the pair limit crossed by one; retry_after is when the oldest failure ages out."""
    await auth.user("alice")
    for _ in range(2):
        assert await _login(auth, "alice", "wrong-pw", ATTACKER) is ErrorCode.UNAUTHORIZED
        auth.clock.advance(10)
    assert await _login(auth, "alice", "wrong-pw", ATTACKER) is ErrorCode.UNAUTHORIZED
    refused = await _refusal(auth, "alice", ATTACKER)
    assert refused.code is ErrorCode.RATE_LIMITED and refused.retry_after == 300 - 20
    auth.clock.advance(300 - 20)
    assert await _login(auth, "alice", "wrong-pw", ATTACKER) is ErrorCode.UNAUTHORIZED


async def test_unknown_login_is_throttled_exactly_like_a_known_one(auth: Harness) -> None:
    """Item 17: a login that does not exist counts and is refused with the same error."""
    await auth.user("alice")
    for login, address in (("alice", ATTACKER), ("ghost", OWNER)):
        for _ in range(3):
            assert await _login(auth, login, "wrong-pw", address) is ErrorCode.UNAUTHORIZED
    known = await _refusal(auth, "alice", ATTACKER)
    unknown = await _refusal(auth, "ghost", OWNER)
    assert known.code is unknown.code is ErrorCode.RATE_LIMITED
    assert (known.message, known.retry_after) == (unknown.message, unknown.retry_after)


async def test_spraying_many_logins_from_one_address_is_throttled(auth: Harness) -> None:
    """Item 17: one failure each on six logins from one address; the seventh is refused."""
    for n in range(7):
        await auth.user(f"user{n}")
    for n in range(6):
        assert await _login(auth, f"user{n}", "wrong-pw", ATTACKER) is ErrorCode.UNAUTHORIZED
    assert await _login(auth, "user6", PASSWORD, ATTACKER) is ErrorCode.RATE_LIMITED
    assert await _login(auth, "nobody", "wrong-pw", ATTACKER) is ErrorCode.RATE_LIMITED
    assert await _login(auth, "user6", PASSWORD, OWNER) is None


async def test_ipv6_counts_per_64_network(auth: Harness) -> None:
    """Item 17: hopping through addresses of one /64 does not reset the count."""
    await auth.user("alice")
    for host in range(3):
        address = f"2001:db8:1:2::{host + 1}"
        assert await _login(auth, "alice", "wrong-pw", address) is ErrorCode.UNAUTHORIZED
    assert await _login(auth, "alice", PASSWORD, "2001:db8:1:2:ffff::9") is ErrorCode.RATE_LIMITED
    assert await _login(auth, "alice", PASSWORD, "2001:db8:1:3::1") is None
    assert address_key("::ffff:10.1.2.3") == "10.1.2.3"


async def test_concurrent_attempts_cannot_slip_past_the_limit(auth: Harness) -> None:
    """Item 17: a burst of 12 at once from one pair: at most 3 reach the password check."""
    await auth.user("alice")
    codes = await asyncio.gather(*(_login(auth, "alice", "wrong-pw", ATTACKER) for _ in range(12)))
    assert codes.count(ErrorCode.UNAUTHORIZED) == 3
    assert codes.count(ErrorCode.RATE_LIMITED) == 9


class CountingHasher(PasswordHasher):
    """Cheap argon2 that notes how many hashes run at once and which hashes it verified."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.verified.append(hash if isinstance(hash, str) else hash.decode())
        try:
            threading.Event().wait(0.02)  # hold the slot as a real hash would
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


async def test_hashing_is_bounded_and_unknown_logins_verify_a_real_hash(tmp_path: Path) -> None:
    """Item 17: 16 logins at once from 16 addresses never run more than 2 argon2 hashes at
    once; an unknown login is checked against a hash of the same cost as a real one."""
    clock = ManualClock()
    app, _ = make_app(tmp_path, clock, login_hash_concurrency=2)
    hasher = CountingHasher()
    app.accounts.hasher = hasher
    await app.start()
    try:
        await app.accounts.register(Credentials(login="alice", password=PASSWORD), OWNER)
        logins = [
            app.accounts.login(Credentials(login="alice", password=PASSWORD), f"10.0.0.{n}")
            for n in range(16)
        ]
        sessions = await asyncio.gather(*logins)
        assert len({s.token for s in sessions}) == 16
        assert 1 <= hasher.most <= 2  # never more than the limit, however loaded
        hasher.verified.clear()
        with pytest.raises(ApiError):
            await app.accounts.login(Credentials(login="ghost", password="x" * 8), OWNER)
        (dummy,) = hasher.verified
        real = hasher.hash(PASSWORD)
        assert argon2.extract_parameters(dummy) == argon2.extract_parameters(real)
    finally:
        await app.close()
