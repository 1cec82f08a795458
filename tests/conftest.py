"""Shared fixtures: the real server process on a free port with a temporary data dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with extra flags/env: ``server_factory(args=[...], clock_file=...)``."""
    started: list[ServerProcess] = []

    def start(**kwargs: object) -> ServerProcess:
        data_dir = tmp_path / f"data{len(started)}"
        srv = ServerProcess(data_dir, **kwargs)  # type: ignore[arg-type]
        started.append(srv)
        srv.start()
        return srv

    yield start
    for srv in started:
        srv.kill()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """A running server with default settings."""
    return server_factory()
