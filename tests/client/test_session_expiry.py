"""The plain console client when its session expires (issue 9 item 19), against the real
server process with its clock moved by the test."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.client.test_integration import PASSWORD
from tests.support.plain import Plain
from tests.support.server import ServerProcess

T0 = 1_700_000_000.0


@pytest.fixture
def clocked(server_factory: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    """A server whose sessions expire after an hour unused."""
    clock = tmp_path / "clock"
    clock.write_text(repr(T0))
    return server_factory(clock_file=clock, args=["--session-idle-timeout", "3600"])


@pytest.fixture
async def console(clocked: ServerProcess, tmp_path: Path) -> AsyncIterator[Plain]:
    env = {**os.environ, "MESSENGER_CLIENT_HOME": str(tmp_path / "client")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "messenger_client", "--plain", "--server", clocked.url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    yield Plain(proc)
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def test_plain_client_says_once_that_the_session_expired(
    clocked: ServerProcess, console: Plain
) -> None:
    """Item 19: /status says when the session expires; once it has, each command gets one
    line saying so and how to log in again (the cut stream adds none); /login starts anew."""
    console.send(f"/auth alice {PASSWORD}")
    await console.expect("logged in as alice")
    console.send("/status")
    line = await console.expect("this session expires")
    assert line.endswith("if left unused")
    clocked.set_time(T0 + 3600)
    console.send("/status")
    expired = await console.expect("session_expired")
    assert expired == (
        "error session_expired: session expired (unused for 1 h);"
        " log in again with /login <login> <password>"
    )
    console.send("/status")  # every command that finds it says so
    assert await console.expect("session_expired") == expired
    console.send(f"/login alice {PASSWORD}")
    await console.expect("logged in as alice")
    console.send("/status")
    await console.expect("status of alice")
    assert await console.finish() == 0
    # the event stream, cut when the session expired, adds no line to the commands' two;
    # it says so itself (once) only when it heard first, while no command ran: a request
    # of the console's own (its stream reconnecting under load, say) may find the expiry
    # before the first /status does (CI saw 3 lines once)
    assert sum("session_expired" in line for line in console.lines) in (2, 3)
