"""Wall-clock time for the services, replaceable so tests can move the server's time.

With ``MESSENGER_TEST_CLOCK_FILE`` set, the server's "now" is the number in that
file, so end-to-end tests exercise expiry, bans and scheduling without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

__all__ = [
    "POLL_SECONDS",
    "TEST_CLOCK_ENV",
    "Clock",
    "FileClock",
    "SystemClock",
    "clock_from_env",
    "wait_until",
]

log = logging.getLogger(__name__)

TEST_CLOCK_ENV = "MESSENGER_TEST_CLOCK_FILE"
"""Env var naming the file of a :class:`FileClock`."""

_FILE_CLOCK_POLL = 0.05

POLL_SECONDS = 0.25
"""The service loops look at the clock (and at rows added by others) at least this often."""
MIN_SLEEP = 0.01
"""Shortest pause between two passes (a row that keeps failing cannot spin a loop)."""


class Clock(Protocol):
    """Unix time in seconds, and sleeping until a moment of that time."""

    def now(self) -> float:
        """Current Unix time in seconds."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Return once :meth:`now` is at or past ``when``."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """``time.time()``."""
        return time.time()

    async def sleep_until(self, when: float) -> None:
        """Sleep for ``when - now`` seconds (at once if already past)."""
        delay = when - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


class FileClock:
    """Time read from a file holding one number; re-read when the file changes.

    While there is no file the real clock is used (a test that removes it gives the
    server the real time back). Tests replace the file atomically (write a temp file,
    rename) to move time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._value: float | None = None

    def now(self) -> float:
        """The number in the file (re-read only when its mtime or size changed)."""
        try:
            st = os.stat(self.path)
        except OSError:
            self._stamp = self._value = None
            return time.time()
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                self._value = float(self.path.read_text().strip())
                self._stamp = stamp
            except (OSError, ValueError):
                log.warning("test clock file %s unreadable; keeping the previous time", self.path)
        return self._value if self._value is not None else time.time()

    async def sleep_until(self, when: float) -> None:
        """Wait until the file's time reaches ``when`` (checked every 50 ms)."""
        # a file has no change notification we can await portably: poll it
        while self.now() < when:  # noqa: ASYNC110
            await asyncio.sleep(_FILE_CLOCK_POLL)


def clock_from_env(environ: Mapping[str, str] | None = None) -> Clock:
    """A :class:`FileClock` if ``MESSENGER_TEST_CLOCK_FILE`` is set, else the system clock."""
    environ = os.environ if environ is None else environ
    path = environ.get(TEST_CLOCK_ENV)
    if path:
        log.warning("using the test clock in %s", path)
        return FileClock(Path(path))
    return SystemClock()


async def wait_until(clock: Clock, when: float | None, wake: asyncio.Event) -> None:
    """Return once ``clock`` may have reached ``when``, or as soon as ``wake`` is set.

    Test clocks move without notice, so this never sleeps longer than
    :data:`POLL_SECONDS` of real time: the caller looks at the clock again.
    """
    delay = POLL_SECONDS if when is None else when - clock.now()
    delay = min(max(delay, MIN_SLEEP), POLL_SECONDS)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):
            await wake.wait()
