"""Encoding and decoding of bodies, query strings and events (msgspec, built once)."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from ._errors import ApiError, ErrorBody, ErrorCode
from ._events import BaseEvent, Event

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_event_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)
_error_decoder = msgspec.json.Decoder(ErrorBody)


def encode(obj: Any) -> bytes:
    """JSON bytes of a model (or any msgspec-encodable value)."""
    return _encoder.encode(obj)


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    return decoder


def decode(kind: type[T], data: bytes) -> T:
    """Decode JSON bytes as ``kind``; any failure is an ``invalid`` :class:`ApiError`."""
    try:
        result: T = _decoder(kind).decode(data)
    except msgspec.ValidationError as exc:
        raise ApiError(ErrorCode.INVALID, f"invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ApiError(ErrorCode.INVALID, f"malformed JSON: {exc}") from None
    except UnicodeDecodeError as exc:  # msgspec checks UTF-8 only inside strings, by raising this
        raise ApiError(ErrorCode.INVALID, f"body is not valid UTF-8 (byte {exc.start})") from None
    return result


def decode_query(kind: type[T], params: dict[str, str]) -> T:
    """Convert query-string values (all strings) to ``kind``; failures are ``invalid``."""
    try:
        return msgspec.convert(params, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError(ErrorCode.INVALID, f"invalid query: {exc}") from None


def decode_event(data: bytes | str) -> Event:
    """Decode the ``data`` of an SSE frame as an event."""
    return _event_decoder.decode(data)


def decode_error(data: bytes) -> ApiError | None:
    """An :class:`ApiError` from an error body, or None if it is not one."""
    try:
        body = _error_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return ApiError.from_detail(body.error)


def encode_event(event: BaseEvent) -> bytes:
    """JSON bytes of an event (encode once, send to every recipient)."""
    return _encoder.encode(event)
