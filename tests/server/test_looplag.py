"""The event-loop lag meter of ``admin stats``: a loop that is blocked shows it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from messenger_protocol import LoopLag
from messenger_server.looplag import BOUNDS_MS, LoopLagMeter, percentile_of


class _Watched(LoopLagMeter):
    """A meter that says when it took a sample."""

    def __init__(self) -> None:
        super().__init__()
        self.sampled = asyncio.Event()

    def add(self, lag_ms: float, cpu_ms: float) -> None:
        super().add(lag_ms, cpu_ms)
        self.sampled.set()

    async def next_sample(self) -> None:
        self.sampled.clear()
        async with asyncio.timeout(5):
            await self.sampled.wait()


def _hold_the_loop() -> None:
    time.sleep(0.08)  # a callback that keeps the loop for 80 ms, waiting


def _work_the_loop() -> None:
    end = time.thread_time() + 0.08
    while time.thread_time() < end:  # a callback that computes for 80 ms of CPU
        pass


async def lag_around(callback: Callable[[], None]) -> LoopLag:
    """The meter's snapshot after one sample before ``callback`` runs on the loop and the
    next one after it."""
    meter = _Watched()
    meter.start()
    try:
        await meter.next_sample()
        asyncio.get_running_loop().call_soon(callback)
        await meter.next_sample()
    finally:
        meter.stop()
    return meter.snapshot()


async def test_a_callback_that_blocks_the_loop_shows_as_lag() -> None:
    lag = await lag_around(_hold_the_loop)
    assert lag.max_ms >= 60 and lag.recent_max_ms == lag.max_ms
    assert lag.recent_samples == lag.samples == sum(lag.counts) == 2
    assert len(lag.counts) == len(lag.bounds_ms) + 1 and lag.interval_ms == 10
    assert lag.recent_p99_ms == lag.max_ms  # 2 samples: the 99th percentile is the block
    assert lag.busy_max_ms < 20  # it slept: the loop was late, not busy


async def test_a_callback_that_computes_shows_as_busy_lag() -> None:
    lag = await lag_around(_work_the_loop)
    assert lag.max_ms >= 60 and lag.busy_max_ms >= 60
    assert sum(lag.busy_counts) == lag.samples == 2


def test_percentiles_are_bucket_bounds_never_above_the_maximum() -> None:
    counts = [0] * (len(BOUNDS_MS) + 1)
    counts[BOUNDS_MS.index(0.5)] = 98
    counts[BOUNDS_MS.index(10.0)] = 2
    assert percentile_of(counts, 50, 9.2) == 0.5
    assert percentile_of(counts, 99, 9.2) == 9.2
    counts[-1] = 1
    assert percentile_of(counts, 100, 7000.0) == 7000.0
    assert percentile_of([0] * len(counts), 99, 0.0) == 0.0
