"""A progress line for file transfers in the plain console.

It goes to stderr, so stdout keeps one line (or JSON object) per output.
"""

from __future__ import annotations

from typing import TextIO

from messenger_protocol import format_size

from .commands import ProgressHook

__all__ = ["progress_line"]


def progress_line(stream: TextIO) -> ProgressHook:
    """A hook that redraws ``name: 42% (2.1 MiB/5.0 MiB)`` in place on a terminal.

    Not on a terminal it writes one line when a transfer completes, so logs and
    pipes get no carriage-return noise.
    """
    interactive = stream.isatty()
    shown: dict[str, int] = {}

    def hook(name: str, done: int, total: int | None) -> None:
        percent = 100 if not total else min(100, done * 100 // total)
        finished = total is not None and done >= total
        if interactive:
            if shown.get(name) == percent and not finished:
                return
            shown[name] = percent
            size = f"{format_size(done)}/{format_size(total)}" if total else format_size(done)
            stream.write(f"\r{name}: {percent:3d}% ({size})")
            if finished:
                stream.write("\n")
                shown.pop(name, None)
        elif finished:
            stream.write(f"{name}: 100% ({format_size(done)})\n")
        stream.flush()

    return hook
