"""Upload benchmark: 5 MiB files, several at once over loopback, against a raw socket copy.

    uv run python bench/upload.py                  # 8 uploads at once, 5 rounds
    uv run python bench/upload.py --parallel 8 --rounds 10 --save bench/results/upload.json

The server runs as its own process; the generator writes raw HTTP on asyncio streams.
The reference, in the same run, is the least a server could do with the same bytes:
a bare asyncio process that reads each connection and writes it to a file with
aiofiles in the same chunk size (no HTTP, no hashing, no database). Both are timed
end to end (first byte sent -> answer read). While the uploads run, a prober sends
``GET /healthz`` every 5 ms on a kept-alive connection: its latency bounds the
server's event-loop lag from above (the prober's own scheduling is in it too). Beside
it, the server's own lag meter (``loop_lag`` of ``GET /api/v1/admin/stats``, read before
and after each pass: the difference of its histograms) says how late the server's loop
itself ran, and the same meter over a few seconds of the idle server is the reference
for what the machine's own scheduling adds; the meter's busy part of each sample bounds
how much of the lateness the server's loop spent running code. Server RSS growth is
sampled with psutil.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable
from pathlib import Path

import psutil
from _common import (
    ServerProcess,
    free_port,
    http_request,
    percentile,
    print_profile,
    profile,
    save,
)

from messenger_server.looplag import BOUNDS_MS, percentile_of

SIZE = 5 * 1024 * 1024
PIECE = 256 * 1024

_REFERENCE = textwrap.dedent(
    """
    import asyncio, contextlib, os, sys, aiofiles
    out_dir = sys.argv[2]
    count = 0
    async def handle(reader, writer):
        global count
        count += 1
        size = int((await reader.readline()).strip())
        path = os.path.join(out_dir, f"f{count}")
        async with aiofiles.open(path, "wb") as f:
            left = size
            batch = bytearray()
            while left:
                chunk = await reader.read(min(65536, left))
                if not chunk:
                    break
                left -= len(chunk)
                batch += chunk
                if len(batch) >= 262144:
                    await f.write(bytes(batch)); batch.clear()
            if batch:
                await f.write(bytes(batch))
        with contextlib.suppress(OSError):
            os.remove(path)
        writer.write(b"ok\\n")
        await writer.drain()
        writer.close()
    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
        print("ready", flush=True)
        async with server:
            await server.serve_forever()
    asyncio.run(main())
    """
)


async def http_upload(port: int, token: str, data: bytes) -> float:
    """One upload on its own connection; seconds from first byte to the answer."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST /api/v1/files?name=bench.bin HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {token}"
        f"\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
    )
    view = memoryview(data)
    for pos in range(0, len(data), PIECE):
        writer.write(view[pos : pos + PIECE])
        await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    answer = head + await reader.readexactly(length)
    elapsed = time.perf_counter() - start  # the answer is in: the file is stored
    writer.close()
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(answer[:300].decode(errors="replace"))
    return elapsed


