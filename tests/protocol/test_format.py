"""The one size, duration and time formatter of the product (issue 9, item 12)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger_protocol import (
    format_count,
    format_duration,
    format_latency,
    format_size,
    format_time,
    format_too_large,
    limits,
)

PLUS2 = timezone(timedelta(hours=2))
# Tuesday, 1 December 2026, 14:05:00 UTC
T = datetime(2026, 12, 1, 14, 5, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (4300, "4.2 KiB"),
        (1024 * 1024 - 1, "1.0 MiB"),
        (limits.MAX_FILE_BYTES, "5.0 MiB"),
        (limits.MAX_FILE_BYTES + 1, "5.0 MiB"),
        (6_400_000, "6.1 MiB"),
        (3 * 1024**3 // 2, "1.5 GiB"),
        (5 * 1024**4, "5.0 TiB"),
        (2000 * 1024**4, "2000.0 TiB"),
    ],
)
def test_sizes_are_binary_units_with_one_decimal(size: int, text: str) -> None:
    """Item 12: the 5 MiB limit and a 5 MiB file both read "5.0 MiB", never "5 MB"."""
    assert format_size(size) == text


@given(st.integers(min_value=0, max_value=2**63))
def test_every_size_has_a_short_number_and_a_binary_unit(size: int) -> None:
    number, unit = format_size(size).split(" ")
    assert unit in ("B", "KiB", "MiB", "GiB", "TiB")
    assert float(number) < 1024 or unit == "TiB"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (-5, "0 s"),
        (float("nan"), "0 s"),
        (0.2, "1 s"),
        (39.2, "40 s"),
        (40, "40 s"),
        (59.5, "1 min"),
        (60, "1 min"),
        (245, "4 min 5 s"),
        (3600, "1 h"),
        (3605, "1 h"),
        (7500, "2 h 5 min"),
        (14400, "4 h"),
        (86400 * 3 + 3600 * 4 + 59, "3 d 4 h"),
        (86400 + 59, "1 d"),
    ],
)
def test_durations_use_at_most_two_units_rounded_up(seconds: float, text: str) -> None:
    """Item 12: "try again in 40 s" for 39.2 s left (never too little), "4 h" for a ban."""
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0.0, "0 ms"),
        (-1.0, "0 ms"),
        (float("nan"), "0 ms"),
        (0.26, "0.3 ms"),
        (2.5, "2.5 ms"),
        (9.94, "9.9 ms"),
        (9.96, "10 ms"),
        (15.0, "15 ms"),
        (999.4, "999 ms"),
        (999.6, "1.0 s"),
        (1500.0, "1.5 s"),
    ],
)
def test_short_waits_read_in_milliseconds(ms: float, text: str) -> None:
    """The admin screen's loop lag: one decimal while it matters, never "10.0 ms"."""
    assert format_latency(ms) == text


def test_a_moment_is_date_and_minute_in_the_given_zone() -> None:
    assert format_time(T, tz=PLUS2) == "2026-12-01 16:05"
    assert format_time(T, tz=PLUS2, form="clock") == "16:05"
    assert format_time(T, tz=PLUS2, form="day") == "Tuesday, 01 December 2026"


def test_local_time_by_default() -> None:
    assert format_time(T) == datetime.fromtimestamp(T).strftime("%Y-%m-%d %H:%M")


def test_same_day_leaves_the_date_out_unless_asked() -> None:
    assert format_time(T, now=T + 3600, tz=PLUS2) == "16:05"
    assert format_time(T, now=T + 86400, tz=PLUS2) == "2026-12-01 16:05"
    assert format_time(T, now=T + 60, tz=PLUS2, form="datetime") == "2026-12-01 16:05"


def test_relative_says_how_far_away() -> None:
    """Item 12: a ban end reads "until 20:05 (in 4 h)", not "until 1796162785"."""
    assert format_time(T + 14400, now=T, tz=PLUS2, relative=True) == "20:05 (in 4 h)"
    assert format_time(T - 300, now=T, tz=PLUS2, relative=True) == "16:00 (5 min ago)"
    assert format_time(T, now=T + 0.5, tz=PLUS2, relative=True) == "16:05 (now)"
    tomorrow = format_time(T + 86400 + 60, now=T, tz=PLUS2, relative=True)
    assert tomorrow == "2026-12-02 16:06 (in 1 d)"  # two adjacent units: days and hours


def test_the_zone_is_named_on_request_so_server_text_is_not_read_as_local_time() -> None:
    assert format_time(T, tz=UTC) == "2026-12-01 14:05"
    assert format_time(T, tz=UTC, zone=True) == "2026-12-01 14:05 UTC"
    assert format_time(T + 60, now=T, tz=UTC, relative=True, zone=True) == "14:06 UTC (in 1 min)"
    assert format_time(T, tz=UTC, form="day", zone=True) == "Tuesday, 01 December 2026"
    local = datetime.fromtimestamp(T).astimezone()
    assert format_time(T, zone=True) == f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def test_counts_agree_with_their_noun() -> None:
    """Item 12: "1 member", never "1 members"."""
    assert format_count(1, "member") == "1 member"
    assert format_count(0, "member") == "0 members"
    assert format_count(3, "member") == "3 members"
    assert format_count(2, "reply", "replies") == "2 replies"


def test_a_refused_file_says_its_size_and_the_limit() -> None:
    """Item 12: the same words in the client (before sending) and in the server's error."""
    five = limits.MAX_FILE_BYTES
    assert format_too_large(6_400_000, five) == "file is 6.1 MiB, the limit is 5.0 MiB"
    assert format_too_large(five + 1, five) == "file is 1 byte over the limit of 5.0 MiB"
    assert format_too_large(five + 2, five) == "file is 2 bytes over the limit of 5.0 MiB"
    assert format_too_large(None, five) == "file is over the limit of 5.0 MiB"


def test_a_moment_beyond_the_calendar_is_the_last_day_people_can_read() -> None:
    """A ban of 2**63-1 seconds (the protocol allows it) must not crash the formatter."""
    assert format_time(2**63 - 1, tz=UTC).startswith("9999-12-31")
    assert format_time(-(2**63), tz=UTC).endswith("-01-02 00:00")
    assert "in " in format_time(2**63 - 1, now=0, tz=UTC, relative=True)
