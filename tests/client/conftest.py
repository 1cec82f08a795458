"""Fixtures of the client tests: library clients and plain console processes of a server."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.client.test_integration import Plain, StartPlain
from tests.support.server import ServerProcess


@pytest.fixture
async def plain_on(tmp_path: Path) -> AsyncIterator[Callable[[ServerProcess], StartPlain]]:
    """Plain console clients (``--plain``, stdin/stdout pipes) of a given server."""
    procs: list[asyncio.subprocess.Process] = []

    def on(server: ServerProcess) -> StartPlain:
        async def start(*args: str) -> Plain:
            home = tmp_path / f"client{len(procs)}"
            env = {**os.environ, "MESSENGER_CLIENT_HOME": str(home)}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "messenger_client", "--plain", "--server", server.url,
                *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            )  # fmt: skip
            procs.append(proc)
            return Plain(proc)

        return start

    yield on
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.fixture
def plain(server: ServerProcess, plain_on: Callable[[ServerProcess], StartPlain]) -> StartPlain:
    """Plain console clients of the default server."""
    return plain_on(server)
