"""Fan-out benchmark: N live event streams, S senders, deliveries/s and latency.

    uv run python bench/fanout.py --streams 100 1000 --messages 2000 --senders 4
    uv run python bench/fanout.py --save bench/results/fanout.local.json
    uv run python bench/fanout.py --baseline bench/results/fanout.local.json
    uv run python bench/fanout.py --store postgresql://postgres@127.0.0.1:5432/test
    uv run python bench/fanout.py --streams 1000 --messages 500 --rate 50000

The server runs as its own process, and so does the load generator: ``--readers``
processes (2 by default) each hold their share of the streams and one more process runs
the senders, all on raw asyncio protocols (uvloop when installed; a high-level HTTP
client would be the bottleneck), each reporting to this script over a pipe. Each message
carries its send time (CLOCK_MONOTONIC, shared by processes on one machine), so a sample
of receivers measures send -> receive latency. If ``redis-server`` is on PATH, the same
generator also runs against Redis pub/sub as the reference (SPEC §7).

Both targets print their CPU share (``server_cpu_share``: cores busy while fanning out)
beside the load generator's (``generator_cpu_share``, its processes together), so a
reader can see which side was saturated: a target well under one core while the
generator is busy measures the generator, not the target.

By default the senders send back to back (saturated fan-out). With ``--rate`` they are
paced to that many deliveries per second in total (messages/s = rate / streams, each
sent at its scheduled time whatever the answers to the previous ones took), the same
rate for both targets, so the latencies compare at one load; the achieved rate is
``deliveries_per_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil
from _common import (
    ServerProcess,
    SseCounter,
    bench_store,
    compare,
    cpu_seconds,
    free_port,
    percentile,
    print_profile,
    profile,
    register,
    save,
)

STAMP = re.compile(rb"t=(\d+)")
SETTLE_S = 0.5
"""Seconds the streams stay open before counting starts (presence events settle)."""
DEADLINE_S = 60.0
"""Seconds the readers wait for all the deliveries after the first send."""


@dataclass(frozen=True)
class Target:
    """What the load generator's processes need to know of one target (pickled to them)."""

    kind: str
    """"messenger" or "redis"."""
    port: int
    send_tokens: tuple[str, ...] = ()
    """One bearer token per sender (messenger)."""
    host: str = "127.0.0.1"
    path: str = "/api/v1/chats/1/messages"


@dataclass
class Group:
    """The streams of one reader process: frames counted together, done when all came."""

    expected: float = float("inf")
    total: int = 0
    done_ns: int = 0
    latencies: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Receiver(SseCounter):
    """Counts frames into its :class:`Group`; a sample also records send -> receive
    latency. ``ready`` resolves on the response head (messenger) or on the first reply
    (Redis: the subscription's confirmation)."""

    def __init__(self, request: bytes, sample: bool, group: Group, any_reply: bool) -> None:
        super().__init__(request, sample)
        self.group = group
        self.any_reply = any_reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are no asyncio.Transport subclass)
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.any_reply and not self.ready.done():
            self.ready.set_result(None)
        before = self.frames
        super().data_received(data)
        group = self.group
        group.total += self.frames - before
        if group.total >= group.expected and not group.done_ns:
            group.done_ns = time.monotonic_ns()
            group.done.set()

    def record(self, data: bytes, now_ns: int) -> None:
        for stamp in STAMP.findall(data):
            self.group.latencies.append((now_ns - int(stamp)) / 1e6)


async def recv(conn: Connection) -> Any:
    """The next object from the coordinating process, without blocking the loop."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(conn.fileno(), wake)
    try:
        await readable
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


def run_worker(main: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
    """Run a worker's coroutine on uvloop when installed (both targets alike)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(main(*args))
    else:
        uvloop.run(main(*args))


def reader_process(
    conn: Connection, target: Target, requests: list[bytes], samples: list[bool]
) -> None:
    """A reader process: holds ``requests``' streams, counts what they get."""
    run_worker(read_streams, conn, target, requests, samples)


async def read_streams(
    conn: Connection, target: Target, requests: list[bytes], samples: list[bool]
) -> None:
    """Open the streams, say "ready"; on ("reset", per_stream) zero the counts; on
    ("collect", deadline) answer the frames counted, when the last arrived (monotonic
    ns) and the sampled latencies once all came or at the deadline; then wait for "stop"."""
    loop = asyncio.get_running_loop()
    group = Group()
    receivers: list[Receiver] = []
    for request, sample in zip(requests, samples, strict=True):
        rec = Receiver(request, sample, group, any_reply=target.kind == "redis")
        await loop.create_connection(lambda rec=rec: rec, target.host, target.port)  # type: ignore[misc]
        receivers.append(rec)
    await asyncio.gather(*(r.ready for r in receivers))
    conn.send("ready")
    _, per_stream = await recv(conn)
    group.total = 0
    group.latencies.clear()
    group.expected = per_stream * len(receivers)
    conn.send("reset")
    _, deadline = await recv(conn)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(group.done.wait(), max(0.0, deadline - time.monotonic()))
    conn.send((group.total, group.done_ns or time.monotonic_ns(), group.latencies))
    await recv(conn)


