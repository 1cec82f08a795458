"""Idle event streams: hold N authenticated SSE streams, report server memory per stream.

    uv run python bench/idle_streams.py [--streams 10000] [--save FILE] [--baseline FILE]

SPEC §7 target: 10,000 idle streams at <= 8 KB of server memory each; issue 11's: 4 KB. Raises the
open-file limit of this process (and so of the server it starts) as far as allowed.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from _common import ServerProcess, register, report

TARGET = 4096
"""Bytes of server RSS per idle authenticated stream (issue 11)."""


class Idle(asyncio.Protocol):
    """Sends the request, then only waits for the response head."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.ready.done():
            self.ready.set_result(None)


async def run(streams: int, users: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess(
            Path(tmp) / "data",
            args=["--log-level", "WARNING", "--max-connections-per-ip", str(streams + 100)],
        )
        srv.start()
        try:
            tokens = [await register("127.0.0.1", srv.port, f"idle{i}") for i in range(users)]
            proc = psutil.Process(srv.proc.pid)  # type: ignore[union-attr]
            await asyncio.sleep(0.5)
            before = proc.memory_info().rss
            loop = asyncio.get_running_loop()
            held: list[asyncio.Transport] = []
            t0 = time.perf_counter()
            for start in range(0, streams, 500):
                batch = []
                for i in range(start, min(streams, start + 500)):
                    req = (
                        "GET /api/v1/events HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer "
                        f"{tokens[i % users]}\r\n\r\n"
                    ).encode()
                    proto = Idle(req)
                    transport, _ = await loop.create_connection(
                        lambda p=proto: p,  # type: ignore[misc]
                        "127.0.0.1",
                        srv.port,
                    )
                    held.append(transport)
                    batch.append(proto.ready)
                await asyncio.gather(*batch)
            connect_s = time.perf_counter() - t0
            await asyncio.sleep(2.0)
            after = proc.memory_info().rss
            for transport in held:
                transport.close()
            return {
                "streams": streams,
                "connect_s": connect_s,
                "server_rss_before_mb": before / 2**20,
                "server_rss_after_mb": after / 2**20,
                "bytes_per_stream": (after - before) / streams,
            }
        finally:
            srv.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--baseline", type=Path)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.streams * 2 + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    results = asyncio.run(run(args.streams, args.users))
    report(results, args)
    verdict = "ok" if results["bytes_per_stream"] <= TARGET else "OVER"
    print(f"  target: <= {TARGET} bytes per stream -> {verdict}")


if __name__ == "__main__":
    main()
