"""TUI benchmark: open a 100,000-message chat and scroll it (SPEC §7: <= 0.5 s, <= 16 ms).

    uv run python bench/tui_open.py                 # 100k messages, 120x40 terminal
    uv run python bench/tui_open.py --messages 20000 --size 200x60

The chat lives in the local cache (the app shows cached history first, before and
without the network: the server URL points at a closed port). The app runs headless
(``App.run_test``). Printed numbers:

* start: what a user waits for from typing the command to the first painted frame of the
  chat, in a fresh process each time (median of 3 after one to compile): the imports and
  the app to that frame, wall clock and CPU time (the CPU time holds still on a busy
  machine). ``start_to_paint`` ends when the first whole frame (the chat, the chat list
  and the footer's keys in it) is rendered for the terminal; ``start_to_frame`` when the
  app is idle after it (what the start set going around that frame has run its first
  steps too: the network's start, a thread's TLS context). It runs as a user's install
  does: with bytecode cached (this environment may set PYTHONDONTWRITEBYTECODE, which
  makes every start compile every module, about half of the import time) and without the
  distributions only a development environment has (pytest, click, ...): an import of
  one fails as in a user's install, and the line ``dev_only_imports`` counts the tries
  (0: a dev environment imports the same);
* open: in this process (modules already imported), the app to the first painted frame,
  and switching to the chat from another chat;
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
import json
import os
import statistics
import subprocess
import sys
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


# Run in a fresh interpreter: argv = root, width, height. Prints one JSON line.
START_SCRIPT = r"""
import json, time
T0, C0 = time.perf_counter(), time.process_time()
import importlib.abc, importlib.metadata as md, sys
from packaging.requirements import Requirement

def closure(name, seen, extras=()):
    # The distributions a user's install of ``name`` has (with the extras asked for).
    key = name.lower().replace("_", "-")
    if (key, extras) in seen:
        return seen
    seen.add((key, extras))
    for spec in md.requires(name) or ():
        req = Requirement(spec)
        wanted = req.marker is None or any(
            req.marker.evaluate({"extra": extra}) for extra in ("", *extras)
        )
        if wanted:
            closure(req.name, seen, tuple(sorted(req.extras)))
    return seen

USER = {key for key, _ in closure("messenger-client", set())}
DEV_ONLY = {
    top for top, dists in md.packages_distributions().items()
    if not any(d.lower().replace("_", "-") in USER for d in dists)
}
TRIED = set()

class DevOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in DEV_ONLY:
            TRIED.add(top)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, DevOnly())
T1, C1 = time.perf_counter(), time.process_time()
import asyncio
from pathlib import Path
from messenger_client.config import ClientConfig, Dirs
from messenger_client.tui.app import MessengerApp, TuiOptions
from messenger_client.tui.timeline import utc
T2, C2 = time.perf_counter(), time.process_time()
root, width, height = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
dirs = Dirs(root / "data", root / "state", root / "config", root / "downloads")

async def run():
    app = MessengerApp(ClientConfig(server="%s", dirs=dirs), TuiOptions(tz=utc(), bell=False))
    display, painted = app._display, []

    def timed_display(screen, update):
        # The first whole frame goes out (headless: rendered, not written): the chat, the
        # chat list and the footer's keys in it.
        display(screen, update)
        main = app.main
        if (
            not painted and update is not None and screen is main and main.view.layout_
            and main.chat_list.option_count and main.query("FooterKey")
        ):
            painted.append((time.perf_counter(), time.process_time()))

    app._display = timed_display
    async with app.run_test(size=(width, height)) as pilot:
        while app.main is None or app.main.view.layout_ is None:
            await pilot.pause()
        await pilot.pause()
        return (time.perf_counter(), time.process_time()), painted[0]

(T3, C3), (T4, C4) = asyncio.run(run())
setup = (T1 - T0, C1 - C0)
print(json.dumps({
    "import_s": T2 - T1, "import_cpu_s": C2 - C1, "app_to_frame_s": T3 - T2,
    "app_to_frame_cpu_s": C3 - C2, "start_to_frame_s": T3 - T0 - setup[0],
    "start_to_frame_cpu_s": C3 - C0 - setup[1], "start_to_paint_s": T4 - T0 - setup[0],
    "start_to_paint_cpu_s": C4 - C0 - setup[1], "dev_only_imports": len(TRIED),
    "dev_only_names": sorted(TRIED),
}))
"""


def fresh_starts(root: Path, width: int, height: int, runs: int = 3) -> dict[str, float]:
    """Cold starts in new processes as a user's install runs them (see the docstring)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    script = START_SCRIPT % SERVER
    samples = []
    for _ in range(runs + 1):  # the first compiles every module
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", script, str(root), str(width), str(height)],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        sample = json.loads(done.stdout.strip().splitlines()[-1])
        sample["process_s"] = time.perf_counter() - started  # with the interpreter's own start
        samples.append(sample)
    measured = samples[1:]
    out: dict[str, float] = {}
    for key in ("process_s", "start_to_paint_s", "start_to_paint_cpu_s", "start_to_frame_s",
                "start_to_frame_cpu_s", "import_s",
                "import_cpu_s", "app_to_frame_s", "app_to_frame_cpu_s"):  # fmt: skip
        values = [s[key] for s in measured]
        out[f"fresh_{key}"] = statistics.median(values)
        out[f"fresh_{key}_spread"] = max(values) - min(values)
    out["dev_only_imports"] = float(max(s["dev_only_imports"] for s in measured))
    names = sorted({n for s in measured for n in s["dev_only_names"]})
    if names:
        print("dev-only modules the app tried to import:", ", ".join(names))
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
    results: dict[str, float] = {"messages": count, "fill_cache_s": fill}
    results.update(fresh_starts(root, width, height))
    results["rss_before_mib"] = rss_mib()

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
            store.add_older(
                GENERAL_CHAT_ID, cached, has_more=len(cached) == PAGE_SIZE, from_cache=True
            )
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
