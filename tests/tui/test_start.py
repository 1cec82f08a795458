"""The start of the app: the garbage collector paused for it runs again."""

from __future__ import annotations

import gc
from pathlib import Path

from tests.tui.conftest import until
from tests.tui.test_offline import SIZE, offline_app


async def test_the_garbage_collector_runs_again_after_the_start(tmp_path: Path) -> None:
    assert gc.isenabled()
    app = offline_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main and app.main.view.layout_, "the cached chat")
        await until(pilot, gc.isenabled, "the collector on again")
    assert gc.isenabled()


async def test_the_garbage_collector_runs_again_when_the_app_ends_at_once(
    tmp_path: Path,
) -> None:
    app = offline_app(tmp_path)
    async with app.run_test(size=SIZE):
        pass
    assert gc.isenabled()
