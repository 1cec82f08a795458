"""The event loop's own lag: how late it runs a callback that was due, kept in memory.

Every :data:`INTERVAL` seconds a timer of the loop records how late it ran: what a
request arriving then waits before the loop reads it (a callback that runs long, a
worker thread holding the GIL when the loop wants it back, the loop's thread waiting
for a core). The loop's poll rounds its wait up to the next millisecond, so the timer
is set :data:`LEAD` early and a sample is how far past its due time it ran (0 if it ran
before): an idle loop measures ~0, a block is counted less at most ``LEAD``.

Beside each sample the meter notes how much CPU time the loop's thread used since the
previous one, and counts the smaller of the two as the sample's busy part: at most that
much of the lateness the loop was running code; the rest it waited (for a core of a busy
machine, for the GIL, in a blocking call).

Samples go into a fixed histogram (counts since start, which two readings can subtract)
and into one histogram per second for the last minute. ``GET /api/v1/admin/stats``
shows both (:class:`~messenger_protocol.LoopLag`).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import deque

from messenger_protocol import LoopLag

__all__ = ["BOUNDS_MS", "INTERVAL", "LEAD", "RECENT_SECONDS", "LoopLagMeter", "percentile_of"]

log = logging.getLogger(__name__)

INTERVAL = 0.01
"""Seconds between two samples."""
LEAD = 0.001
"""How early the timer is set (the poll's rounding)."""
RECENT_SECONDS = 60
"""The recent figures cover this many seconds."""
BOUNDS_MS: tuple[float, ...] = (
    0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.5, 15.0, 20.0,
    25.0, 30.0, 40.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0, 2000.0, 5000.0,
)  # fmt: skip
"""Upper bounds of the histogram's buckets (ms); one more bucket holds what is above."""


def percentile_of(counts: list[int], q: float, top: float) -> float:
    """The upper bound (ms) of the bucket holding the ``q``-th percentile of ``counts``
    (a histogram over :data:`BOUNDS_MS` whose largest sample is ``top``), never above
    ``top``; 0 without samples."""
    total = sum(counts)
    rank = q / 100 * total
    seen = 0
    for i, count in enumerate(counts):
        seen += count
        if count and seen >= rank:
            return min(BOUNDS_MS[i], top) if i < len(BOUNDS_MS) else top
    return 0.0


class LoopLagMeter:
    """Samples the running loop's lag from :meth:`start` to :meth:`stop`."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.counts = [0] * (len(BOUNDS_MS) + 1)
        """Samples per bucket since start."""
        self.max_ms = 0.0
        """The latest any callback ran since start."""
        self.busy_counts = [0] * (len(BOUNDS_MS) + 1)
        """The samples' busy parts per bucket since start."""
        self.busy_max_ms = 0.0
        self._recent: deque[tuple[int, list[int], float]] = deque(maxlen=RECENT_SECONDS)
        """(second, counts, max) of the last minute."""
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._cpu = 0.0

    def start(self) -> None:
        """Begin sampling the running loop."""
        if self._timer is None:
            self._cpu = time.thread_time()
            self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        """Stop sampling (what was recorded stays)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # the process's clock, not the loop's: uvloop's counts whole milliseconds
        self._due = time.monotonic() + self.interval
        self._timer = loop.call_later(self.interval - LEAD, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        lag_ms = (time.monotonic() - self._due) * 1000
        cpu, self._cpu = self._cpu, time.thread_time()
        self.add(lag_ms, (self._cpu - cpu) * 1000)
        self._schedule(loop)

    def add(self, lag_ms: float, cpu_ms: float) -> None:
        """Count one sample: ``lag_ms`` late, ``cpu_ms`` of the loop's thread since the
        previous one (on the loop)."""
        lag_ms = max(0.0, lag_ms)
        bucket = bisect.bisect_left(BOUNDS_MS, lag_ms)
        self.counts[bucket] += 1
        self.max_ms = max(self.max_ms, lag_ms)
        busy_ms = min(lag_ms, max(0.0, cpu_ms))
        self.busy_counts[bisect.bisect_left(BOUNDS_MS, busy_ms)] += 1
        self.busy_max_ms = max(self.busy_max_ms, busy_ms)
        second = int(time.monotonic())
        if not self._recent or self._recent[-1][0] != second:
            self._recent.append((second, [0] * len(self.counts), 0.0))
        _, counts, top = self._recent[-1]
        counts[bucket] += 1
        if lag_ms > top:
            self._recent[-1] = (second, counts, lag_ms)

    def snapshot(self) -> LoopLag:
        """The figures as ``admin stats`` shows them."""
        since = int(time.monotonic()) - RECENT_SECONDS
        recent = [0] * len(self.counts)
        recent_max = 0.0
        for second, counts, top in self._recent:
            if second > since:
                for i, count in enumerate(counts):
                    recent[i] += count
                recent_max = max(recent_max, top)
        return LoopLag(
            interval_ms=self.interval * 1000,
            samples=sum(self.counts),
            max_ms=round(self.max_ms, 3),
            bounds_ms=list(BOUNDS_MS),
            counts=list(self.counts),
            busy_counts=list(self.busy_counts),
            busy_max_ms=round(self.busy_max_ms, 3),
            recent_seconds=RECENT_SECONDS,
            recent_samples=sum(recent),
            recent_p50_ms=percentile_of(recent, 50, round(recent_max, 3)),
            recent_p99_ms=percentile_of(recent, 99, round(recent_max, 3)),
            recent_max_ms=round(recent_max, 3),
        )
