"""Fan-out benchmark: N live event streams, S senders, deliveries/s and latency.

    uv run python bench/fanout.py --streams 100 1000 --messages 2000 --senders 4
    uv run python bench/fanout.py --save bench/results/fanout.local.json
    uv run python bench/fanout.py --baseline bench/results/fanout.local.json
    uv run python bench/fanout.py --store postgresql://postgres@127.0.0.1:5432/test
    uv run python bench/fanout.py --streams 1000 --messages 500 --rate 50000

The server runs as its own process; this script is the load generator, written on raw
asyncio protocols (a high-level HTTP client would be the bottleneck). Each message
carries its send time (CLOCK_MONOTONIC, shared by processes on one machine), so a
sample of receivers measures send -> receive latency. If ``redis-server`` is on PATH,
the same generator also runs against Redis pub/sub as the reference (SPEC §7).

By default the senders send back to back (saturated fan-out). With ``--rate`` they are
paced to that many deliveries per second in total (messages/s = rate / streams, each
sent at its scheduled time whatever the answers to the previous ones took), the same
rate for both targets, so the latencies compare at one load; the achieved rate is
``deliveries_per_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from _common import (
    ServerProcess,
    SseCounter,
    bench_store,
    compare,
    free_port,
    percentile,
    print_profile,
    profile,
    register,
    save,
)

STAMP = re.compile(rb"t=(\d+)")


class Receiver(SseCounter):
    """Counts SSE frames; a sample also records send -> receive latency."""

    def __init__(self, request: bytes, sample: bool, latencies: list[float]) -> None:
        super().__init__(request, sample)
        self.latencies = latencies

    def record(self, data: bytes, now_ns: int) -> None:
        for stamp in STAMP.findall(data):
            self.latencies.append((now_ns - int(stamp)) / 1e6)


async def collect(
    receivers: list[Receiver],
    expected: int,
    proc: psutil.Process,
    cpu0: Any,
    t0: float,
    latencies: list[float],
    writes0: int,
) -> dict[str, float]:
    """Wait (up to 60 s) for `expected` frames, then the numbers both targets report."""
    deadline = time.monotonic() + 60
    while sum(r.frames for r in receivers) < expected:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    cpu1 = proc.cpu_times()
    delivered = sum(r.frames for r in receivers)
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    writes = write_syscalls(proc) - writes0
    return {
        "delivered": delivered,
        "deliveries_per_s": delivered / elapsed,
        "server_cpu_s_per_million": cpu / max(1, delivered) * 1e6,
        "deliveries_per_write": delivered / max(1, writes),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p99_ms": percentile(latencies, 99),
    }


def write_syscalls(proc: psutil.Process) -> int:
    """Write syscalls the process made so far (write/writev, what uvloop and Redis use;
    the responses to the senders count too, one per send)."""
    return int(proc.io_counters().write_count)


async def pace(i: int, start: float, interval: float) -> None:
    """Sleep until the ``i``-th send of a sender paced at ``interval`` seconds from
    ``start`` (loop time); no wait when unpaced (``interval`` 0) or late."""
    if interval:
        loop = asyncio.get_running_loop()
        wait = start + i * interval - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)


async def sender(
    host: str,
    port: int,
    token: str,
    count: int,
    path: str,
    tag: str = "",
    interval: float = 0.0,
    start: float = 0.0,
) -> None:
    """Sends `count` messages on one keep-alive connection, back to back or one every
    ``interval`` seconds from ``start`` (loop time); ``tag`` follows the time stamp in
    each text."""
    reader, writer = await asyncio.open_connection(host, port)
    for i in range(count):
        await pace(i, start, interval)
        text = f"bench t={time.monotonic_ns()}{tag} " + "x" * 100
        body = json.dumps({"text": text}).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"send {i}: {head[:100]!r}")
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
    writer.close()


async def run_messenger(
    streams: int,
    messages: int,
    senders: int,
    users: int,
    store: str = "",
    profile_to: Path | None = None,
    rate: float = 0.0,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, bench_store(store) as store_url:
        srv = ServerProcess(
            Path(tmp) / "data",
            args=["--rate-limit-messages", "1000000000", "--log-level", "WARNING",
                  "--max-connections-per-ip", str(streams + senders + 100)],
            env={"MESSENGER_STORE": store_url} if store_url else None,
        )  # fmt: skip
        srv.start()
        try:
            return await _drive(srv, streams, messages, senders, users, profile_to, rate)
        finally:
            srv.stop()


async def _drive(
    srv: ServerProcess,
    streams: int,
    messages: int,
    senders: int,
    users: int,
    profile_to: Path | None,
    rate: float,
) -> dict[str, Any]:
    host, port = "127.0.0.1", srv.port
    loop = asyncio.get_running_loop()
    tokens = [await register(host, port, f"recv{i}") for i in range(users)]
    send_tokens = [await register(host, port, f"send{i}") for i in range(senders)]
    latencies: list[float] = []
    receivers: list[Receiver] = []
    for i in range(streams):
        req = (
            f"GET /api/v1/events HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer "
            f"{tokens[i % users]}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        rec = Receiver(req, sample=i % max(1, streams // 20) == 0, latencies=latencies)
        await loop.create_connection(lambda rec=rec: rec, host, port)  # type: ignore[misc]
        receivers.append(rec)
    await asyncio.gather(*(r.ready for r in receivers))
    await asyncio.sleep(0.5)  # let presence events settle before counting
    for r in receivers:
        r.frames = 0
    latencies.clear()
    proc = psutil.Process(srv.proc.pid)  # type: ignore[union-attr]
    spy = None if profile_to is None else profile(proc.pid, profile_to, None)
    cpu0 = proc.cpu_times()
    writes0 = write_syscalls(proc)
    t0 = time.perf_counter()
    per_sender = messages // senders
    interval, start = schedule(rate, streams, senders)
    await asyncio.gather(
        *(
            sender(host, port, t, per_sender, "/api/v1/chats/1/messages", "", interval,
                   start + k * interval / senders)
            for k, t in enumerate(send_tokens)
        )
    )  # fmt: skip
    sent_time = time.perf_counter() - t0
    measured = await collect(
        receivers, per_sender * senders * streams, proc, cpu0, t0, latencies, writes0
    )
    if spy is not None and profile_to is not None:
        spy.send_signal(signal.SIGINT)
        await asyncio.to_thread(spy.wait)
        print_profile(f"{streams} streams", profile_to)
    return {
        "streams": streams,
        "messages": per_sender * senders,
        "expected_deliveries": per_sender * senders * streams,
        "sends_per_s": per_sender * senders / sent_time,
        **measured,
        "server_rss_mb": proc.memory_info().rss / 2**20,
    }


def schedule(rate: float, streams: int, senders: int) -> tuple[float, float]:
    """(seconds between the sends of one sender, loop time of the first send) for ``rate``
    deliveries/s to ``streams`` streams in total (0 and now: back to back)."""
    now = asyncio.get_running_loop().time()
    if not rate:
        return 0.0, now
    return senders * streams / rate, now


async def run_redis(
    streams: int, messages: int, senders: int, rate: float = 0.0
) -> dict[str, Any] | None:
    """The same shape of load against redis-server pub/sub, as the reference."""
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
        [exe, "--port", str(port), "--save", "", "--appendonly", "no", "--maxclients", "20000"],
        stdout=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        receivers: list[Receiver] = []
        sub = b"*2\r\n$9\r\nSUBSCRIBE\r\n$7\r\ngeneral\r\n"
        for i in range(streams):
            rec = Receiver(sub, sample=i % max(1, streams // 20) == 0, latencies=latencies)
            rec.ready = loop.create_future()
            await loop.create_connection(lambda rec=rec: rec, "127.0.0.1", port)  # type: ignore[misc]
            receivers.append(rec)
        await asyncio.sleep(0.5)
        ps = psutil.Process(proc.pid)
        cpu0 = ps.cpu_times()
        writes0 = write_syscalls(ps)
        per_sender = messages // senders

        async def publish(count: int, start: float) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for i in range(count):
                await pace(i, start, interval)
                text = f"id: t={time.monotonic_ns()} " + "x" * 100
                payload = text.encode()
                writer.write(
                    b"*3\r\n$7\r\nPUBLISH\r\n$7\r\ngeneral\r\n$%d\r\n%s\r\n"
                    % (len(payload), payload)
                )
                await reader.readline()
            writer.close()

        for r in receivers:
            r.frames = 0
        t0 = time.perf_counter()
        interval, start = schedule(rate, streams, senders)
        await asyncio.gather(
            *(publish(per_sender, start + k * interval / senders) for k in range(senders))
        )
        measured = await collect(
            receivers, per_sender * senders * streams, ps, cpu0, t0, latencies, writes0
        )
        del measured["delivered"]
        return measured
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--users", type=int, default=10, help="distinct receiving users")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="deliveries/s in total to pace the senders at (default: back to back)",
    )
    parser.add_argument(
        "--store", default="", help="postgresql://… to run on PostgreSQL (a throwaway schema)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="directory: py-spy samples the server while it fans out (its numbers are then"
        " perturbed: compare runs without it)",
    )
    parser.add_argument("--save", type=Path)
    parser.add_argument("--baseline", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"load average (1 min) {os.getloadavg()[0]:.2f} before")
    for n in args.streams:
        res = asyncio.run(
            run_messenger(
                n,
                args.messages,
                args.senders,
                min(args.users, n),
                args.store,
                None if args.profile is None else args.profile / f"fanout-{n}.txt",
                args.rate,
            )
        )
        paced = f", paced at {args.rate:.0f} deliveries/s" if args.rate else ""
        print(f"messenger, {n} streams{paced}:")
        for key, value in res.items():
            print(
                f"  {key:28} {value:12.2f}" if isinstance(value, float) else f"  {key:28} {value}"
            )
        ref = asyncio.run(run_redis(n, args.messages, args.senders, args.rate))
        if ref is not None:
            print(f"redis pub/sub, {n} streams{paced}:")
            for key, value in ref.items():
                ratio = res[key] / value if value else 0.0
                print(f"  {key:28} {value:12.2f}   messenger/redis x{ratio:.2f}")
        prefix = f"{n}@{args.rate:.0f}/s" if args.rate else f"{n}"
        for key, value in res.items():
            results[f"{prefix}.{key}"] = value
    print(f"load average (1 min) {os.getloadavg()[0]:.2f} after")
    if args.save:
        save(args.save, results)
    if args.baseline:
        print("against baseline:")
        compare(results, args.baseline)


if __name__ == "__main__":
    main()
