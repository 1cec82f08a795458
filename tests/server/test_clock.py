"""Clocks: the real one, and the file clock that lets end-to-end tests move server time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from messenger_server.clock import FileClock, SystemClock, clock_from_env


def set_time(path: Path, value: float) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(repr(value))
    tmp.replace(path)


def test_file_clock_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    clock = FileClock(path)
    assert abs(clock.now() - time.time()) < 5  # no file yet: real time
    set_time(path, 1_000_000.5)
    assert clock.now() == 1_000_000.5
    set_time(path, 2_000_000.0)
    assert clock.now() == 2_000_000.0
    path.write_text("garbage")
    assert clock.now() == 2_000_000.0  # unreadable: keeps the last good time
    path.unlink()
    assert abs(clock.now() - time.time()) < 5  # gone: real time again
    set_time(path, 3_000_000.0)
    assert clock.now() == 3_000_000.0


async def test_file_clock_sleep_until_wakes_when_time_moves(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    set_time(path, 100.0)
    clock = FileClock(path)
    sleeper = asyncio.create_task(clock.sleep_until(200.0))
    await asyncio.sleep(0.1)
    assert not sleeper.done()
    set_time(path, 200.0)
    async with asyncio.timeout(5):
        await sleeper


async def test_system_clock() -> None:
    clock = SystemClock()
    assert abs(clock.now() - time.time()) < 1
    async with asyncio.timeout(1):
        await clock.sleep_until(clock.now() - 10)  # past: returns at once


def test_clock_from_env(tmp_path: Path) -> None:
    assert isinstance(clock_from_env({}), SystemClock)
    chosen = clock_from_env({"MESSENGER_TEST_CLOCK_FILE": str(tmp_path / "c")})
    assert isinstance(chosen, FileClock) and chosen.path == tmp_path / "c"
