"""Cluster fan-out benchmark: 1 node vs N nodes on one PostgreSQL with a Redis or NATS bus.

    uv run python bench/cluster_fanout.py --store postgresql://postgres@127.0.0.1:5432/postgres
    uv run python bench/cluster_fanout.py --nodes 1 3 --streams 60 --messages 600 \
        --bus nats://127.0.0.1:4222 --store postgresql://postgres@127.0.0.1:5432/postgres

Every configuration runs in the same invocation, so compare the ratios (the machine is
shared; say its load beside the numbers). Streams and senders are spread round robin
over the nodes; each message carries its send time (CLOCK_MONOTONIC) and the node it
was sent to, so sampled receivers measure send -> receive latency separately for
messages from their own node and from another node. CPU is summed over every node.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from _common import ServerProcess, SseCounter, bench_store, percentile, register
from fanout import sender

STAMP = re.compile(rb"t=(\d+) n=(\d+)")


class Receiver(SseCounter):
    """Counts SSE frames; a sample also records latency by the sending node."""

    def __init__(self, request: bytes, node: int, sample: bool, lat: dict[str, list[float]]):
        super().__init__(request, sample)
        self.node = node
        self.lat = lat

    def record(self, data: bytes, now_ns: int) -> None:
        for stamp, node in STAMP.findall(data):
            key = "same" if int(node) == self.node else "cross"
            self.lat[key].append((now_ns - int(stamp)) / 1e6)


async def send_tagged(host: str, port: int, token: str, count: int, node: int) -> None:
    """:func:`fanout.sender` with the node tag in each text (it adds the time stamp)."""
    await sender(host, port, token, count, "/api/v1/chats/1/messages", tag=f" n={node}")


async def run(
    nodes: int, streams: int, messages: int, senders: int, bus: str, store: str
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, bench_store(store) as store_url:
        channel = "bench-" + uuid.uuid4().hex[:8]
        flags = [
            "--store", store_url, "--bus", bus if nodes > 1 else "local", "--bus-channel",
            channel, "--rate-limit-messages", "1000000000", "--log-level", "WARNING",
            "--max-connections-per-ip", str(streams + senders + 100),
        ]  # fmt: skip
        procs = [
            ServerProcess(Path(tmp) / f"node{i}", args=[*flags, "--node-id", f"node{i}"])
            for i in range(nodes)
        ]
        for proc in procs:
            proc.start()
        try:
            return await _drive(procs, streams, messages, senders)
        finally:
            for proc in procs:
                proc.stop()


async def _drive(
    procs: list[ServerProcess], streams: int, messages: int, senders: int
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    host = "127.0.0.1"
    n = len(procs)
    tokens = [await register(host, procs[i % n].port, f"recv{i}") for i in range(streams)]
    send_tokens = [await register(host, procs[i % n].port, f"send{i}") for i in range(senders)]
    lat: dict[str, list[float]] = {"same": [], "cross": []}
    receivers: list[Receiver] = []
    for i in range(streams):
        req = (
            f"GET /api/v1/events HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer "
            f"{tokens[i]}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        rec = Receiver(req, i % n, sample=i % max(1, streams // 20) == 0, lat=lat)
        await loop.create_connection(lambda rec=rec: rec, host, procs[i % n].port)  # type: ignore[misc]
        receivers.append(rec)
    await asyncio.gather(*(r.ready for r in receivers))
    await asyncio.sleep(1.0)  # let presence events settle before counting (not a sync point)
    for r in receivers:
        r.frames = 0
    lat["same"].clear()
    lat["cross"].clear()
    ps = [psutil.Process(p.proc.pid) for p in procs]  # type: ignore[union-attr]
    cpu0 = [p.cpu_times() for p in ps]
    t0 = time.perf_counter()
    per_sender = messages // senders
    await asyncio.gather(
        *(
            send_tagged(host, procs[i % n].port, t, per_sender, i % n)
            for i, t in enumerate(send_tokens)
        )
    )
    expected = per_sender * senders * streams
    deadline = time.monotonic() + 120
    while sum(r.frames for r in receivers) < expected:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    delivered = sum(r.frames for r in receivers)
    cpu = sum(
        (c1.user - c0.user) + (c1.system - c0.system)
        for c0, c1 in zip(cpu0, (p.cpu_times() for p in ps), strict=True)
    )
    return {
        "nodes": n,
        "expected_deliveries": expected,
        "delivered": delivered,
        "deliveries_per_s": delivered / elapsed,
        "cpu_ms_per_1000_deliveries": cpu / max(1, delivered) * 1e6,
        "same_node_p50_ms": percentile(lat["same"], 50),
        "same_node_p99_ms": percentile(lat["same"], 99),
        # one node has no cross-node path: None prints as "-", not as a 0 ms latency
        "cross_node_p50_ms": percentile(lat["cross"], 50) if lat["cross"] else None,
        "cross_node_p99_ms": percentile(lat["cross"], 99) if lat["cross"] else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--streams", type=int, default=60)
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--senders", type=int, default=3)
    parser.add_argument("--bus", default="redis://127.0.0.1:6379")
    parser.add_argument(
        "--store", required=True, help="postgresql://… (a throwaway schema is made in it)"
    )
    args = parser.parse_args()
    for nodes in args.nodes:
        res = asyncio.run(
            run(nodes, args.streams, args.messages, args.senders, args.bus, args.store)
        )
        print(f"messenger, {nodes} node(s), bus {args.bus if nodes > 1 else 'local'}:")
        for key, value in res.items():
            if value is None:
                shown = f"{'-':>12}"
            else:
                shown = f"{value:12.2f}" if isinstance(value, float) else str(value)
            print(f"  {key:28} {shown}")


if __name__ == "__main__":
    main()
