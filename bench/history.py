"""History benchmark: the last 50 messages of a chat among 1,000,000 stored (SPEC §7: <= 5 ms).

    uv run python bench/history.py [--messages 1000000] [--save FILE] [--baseline FILE]
    uv run python bench/history.py --store postgresql://postgres@127.0.0.1:5432/test

Creates a data dir with a real server, fills the general chat with N messages straight
into the database (fast: SQLite executemany, PostgreSQL COPY; on PostgreSQL in a throwaway
schema), all posted within the last N ms so the default retention (messages older than an
hour are not shown) hides none, then measures the storage query in-process and the whole request
(`GET /api/v1/chats/1/messages?limit=50`, newest page and a page deep in the past) over a
keep-alive connection to the restarted server, and the same requests against a bare
asyncio + httptools server answering the newest page's recorded bytes, in the same window
(``ref_http_*``, and ``http_*_x_ref``: what our request costs beyond what the machine's
scheduling and loopback cost a bare server).

    uv run python bench/history.py --profile prof/history.raw   # py-spy, an extra pass
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from _common import (
    ServerProcess,
    answer_of,
    bench_store,
    cpu_seconds,
    percentile,
    print_profile,
    profile,
    read_response,
    report,
    start_reference,
    token_of_fresh_server,
)

from messenger_server.storage import SqliteStore, Store
from messenger_server.storage.postgres import PostgresStore
from messenger_server.storage.search import index_new_messages

SPACING = 0.001
"""Seconds between two filled messages: a million fit in the last 17 minutes."""


def fill(db: Path, count: int, author_id: int) -> None:
    """Insert `count` 150-byte messages into the general chat."""
    conn = sqlite3.connect(db)
    text = "x" * 150
    now = time.time() - count * SPACING
    batch = 50_000
    for start in range(0, count, batch):
        rows = [
            (1, author_id, text, now + i * SPACING) for i in range(start, min(count, start + batch))
        ]
        conn.executemany(
            "INSERT INTO messages (chat_id, author_id, text, created_at) VALUES (?, ?, ?, ?)", rows
        )
        conn.commit()
    conn.execute("UPDATE chats SET last_message_id = (SELECT max(id) FROM messages) WHERE id = 1")
    index_new_messages(conn)  # what the server does at each group commit, here once
    conn.commit()
    conn.close()


def fill_postgres(url: str, count: int, author_id: int) -> None:
    """The same rows through COPY."""
    import psycopg

    text = "x" * 150
    now = time.time() - count * SPACING
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            copy_sql = "COPY messages (chat_id, author_id, text, created_at) FROM STDIN"
            with cur.copy(copy_sql.encode()) as copy:
                for i in range(count):
                    copy.write_row((1, author_id, text, now + i * SPACING))
            cur.execute(
                b"UPDATE chats SET last_message_id = (SELECT max(id) FROM messages) WHERE id = 1"
            )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(b"VACUUM ANALYZE messages")


async def store_query(store: Store, count: int, repeats: int) -> dict[str, float]:
    await store.open()
    newest: list[float] = []
    deep: list[float] = []
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            await store.read(lambda tx: tx.history(1, None, None, 50))
            newest.append((time.perf_counter() - t0) * 1000)
            before = random.randint(100, count)
            t0 = time.perf_counter()
            await store.read(lambda tx, b=before: tx.history(1, b, None, 50))  # type: ignore[misc]
            deep.append((time.perf_counter() - t0) * 1000)
    finally:
        await store.close()
    return {
        "store_newest_p50_ms": percentile(newest, 50),
        "store_newest_p99_ms": percentile(newest, 99),
        "store_deep_p50_ms": percentile(deep, 50),
        "store_deep_p99_ms": percentile(deep, 99),
    }


def history_request(token: str, before: int | None = None) -> bytes:
    """``GET`` the 50 newest messages (before message ``before``) of the general chat."""
    page = "" if before is None else f"&before={before}"
    return (
        f"GET /api/v1/chats/1/messages?limit=50{page} HTTP/1.1\r\nHost: b\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()


async def http_query(port: int, token: str, count: int, repeats: int) -> list[float]:
    """Milliseconds per request, newest and deep pages in turn, on one connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times: list[float] = []
    for i in range(repeats):
        writer.write(history_request(token, None if i % 2 == 0 else random.randint(100, count)))
        t0 = time.perf_counter()
        _, body = await read_response(reader)
        times.append((time.perf_counter() - t0) * 1000)
        assert len(json.loads(body)["messages"]) == 50
    writer.close()
    return times


