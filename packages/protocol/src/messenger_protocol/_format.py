"""The product's one way to show sizes, durations and moments to people.

Pure functions, no I/O. The TUI, the plain client and the server's human messages
(``banned until …``, ``try again in …``, ``the limit is …``) all use these, so the same
5 MiB file reads "5.0 MiB" everywhere and a ban end is never a raw Unix time.

* :func:`format_size` — binary units with one decimal: ``512 B``, ``4.2 KiB``, ``5.0 MiB``.
* :func:`format_duration` — at most two units, rounded up to whole seconds:
  ``40 s``, ``4 min 5 s``, ``2 h 5 min``, ``3 d 4 h``.
* :func:`format_latency` — a short wait in milliseconds, as a server's figures give it:
  ``0.3 ms``, ``15 ms``, ``1.5 s``.
* :func:`format_count` — a count with its noun: ``1 member``, ``3 members``.
* :func:`format_time` — a moment in local (or a given) time: ``2026-12-02 14:05``; with
  ``now`` the date is left out on the same day (``14:05``), and ``relative=True`` adds
  ``(in 4 h 3 min)`` / ``(5 min ago)``; ``zone=True`` names the zone (``14:05 UTC``).
"""

from __future__ import annotations

import math
from datetime import datetime, tzinfo
from typing import Literal

__all__ = [
    "TimeForm",
    "format_count",
    "format_duration",
    "format_latency",
    "format_size",
    "format_time",
    "format_too_large",
]

_SIZE_UNITS = ("KiB", "MiB", "GiB", "TiB")

TimeForm = Literal["auto", "datetime", "clock", "day"]
"""How :func:`format_time` shows a moment: ``auto`` (date only when not today),
``datetime`` (always ``YYYY-MM-DD HH:MM``), ``clock`` (``HH:MM``), ``day``
(``Tuesday, 01 December 2026``)."""


def format_size(size: int) -> str:
    """A byte count in binary units: ``0 B``, ``512 B``, ``1.0 KiB``, ``5.0 MiB``, ``1.5 GiB``.

    Bytes are whole; every larger unit has one decimal, so a limit and a file of the
    same size always read the same.
    """
    if size < 1024:
        return f"{max(size, 0)} B"
    value = size / 1024
    for unit in _SIZE_UNITS:
        # Round first: 1023.96 KiB would print as "1024.0 KiB" otherwise.
        if round(value, 1) < 1024 or unit == _SIZE_UNITS[-1]:
            return f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def format_count(count: int, noun: str, plural: str | None = None) -> str:
    """``1 member``, ``0 members``, ``3 replies`` (``plural`` when it is not noun + "s")."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def format_too_large(size: int | None, limit: int) -> str:
    """Why a file is refused, said the same by the client (before sending) and the server:
    ``file is 6.1 MiB, the limit is 5.0 MiB``; ``file is 1 byte over the limit of 5.0 MiB``
    when both round alike; ``file is over the limit of 5.0 MiB`` when its size is unknown."""
    most = format_size(limit)
    if size is None:
        return f"file is over the limit of {most}"
    if format_size(size) == most:
        return f"file is {format_count(size - limit, 'byte')} over the limit of {most}"
    return f"file is {format_size(size)}, the limit is {most}"


_DURATION_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def format_duration(seconds: float) -> str:
    """A length of time people read at a glance: ``40 s``, ``4 min 5 s``, ``2 h``, ``3 d 4 h``.

    Rounded up to whole seconds (a "try again in" never says too little), at most two
    units, never negative (``0 s``).
    """
    left = max(0, math.ceil(seconds - 1e-9)) if math.isfinite(seconds) else 0
    parts: list[str] = []
    for unit, size in _DURATION_UNITS:
        count, left = divmod(left, size)
        if count or parts:
            parts.append(f"{count} {unit}")
        if len(parts) == 2:
            break
    parts = [p for p in parts if not p.startswith("0 ")]
    return " ".join(parts) if parts else "0 s"


def format_latency(ms: float) -> str:
    """A short wait given in milliseconds: ``0 ms``, ``0.3 ms``, ``9.9 ms`` (one decimal
    below 10 ms), ``15 ms``, ``999 ms``, then seconds with one decimal: ``1.5 s``."""
    if not math.isfinite(ms) or ms <= 0:
        return "0 ms"
    if round(ms, 1) < 10:
        return f"{ms:.1f} ms"
    if round(ms) < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


def format_time(
    ts: float,
    *,
    now: float | None = None,
    tz: tzinfo | None = None,
    relative: bool = False,
    form: TimeForm = "auto",
    zone: bool = False,
) -> str:
    """The moment ``ts`` (Unix seconds) as people read it, in ``tz`` (default: local time).

    ``form="auto"`` gives ``YYYY-MM-DD HH:MM``, or just ``HH:MM`` when ``now`` is given
    and falls on the same day. ``relative=True`` (needs ``now``) appends how far away it
    is: ``14:05 (in 3 h 56 min)``, ``2026-11-30 09:12 (1 d 4 h ago)``. ``zone=True``
    names the zone (``14:05 UTC``), so a server's message is not taken for local time.
    """
    moment = _moment(ts, tz)
    if form == "clock":
        text = f"{moment:%H:%M}"
    elif form == "day":
        text = f"{moment:%A, %d %B %Y}"
    elif form == "auto" and now is not None and _moment(now, tz).date() == moment.date():
        text = f"{moment:%H:%M}"
    else:
        text = f"{moment:%Y-%m-%d %H:%M}"
    if zone and form != "day":
        text += f" {moment.tzname() if tz is not None else moment.astimezone().tzname()}"
    if relative and now is not None:
        delta = ts - now
        if abs(delta) < 1:
            text += " (now)"
        elif delta > 0:
            text += f" (in {format_duration(delta)})"
        else:
            text += f" ({format_duration(-delta)} ago)"
    return text


_EARLIEST = -62_135_596_800 + 86_400
"""0001-01-02 00:00 UTC: a day inside datetime's range, whatever the zone."""
_LATEST = 253_402_214_400
"""9999-12-31 00:00 UTC: a ban of 2**63-1 seconds still ends at a moment people can read."""


def _moment(ts: float, tz: tzinfo | None) -> datetime:
    ts = min(max(ts, _EARLIEST), _LATEST)
    return datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts)