async def raw_upload(port: int, data: bytes) -> float:
    """The same bytes to the bare socket -> file copier."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{len(data)}\n".encode())
    view = memoryview(data)
    for pos in range(0, len(data), PIECE):
        writer.write(view[pos : pos + PIECE])
        await writer.drain()
    await reader.readline()
    writer.close()
    return time.perf_counter() - start


_PROBE = textwrap.dedent(
    """
    import asyncio, json, sys, threading, time
    async def main(port):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        def wait_eof():
            sys.stdin.read()
            loop.call_soon_threadsafe(stop.set)
        threading.Thread(target=wait_eof, daemon=True).start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /healthz HTTP/1.1\\r\\nHost: b\\r\\n\\r\\n"
        out = []
        print("ready", flush=True)
        while not stop.is_set():
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\\r\\n", 1)[0])
            await reader.readexactly(length)
            out.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.005)
        print(json.dumps(out), flush=True)
    asyncio.run(main(int(sys.argv[1])))
    """
)
"""``GET /healthz`` every 5 ms on one keep-alive connection, from its own process (the
generator's own loop is busy, so probing from it would measure the generator too)."""


Lag = dict[str, tuple[list[int], float]]


async def loop_lag(port: int, token: str) -> Lag:
    """The server's own lag histograms since its start, each with its maximum (ms):
    ``late`` (how late the loop ran) and ``busy`` (the part of it the loop was running)."""
    status, body = await http_request("127.0.0.1", port, "GET", "/api/v1/admin/stats",
                                      token=token)  # fmt: skip
    if status != 200:
        raise RuntimeError(f"admin stats: {status} {body[:200]!r}")
    lag = json.loads(body)["loop_lag"]
    return {
        "late": (list(lag["counts"]), float(lag["max_ms"])),
        "busy": (list(lag["busy_counts"]), float(lag["busy_max_ms"])),
    }


def lag_between(before: Lag, after: Lag, kind: str = "late") -> tuple[float, float, int]:
    """p99 and maximum (ms, each an upper bound: a bucket's bound) of the samples taken
    between two readings of :func:`loop_lag`, and how many there were."""
    counts = [b - a for a, b in zip(before[kind][0], after[kind][0], strict=True)]
    top = max((i for i, c in enumerate(counts) if c), default=-1)
    if top < 0:
        return 0.0, 0.0, 0
    bound = BOUNDS_MS[top] if top < len(BOUNDS_MS) else after[kind][1]
    highest = min(bound, after[kind][1])
    return percentile_of(counts, 99, highest), highest, sum(counts)


async def rounds(run_one: object, parallel: int, count: int, files: list[bytes]) -> float:
    """MB/s over ``count`` rounds of ``parallel`` simultaneous uploads."""
    assert callable(run_one)
    total = 0.0
    for r in range(count):
        start = time.perf_counter()
        await asyncio.gather(
            *(run_one(files[(r * parallel + i) % len(files)]) for i in range(parallel))
        )
        total += time.perf_counter() - start
    return parallel * count * SIZE / total / 1e6


async def main(args: argparse.Namespace) -> dict[str, float]:
    # distinct bytes per upload, so dedup never shortcuts the server's work
    files = [os.urandom(SIZE) for _ in range(args.parallel * 2)]
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess(
            Path(tmp) / "data",
            args=["--user-quota-bytes", "0", "--log-level", "WARNING", "--admins", "bench"],
        )
        srv.start()
        ref_port = free_port()
        ref_dir = Path(tmp) / "ref"
        ref_dir.mkdir()
        ref = subprocess.Popen(  # noqa: ASYNC220 (started once, before anything is timed)
            [sys.executable, "-c", _REFERENCE, str(ref_port), str(ref_dir)],
            stdout=subprocess.PIPE,
        )
        try:
            assert ref.stdout is not None
            ref.stdout.readline()
            _, body = await http_request(
                "127.0.0.1", srv.port, "POST", "/api/v1/auth/register",
                json.dumps({"login": "bench", "password": "benchmark"}).encode(),
            )  # fmt: skip
            token = json.loads(body)["token"]
            assert srv.proc is not None
            server_proc = psutil.Process(srv.proc.pid)
            await http_upload(srv.port, token, files[0][:65536])  # warm up
            rss_before = server_proc.memory_info().rss
            rss_peak = rss_before
            stop = asyncio.Event()

            async def sample_rss() -> None:
                nonlocal rss_peak
                while not stop.is_set():
                    rss_peak = max(rss_peak, server_proc.memory_info().rss)
                    await asyncio.sleep(0.01)

            # throughput: ours and the reference alternate, with nothing else running
            def ours_one(d: bytes) -> Awaitable[float]:
                return http_upload(srv.port, token, d)

            def raw_one(d: bytes) -> Awaitable[float]:
                return raw_upload(ref_port, d)

            ref_proc = psutil.Process(ref.pid)

            def cpu(proc: psutil.Process) -> float:
                times = proc.cpu_times()  # threads included (writes and hashing run there)
                return float(times.user + times.system)

            # the reference for the lag: the same server idle, on the machine as it is now
            lag_before = await loop_lag(srv.port, token)
            await asyncio.sleep(args.idle)
            lag_idle = lag_between(lag_before, await loop_lag(srv.port, token))
            ours_runs, raw_runs = [], []
            ours_cpu = raw_cpu = 0.0
            lag_quiet = []
            for _ in range(2):
                before = cpu(server_proc)
                lag_before = await loop_lag(srv.port, token)
                ours_runs.append(await rounds(ours_one, args.parallel, args.rounds, files))
                ours_cpu += cpu(server_proc) - before
                lag_quiet.append(lag_between(lag_before, await loop_lag(srv.port, token)))
                before = cpu(ref_proc)
                raw_runs.append(await rounds(raw_one, args.parallel, args.rounds, files))
                raw_cpu += cpu(ref_proc) - before
            ours, raw = sum(ours_runs) / 2, sum(raw_runs) / 2
            gib = 2 * args.parallel * args.rounds * SIZE / 2**30
            # then lag and memory, measured in a pass of their own (the probes cost CPU)
            prober = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _PROBE, str(srv.port),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert prober.stdin is not None and prober.stdout is not None
            await prober.stdout.readline()
            watchers = [asyncio.create_task(sample_rss())]
            spy = None if args.profile is None else profile(srv.proc.pid, args.profile, None)
            lag_before = await loop_lag(srv.port, token)
            await rounds(ours_one, args.parallel, args.rounds, files)
            lag_after = await loop_lag(srv.port, token)
            lag_probed = lag_between(lag_before, lag_after)
            busy_probed = lag_between(lag_before, lag_after, "busy")
            stop.set()
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await asyncio.to_thread(spy.wait)
            await asyncio.gather(*watchers)
            prober.stdin.close()
            lags = json.loads(await prober.stdout.readline())
            await prober.wait()
        finally:
            ref.kill()
            ref.wait()
            srv.kill()
    return {
        "upload_mb_s": ours,
        "raw_copy_mb_s": raw,
        "ratio": ours / raw,
        "healthz_p99_ms": percentile(lags, 99),
        "healthz_max_ms": max(lags, default=0.0),
        "server_lag_p99_ms": lag_probed[0],
        "server_lag_max_ms": lag_probed[1],
        "server_lag_samples": float(lag_probed[2]),
        "server_busy_lag_p99_ms": busy_probed[0],
        "server_busy_lag_max_ms": busy_probed[1],
        "server_lag_idle_p99_ms": lag_idle[0],
        "server_lag_idle_max_ms": lag_idle[1],
        "server_lag_p99_ms_unprobed": max(p99 for p99, _, _ in lag_quiet),
        "server_lag_max_ms_unprobed": max(top for _, top, _ in lag_quiet),
        "rss_growth_mib": (rss_peak - rss_before) / 2**20,
        "rss_growth_per_upload_mib": (rss_peak - rss_before) / 2**20 / args.parallel,
        "server_cpu_s_per_gib": ours_cpu / gib,
        "raw_copy_cpu_s_per_gib": raw_cpu / gib,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--idle", type=float, default=2.0, help="seconds the lag of the idle server is read"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy raw file: samples the server in the lag pass (its lag is then perturbed)",
    )
    parser.add_argument("--save", type=Path)
    results = asyncio.run(main(parser.parse_args()))
    for key, value in results.items():
        print(f"  {key:28} {value:10.3f}")
    print(f"upload / raw socket copy: {results['ratio']:.2f} (target >= 0.9)")
    print(
        f"server loop lag p99 {results['server_lag_p99_ms']:.1f} ms, max"
        f" {results['server_lag_max_ms']:.1f} ms (target <= 2 / <= 10; from outside"
        f" p99 {results['healthz_p99_ms']:.1f}, max {results['healthz_max_ms']:.1f};"
        f" idle p99 {results['server_lag_idle_p99_ms']:.1f}, max"
        f" {results['server_lag_idle_max_ms']:.1f}; of it the loop was busy: p99"
        f" {results['server_busy_lag_p99_ms']:.1f}, max {results['server_busy_lag_max_ms']:.1f})"
    )
    ns = parser.parse_args()
    if ns.profile:
        print_profile("upload", ns.profile)
    if ns.save:
        save(ns.save, results)