async def http_side_by_side(
    srv: ServerProcess, token: str, count: int, repeats: int, tmp: Path
) -> dict[str, float]:
    """Our server and the bare reference, in alternating rounds of the same requests, with
    each one's CPU time (user + system, from the OS) per request."""
    ref, ref_port = start_reference({"/": await answer_of(srv.port, history_request(token))}, tmp)
    assert srv.proc is not None
    procs = psutil.Process(srv.proc.pid), psutil.Process(ref.pid)
    ours: list[float] = []
    bare: list[float] = []
    cpu = [0.0, 0.0]
    try:
        for _ in range(10):
            for i, (port, times) in enumerate(((srv.port, ours), (ref_port, bare))):
                t0 = cpu_seconds(procs[i])
                times += await http_query(port, token, count, max(2, repeats // 10))
                cpu[i] += cpu_seconds(procs[i]) - t0
    finally:
        ref.kill()
        ref.wait()
    # the OS counts CPU time in clock ticks: a reference too cheap to be charged one
    # counts as one (its figure is then an upper bound, the ratio a lower bound)
    tick = 1 / os.sysconf("SC_CLK_TCK")
    results = {
        "http_cpu_us": cpu[0] / len(ours) * 1e6,
        "ref_http_cpu_us": max(cpu[1], tick) / len(bare) * 1e6,
        "http_p50_ms": percentile(ours, 50),
        "http_p99_ms": percentile(ours, 99),
        "ref_http_p50_ms": percentile(bare, 50),
        "ref_http_p99_ms": percentile(bare, 99),
    }
    results["http_cpu_x_ref"] = results["http_cpu_us"] / results["ref_http_cpu_us"]
    results["http_p50_x_ref"] = results["http_p50_ms"] / results["ref_http_p50_ms"]
    results["http_p99_x_ref"] = results["http_p99_ms"] / results["ref_http_p99_ms"]
    return results


async def run(count: int, repeats: int, store: str, prof: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, bench_store(store) as store_url:
        data = Path(tmp) / "data"
        env = {"MESSENGER_STORE": store_url} if store_url else None
        srv = ServerProcess(data, args=["--log-level", "WARNING"], env=env)
        token = await token_of_fresh_server(srv, "reader")
        t0 = time.perf_counter()
        if store_url:
            fill_postgres(store_url, count, author_id=1)
        else:
            fill(data / "messenger.db", count, author_id=1)
        fill_s = time.perf_counter() - t0
        results: dict[str, Any] = {"messages": count, "fill_s": fill_s}
        opened = PostgresStore(store_url) if store_url else SqliteStore.in_dir(data)
        results |= await store_query(opened, count, repeats)
        srv.start()
        try:
            results |= await http_side_by_side(srv, token, count, repeats, Path(tmp))
            if prof is not None:
                assert srv.proc is not None
                spy = profile(srv.proc.pid, prof, None)
                await asyncio.sleep(1)  # py-spy attaches
                await http_query(srv.port, token, count, repeats * 10)
                spy.send_signal(signal.SIGINT)
                spy.wait()
        finally:
            srv.stop()
        results["load_avg_1m"] = os.getloadavg()[0]
        if prof is not None:
            print_profile("history over HTTP", prof)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument(
        "--store", default="", help="postgresql://… to run on PostgreSQL (a throwaway schema)"
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy raw file: samples the server in an extra HTTP pass"
    )
    parser.add_argument("--save", type=Path)
    parser.add_argument("--baseline", type=Path)
    args = parser.parse_args()
    report(asyncio.run(run(args.messages, args.repeats, args.store, args.profile)), args)


if __name__ == "__main__":
    main()