def sender_process(
    conn: Connection, target: Target, senders: int, count: int, interval: float
) -> None:
    """The senders' process: ``senders`` connections, ``count`` messages each."""
    run_worker(send_all, conn, target, senders, count, interval)


async def send_all(
    conn: Connection, target: Target, senders: int, count: int, interval: float
) -> None:
    """Connect, say "ready"; on a start time (monotonic s) send, answer when all were
    answered (monotonic s)."""
    links = [await asyncio.open_connection(target.host, target.port) for _ in range(senders)]
    conn.send("ready")
    start: float = await recv(conn)
    send = send_messenger if target.kind == "messenger" else send_redis
    await asyncio.gather(
        *(
            send(target, k, reader, writer, count, interval, start + k * interval / senders)
            for k, (reader, writer) in enumerate(links)
        )
    )
    conn.send(time.monotonic())
    for _, writer in links:
        writer.close()


async def pace(i: int, start: float, interval: float) -> None:
    """Sleep until the ``i``-th send of a sender paced at ``interval`` seconds from
    ``start`` (monotonic s; until ``start`` when unpaced); no wait when late."""
    wait = start + i * interval - time.monotonic()
    if wait > 0:
        await asyncio.sleep(wait)


async def send_messenger(
    target: Target,
    k: int,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    count: int,
    interval: float,
    start: float,
) -> None:
    """Sender ``k``: ``count`` general-chat messages on one keep-alive connection."""
    await post(reader, writer, target.send_tokens[k], count, target.path, "", interval, start)


async def sender(host: str, port: int, token: str, count: int, path: str, tag: str = "") -> None:
    """Sends ``count`` messages back to back on a keep-alive connection of its own
    (``tag`` follows the time stamp in each text)."""
    reader, writer = await asyncio.open_connection(host, port)
    await post(reader, writer, token, count, path, tag)
    writer.close()


async def post(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    token: str,
    count: int,
    path: str,
    tag: str = "",
    interval: float = 0.0,
    start: float = 0.0,
) -> None:
    """``count`` messages to ``path``, each after the answer to the one before, back to
    back or one every ``interval`` seconds from ``start`` (monotonic s)."""
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


async def send_redis(
    target: Target,
    k: int,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    count: int,
    interval: float,
    start: float,
) -> None:
    """Publisher ``k``: ``count`` messages of the same size to the channel."""
    for i in range(count):
        await pace(i, start, interval)
        payload = (f"id: t={time.monotonic_ns()} " + "x" * 100).encode()
        writer.write(
            b"*3\r\n$7\r\nPUBLISH\r\n$7\r\ngeneral\r\n$%d\r\n%s\r\n" % (len(payload), payload)
        )
        await reader.readline()


def write_syscalls(proc: psutil.Process) -> int:
    """Write syscalls the process made so far (write/writev, what uvloop and Redis use;
    the responses to the senders count too, one per send)."""
    return int(proc.io_counters().write_count)


def expect(conn: Connection, what: str, timeout: float = 120.0) -> Any:
    """The next answer of a worker (it must come within ``timeout`` s)."""
    if not conn.poll(timeout):
        raise RuntimeError(f"a load generator process did not answer ({what})")
    return conn.recv()


