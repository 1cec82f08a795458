"""SSE framing and the incremental parser, whatever the chunking."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger_protocol import ProtocolViolation, SseEvent, SseParser, sse_comment, sse_frame
from messenger_protocol._sse import MAX_SSE_LINE

STREAM = (
    sse_frame(b'{"a":1}', "message", 5)
    + sse_comment("ping")
    + sse_frame(b'{"b":2}', "presence")
    + b"retry: 3000\n\n"
    + b"id: 9\r\nevent: chat\r\ndata: x\r\ndata: y\r\n\r\n"
)
EXPECTED = [
    SseEvent('{"a":1}', "message", "5"),
    SseEvent('{"b":2}', "presence", None),
    SseEvent("x\ny", "chat", "9"),
]


def test_whole_stream() -> None:
    parser = SseParser()
    assert parser.feed(STREAM) == EXPECTED
    assert parser.last_event_id == "9"
    assert parser.retry == 3000


def test_byte_by_byte() -> None:
    parser = SseParser()
    events = [e for i in range(len(STREAM)) for e in parser.feed(STREAM[i : i + 1])]
    assert events == EXPECTED


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM)), max_size=10))
def test_any_chunking(cuts: list[int]) -> None:
    parser = SseParser()
    points = sorted({0, len(STREAM), *cuts})
    events = [e for a, b in itertools.pairwise(points) for e in parser.feed(STREAM[a:b])]
    assert events == EXPECTED


def test_overlong_line_is_a_violation() -> None:
    parser = SseParser()
    with pytest.raises(ProtocolViolation):
        parser.feed(b"data: " + b"x" * (MAX_SSE_LINE + 1))


def test_non_utf8_is_a_violation() -> None:
    with pytest.raises(ProtocolViolation):
        SseParser().feed(b"data: \xff\n\n")


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_our_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolViolation):
        SseParser().feed(data)
