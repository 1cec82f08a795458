"""The plain console client (``python -m messenger_client --plain``) as a test subprocess."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["TIMEOUT", "Plain", "StartPlain"]

TIMEOUT = 15.0
"""How long a test waits for one expected output line or for the client to exit."""


class Plain:
    """``python -m messenger_client --plain`` as a subprocess, line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")

    async def expect(self, fragment: str) -> str:
        """The next output line containing ``fragment`` (earlier lines are kept)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"EOF before {fragment!r}; got {self.lines}")
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if fragment in line:
                    return line

    async def finish(self) -> int:
        """Close stdin (EOF) and wait for the exit code; the rest of the output is kept."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        async with asyncio.timeout(TIMEOUT):
            rest = await self.proc.stdout.read()
            code = await self.proc.wait()
        self.lines += rest.decode().splitlines()
        return code


StartPlain = Callable[..., Awaitable[Plain]]
