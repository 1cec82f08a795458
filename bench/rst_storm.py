"""RST storm: clients that send part of a JSON body, then reset the connection.

    uv run python bench/rst_storm.py                   # 2,000 resets, 100 at a time
    uv run python bench/rst_storm.py --resets 2000 --save bench/results/rst_storm.json
    uv run python bench/rst_storm.py --server-src OLD  # the same against another checkout
                                                       # (OLD holds packages/*/src)

Each storm client starts an unauthenticated ``POST /api/v1/auth/login``, sends part
of its body and resets (SO_LINGER 0). Half of them send ``Expect: 100-continue`` and
wait for the server's ``100 Continue``, so the reset surely lands mid-body; the other
half send head and partial body at once, as the attack in issue 9 did. While the
storm runs, a prober in its own process sends ``GET /healthz`` every 5 ms on one
kept-alive connection: its latency is what every other user sees of the storm.
Reported: /healthz p50/p99/max during the storm, the server's CPU per storm
connection, tracebacks and ERROR lines in the
log, and how much the log grew.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

import psutil
from _common import ServerProcess, percentile, save
from upload import _PROBE

_HEAD = (
    b"POST /api/v1/auth/login HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
    b"Content-Length: 200\r\n"
)
_PART = b'{"login": "alice", "password": "pass'


async def _reset(port: int, expect: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if expect:
            writer.write(_HEAD + b"Expect: 100-continue\r\n\r\n")
            await writer.drain()
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            writer.write(_PART)
        else:
            writer.write(_HEAD + b"\r\n" + _PART)
        await writer.drain()
    finally:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()


def _log_bytes(srv: ServerProcess) -> int:
    path = srv.data_dir / "logs" / "server.log"
    return (path.stat().st_size if path.exists() else 0) + srv.log_path.stat().st_size


def _log_text(srv: ServerProcess) -> str:
    path = srv.data_dir / "logs" / "server.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return text + srv.log_path.read_text(errors="replace")


async def _probe(port: int, during: Awaitable[object]) -> list[float]:
    """/healthz latencies (ms) from the prober process while ``during`` runs."""
    prober = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _PROBE, str(port),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert prober.stdin is not None and prober.stdout is not None
    await prober.stdout.readline()
    await during
    prober.stdin.close()
    lags: list[float] = json.loads(await prober.stdout.readline())
    await prober.wait()
    return lags


async def run(
    resets: int, parallel: int, server_src: Path | None, quiet_seconds: float
) -> dict[str, float]:
    env: dict[str, str] = {}
    if server_src is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            str(server_src / "packages" / p / "src") for p in ("protocol", "server")
        )
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess(Path(tmp) / "data", env=env)
        srv.start()
        try:
            before = _log_bytes(srv)
            # the same prober for as long as the storm will take, without the storm: what
            # the (shared, loaded) machine alone costs
            quiet = await _probe(srv.port, asyncio.sleep(quiet_seconds))
            prober = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _PROBE, str(srv.port),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert prober.stdin is not None and prober.stdout is not None
            await prober.stdout.readline()
            assert srv.proc is not None
            server = psutil.Process(srv.proc.pid)
            cpu_before = sum(server.cpu_times()[:2])
            start = time.perf_counter()
            done = 0
            while done < resets:
                batch = min(parallel, resets - done)
                results = await asyncio.gather(
                    *(_reset(srv.port, (done + i) % 2 == 0) for i in range(batch)),
                    return_exceptions=True,
                )
                errors = [r for r in results if isinstance(r, BaseException)]
                if errors:
                    raise RuntimeError(f"{len(errors)} storm clients failed: {errors[0]!r}")
                done += batch
            storm_s = time.perf_counter() - start
            server_cpu_s = sum(server.cpu_times()[:2]) - cpu_before
            prober.stdin.close()
            lags: list[float] = json.loads(await prober.stdout.readline())
            await prober.wait()
            text = _log_text(srv)
            return {
                "quiet_healthz_p50_ms": percentile(quiet, 50),
                "quiet_healthz_p99_ms": percentile(quiet, 99),
                "resets": float(resets),
                "storm_seconds": storm_s,
                # the server's own CPU per storm connection: what the storm costs it,
                # independent of how loaded the machine is
                "server_cpu_us_per_reset": server_cpu_s / resets * 1e6,
                "healthz_probes": float(len(lags)),
                "healthz_p50_ms": percentile(lags, 50),
                "healthz_p99_ms": percentile(lags, 99),
                "healthz_max_ms": max(lags, default=0.0),
                "tracebacks": float(text.count("Traceback")),
                "error_lines": float(text.count(" ERROR ")),
                "log_growth_kb": (_log_bytes(srv) - before) / 1024,
            }
        finally:
            srv.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resets", type=int, default=2000)
    parser.add_argument("--parallel", type=int, default=100)
    parser.add_argument("--server-src", type=Path, help="checkout whose server to run")
    parser.add_argument(
        "--quiet-seconds",
        type=float,
        default=3.0,
        help="probe this long without a storm first (the machine's own lag)",
    )
    parser.add_argument("--save", type=Path)
    args = parser.parse_args()
    results = asyncio.run(run(args.resets, args.parallel, args.server_src, args.quiet_seconds))
    for key, value in results.items():
        print(f"  {key:24} {value:12.2f}")
    if args.save:
        save(args.save, results)


if __name__ == "__main__":
    main()