def drive(
    target: Target,
    server_pid: int,
    requests: list[bytes],
    messages: int,
    senders: int,
    readers: int,
    rate: float,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    """Run the load generator's processes against ``target`` (the process ``server_pid``);
    the numbers both targets report."""
    streams = len(requests)
    per_sender = messages // senders
    # seconds between the sends of one sender for ``rate`` deliveries/s in total
    interval = senders * streams / rate if rate else 0.0
    every = max(1, streams // 20)
    samples = [i % every == 0 for i in range(streams)]
    ctx = multiprocessing.get_context("spawn")
    links: list[Connection] = []
    workers: list[multiprocessing.process.BaseProcess] = []

    def start(fn: Callable[..., None], *args: Any) -> Connection:
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=fn, args=(theirs, target, *args), daemon=True)
        proc.start()
        theirs.close()
        links.append(ours)
        workers.append(proc)
        return ours

    try:
        parts = [range(r, streams, readers) for r in range(readers)]
        reading = [
            start(reader_process, [requests[i] for i in part], [samples[i] for i in part])
            for part in parts
        ]
        sending = start(sender_process, senders, per_sender, interval)
        for link in links:
            expect(link, "ready")
        time.sleep(SETTLE_S)  # let presence events settle before counting
        for link in reading:
            link.send(("reset", per_sender * senders))
        for link in reading:
            expect(link, "reset")
        proc = psutil.Process(server_pid)
        gen = [psutil.Process(w.pid) for w in workers]
        spy = None if profile_to is None else profile(proc.pid, profile_to, None)
        cpu0, writes0 = cpu_seconds(proc), write_syscalls(proc)
        gen0 = sum(map(cpu_seconds, gen))
        t0 = time.monotonic() + 0.05
        sending.send(t0)
        for link in reading:
            link.send(("collect", t0 + DEADLINE_S))
        sent = expect(sending, "sent", DEADLINE_S + 60)
        counted = [expect(link, "counted", DEADLINE_S + 60) for link in reading]
        cpu, writes = cpu_seconds(proc) - cpu0, write_syscalls(proc) - writes0
        gen_cpu = sum(map(cpu_seconds, gen)) - gen0
        if spy is not None and profile_to is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait()
            print_profile(f"{streams} streams", profile_to)
        for link in links:
            link.send("stop")
    finally:
        for w in workers:
            w.join(10)
            if w.is_alive():
                w.kill()
    delivered = sum(frames for frames, _, _ in counted)
    elapsed = max(done for _, done, _ in counted) / 1e9 - t0
    latencies = [ms for _, _, part in counted for ms in part]
    return {
        "messages": per_sender * senders,
        "expected_deliveries": per_sender * senders * streams,
        "delivered": delivered,
        "sends_per_s": per_sender * senders / (sent - t0),
        "deliveries_per_s": delivered / elapsed,
        "server_cpu_s_per_million": cpu / max(1, delivered) * 1e6,
        "server_cpu_share": cpu / elapsed,
        "generator_cpu_share": gen_cpu / elapsed,
        "deliveries_per_write": delivered / max(1, writes),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p99_ms": percentile(latencies, 99),
        "server_rss_mb": proc.memory_info().rss / 2**20,
    }


async def register_all(port: int, logins: Sequence[str]) -> list[str]:
    """Register each login; their bearer tokens."""
    return [await register("127.0.0.1", port, login) for login in logins]


def run_messenger(
    streams: int,
    messages: int,
    senders: int,
    users: int,
    readers: int,
    store: str = "",
    profile_to: Path | None = None,
    rate: float = 0.0,
) -> dict[str, Any]:
    """The load against a messenger server of its own."""
    with tempfile.TemporaryDirectory() as tmp, bench_store(store) as store_url:
        srv = ServerProcess(
            Path(tmp) / "data",
            args=["--rate-limit-messages", "1000000000", "--log-level", "WARNING",
                  "--max-connections-per-ip", str(streams + senders + 100)],
            env={"MESSENGER_STORE": store_url} if store_url else None,
        )  # fmt: skip
        srv.start()
        try:
            tokens = asyncio.run(register_all(srv.port, [f"recv{i}" for i in range(users)]))
            send_tokens = asyncio.run(register_all(srv.port, [f"send{i}" for i in range(senders)]))
            requests = [
                f"GET /api/v1/events HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer "
                f"{tokens[i % users]}\r\nAccept: text/event-stream\r\n\r\n".encode()
                for i in range(streams)
            ]
            target = Target("messenger", srv.port, tuple(send_tokens))
            assert srv.proc is not None
            res = drive(
                target, srv.proc.pid, requests, messages, senders, readers, rate, profile_to
            )
            return {"streams": streams, **res}
        finally:
            srv.stop()


def run_redis(
    streams: int, messages: int, senders: int, readers: int, rate: float = 0.0
) -> dict[str, Any] | None:
    """The same shape of load against redis-server pub/sub, as the reference."""
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--save", "", "--appendonly", "no", "--maxclients", "20000"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        sub = b"*2\r\n$9\r\nSUBSCRIBE\r\n$7\r\ngeneral\r\n"
        res = drive(
            Target("redis", port), proc.pid, [sub] * streams, messages, senders, readers, rate
        )
        del res["delivered"], res["messages"], res["expected_deliveries"]
        return res
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument(
        "--readers", type=int, default=2, help="processes holding the streams (a share each)"
    )
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
        res = run_messenger(
            n,
            args.messages,
            args.senders,
            min(args.users, n),
            args.readers,
            args.store,
            None if args.profile is None else args.profile / f"fanout-{n}.txt",
            args.rate,
        )
        paced = f", paced at {args.rate:.0f} deliveries/s" if args.rate else ""
        print(f"messenger, {n} streams{paced}:")
        for key, value in res.items():
            print(
                f"  {key:28} {value:12.2f}" if isinstance(value, float) else f"  {key:28} {value}"
            )
        ref = run_redis(n, args.messages, args.senders, args.readers, args.rate)
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
