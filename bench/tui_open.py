"""TUI benchmark: open a 100,000-message chat and scroll it (SPEC §7: <= 0.5 s, <= 16 ms).

    uv run python bench/tui_open.py                 # 100k messages, 120x40 terminal
    uv run python bench/tui_open.py --messages 20000 --size 200x60

The chat lives in the local cache (the app shows cached history first, before and
without the network: the server URL points at a closed port). The app runs headless
(``App.run_test``). Printed numbers:

* open: a cold start to the first painted frame of the chat, and switching to it from
  another chat (what the user waits for);
* page: one PageUp, as the widget's own work (``render_line`` of every visible line,
  strip cache cold) and as a whole frame (every widget's lines through the compositor);
  ``harness_idle_wait`` is what the test harness itself spends per pause, for scale;
* history: loading all 100k messages page by page as scrolling up does (per page: cache
  read, de-duplication, layout), then PageUp again with every message in the layout;
* memory: RSS of this process before the app, after opening, after loading everything.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from messenger_client.cache import Cache
from messenger_client.config import ClientConfig, Dirs
from messenger_client.tui.app import MessengerApp, TuiOptions
from messenger_client.tui.store import PAGE_SIZE
from messenger_client.tui.timeline import utc
from messenger_protocol import GENERAL_CHAT_ID, Chat, Message

SERVER = "http://127.0.0.1:9"  # discard port: nothing listens, the app stays offline
WORDS = (
    "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while",
    "**everyone**", "watches", "`make", "test`", "run", "and", "https://example.org/b/42",
    "reports", "green", "so", "@bob", "merges", "it",
)  # fmt: skip


def fake_messages(count: int) -> list[Message]:
    """A deterministic mix of short and long lines, authors, markup, days."""
    out = []
    start = 1_700_000_000.0
    for i in range(1, count + 1):
        length = (3, 8, 14, 40, 6)[i % 5] + i % 7
        words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(length)]
        author = ("alice", "bob", "carol", "dave")[(i // 3) % 4]
        out.append(
            Message(
                id=i,
                chat_id=GENERAL_CHAT_ID,
                author=author,
                text=" ".join(words),
                created_at=start + i * 37.0,
            )
        )
    return out


def rss_mib() -> float:
    """Resident memory of this process."""
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


async def measure(count: int, width: int, height: int, root: Path) -> dict[str, float]:
    """Run the app over a filled cache and time what a user waits for."""
    dirs = Dirs(root / "data", root / "state", root / "config", root / "downloads")
    config = ClientConfig(server=SERVER, dirs=dirs)
    config.tokens.save(SERVER, "alice", "not-a-real-token")
    cache = Cache.for_account(SERVER, "alice", root=dirs.data / "cache")
    cache.replace_chats([
        Chat(id=GENERAL_CHAT_ID, kind="general", name="general"),
        Chat(id=2, kind="direct", name="@bob", peer="bob"),
    ])  # fmt: skip
    started = time.perf_counter()
    messages = fake_messages(count)
    cache.save_messages(messages)
    cache.save_messages([Message(id=count + 1, chat_id=2, author="bob", text="hi",
                                 created_at=1_700_000_000.0)])  # fmt: skip
    cache.close()
    del messages
    fill = time.perf_counter() - started
    results: dict[str, float] = {
        "messages": count,
        "fill_cache_s": fill,
        "rss_before_mib": rss_mib(),
    }

    app = MessengerApp(config, TuiOptions(tz=utc(), bell=False))
    started = time.perf_counter()
    async with app.run_test(size=(width, height)) as pilot:
        while app.main is None or app.main.view.layout_ is None:
            await pilot.pause()
        await pilot.pause()
        results["cold_start_to_frame_s"] = time.perf_counter() - started
        main = app.main
        view = main.view
        app.open_chat(2)
        await pilot.pause()
        assert app.store is not None
        # Forget the loaded timeline, so opening reads the cache again (a cold open).
        del app.store.timelines[GENERAL_CHAT_ID]
        started = time.perf_counter()
        app.open_chat(GENERAL_CHAT_ID)
        app.screen._compositor.render_strips()
        results["open_chat_to_frame_s"] = time.perf_counter() - started
        await pilot.pause()
        results["rss_open_mib"] = rss_mib()

        idle = []
        for _ in range(10):
            started = time.perf_counter()
            await pilot.pause()
            idle.append(time.perf_counter() - started)
        results["harness_idle_wait_ms"] = statistics.median(idle) * 1000

        compositor = app.screen._compositor
        widget_times, frame_times = [], []
        for _ in range(30):
            view._strips.clear()
            started = time.perf_counter()
            view.action_page_up()
            for y in range(view.size.height):
                view.render_line(y)
            widget_times.append(time.perf_counter() - started)
            view._strips.clear()
            await pilot.pause()
            started = time.perf_counter()
            view.action_page_up()
            # What a frame costs: every widget's visible lines through the compositor.
            compositor.render_strips()
            frame_times.append(time.perf_counter() - started)
        results["page_widget_p50_ms"] = statistics.median(widget_times) * 1000
        results["page_widget_max_ms"] = max(widget_times) * 1000
        results["page_frame_p50_ms"] = statistics.median(frame_times) * 1000
        results["page_frame_max_ms"] = max(frame_times) * 1000

        store = app.store
        assert store is not None
        timeline = store.timeline(GENERAL_CHAT_ID)
        page_times = []
        started = time.perf_counter()
        while timeline.has_more:
            # What the older-history worker does when offline, timed without the harness.
            page_started = time.perf_counter()
            cached = store.older_from_cache(GENERAL_CHAT_ID)
            store.add_older(GENERAL_CHAT_ID, cached, has_more=len(cached) == PAGE_SIZE)
            page_times.append(time.perf_counter() - page_started)
        await pilot.pause()
        results["load_all_s"] = time.perf_counter() - started
        results["older_page_p50_ms"] = statistics.median(page_times) * 1000
        results["older_page_max_ms"] = max(page_times) * 1000
        results["loaded"] = len(timeline)
        results["rss_all_loaded_mib"] = rss_mib()

        view.scroll_to(y=view.max_scroll_y // 2, animate=False)
        await pilot.pause()
        deep = []
        for _ in range(30):
            view._strips.clear()
            started = time.perf_counter()
            view.action_page_up()
            for y in range(view.size.height):
                view.render_line(y)
            deep.append(time.perf_counter() - started)
        results["page_widget_all_loaded_p50_ms"] = statistics.median(deep) * 1000
        results["page_widget_all_loaded_max_ms"] = max(deep) * 1000
        layout = view.layout_
        assert layout is not None
        started = time.perf_counter()
        layout.relayout()
        results["relayout_all_s"] = time.perf_counter() - started
    return results


def main() -> None:
    """Parse flags, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--size", default="120x40", help="terminal WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="tui-bench-") as tmp:
        results = asyncio.run(measure(args.messages, width, height, Path(tmp)))
    print(f"TUI open/scroll benchmark, {args.messages} messages, {width}x{height}")
    for key, value in results.items():
        print(f"  {key:32} {value:12.3f}")


if __name__ == "__main__":
    main()
