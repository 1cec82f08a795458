"""Encoding and decoding of bodies, query strings and events (msgspec, built once)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from . import _limits as limits
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


_NAME_WORDS = "letters, digits and _ . - (at most 32, not starting with . or -)"
_PATTERN_WORDS = {
    # msgspec quotes a pattern with repr(), so key by the repr
    repr(limits.LOGIN_PATTERN)[1:-1]: _NAME_WORDS,
    repr(limits.CHAT_NAME_PATTERN)[1:-1]: _NAME_WORDS,
    repr(limits.ID_PATTERN)[1:-1]: "digits",
    repr(limits.TEXT_PATTERN)[1:-1]: "characters other than NUL (U+0000)",
    repr(limits.REACTION_PATTERN)[1:-1]: "visible characters: no spaces, control or "
    "invisible ones (an emoji sequence of up to 16)",
}
_TYPE_WORDS = {
    "str": "text", "int": "a whole number", "float": "a number", "bool": "true or false",
    "object": "an object", "array": "a list", "null": "null",
}  # fmt: skip
_AT = re.compile(r" - at `\$(?:\.(?P<field>\w+))?(?P<rest>[^`]*)`$")
_FORMS: tuple[tuple[re.Pattern[str], Callable[[str, str], str]], ...] = (
    (re.compile(r"Expected `str` matching regex '(.*)'"),
     lambda x, _: f"may only hold {_PATTERN_WORDS.get(x, 'certain characters')}"),
    (re.compile(r"Expected `str` of length >= (\d+)"),
     lambda x, _: f"is too short (at least {x} characters)"),
    (re.compile(r"Expected `str` of length <= (\d+)"),
     lambda x, _: f"is too long (at most {x} characters)"),
    (re.compile(r"Expected `array` of length <= (\d+)"), lambda x, _: f"has more than {x} items"),
    (re.compile(r"Expected `(?:int|float)` >= (\S+)"), lambda x, _: f"must be at least {x}"),
    (re.compile(r"Expected `(?:int|float)` <= (\S+)"), lambda x, _: f"must be at most {x}"),
    (re.compile(r"Expected `(\w+)[^`]*`, got `(\w+)`"),
     lambda x, y: f"must be {_TYPE_WORDS.get(x, x)}, not {_TYPE_WORDS.get(y, y)}"),
)  # fmt: skip
_FIELD_FORMS = (
    (re.compile(r"Object missing required field `(\w+)`"), "{} is missing"),
    (re.compile(r"Object contains unknown field `(\w+)`"), "{} is not a known field"),
)


def plain_words(error: str) -> str:
    """A msgspec validation message in words people read, naming the field:
    ``Expected `str` of length <= 4000 - at `$.text``` is ``text is too long (at most 4000
    characters)``, and a regex becomes the characters it allows. Other forms pass through
    without msgspec's backticks."""
    subject = "the body"
    at = _AT.search(error)
    if at is not None:
        subject = (at.group("field") or "") + at.group("rest") or subject
        error = error[: at.start()]
    for form, words in _FORMS:
        found = form.fullmatch(error)
        if found is not None:
            first, second = (*found.groups(), "")[:2]
            return f"{subject} {words(first, second)}"
    for form, template in _FIELD_FORMS:
        found = form.fullmatch(error)
        if found is not None:
            return template.format(found.group(1))
    return error.replace("`", "")


def _integral(value: Any) -> Any:
    """``value`` with every float that has no fraction (``7050.0``) as an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def decode(kind: type[T], data: bytes) -> T:
    """Decode JSON bytes as ``kind``; any failure is an ``invalid`` :class:`ApiError`.

    An integer field takes ``7050.0`` as 7050: JSON Schema's ``integer`` (the OpenAPI
    document) is any number without a fraction. Strings are never turned into numbers.
    """
    try:
        result: T = _decoder(kind).decode(data)
    except msgspec.ValidationError as exc:
        if "got `float`" in str(exc):
            try:
                retried: T = msgspec.convert(_integral(msgspec.json.decode(data)), kind)
            except msgspec.ValidationError:
                pass
            else:
                return retried
        raise ApiError(ErrorCode.INVALID, f"invalid body: {plain_words(str(exc))}") from None
    except msgspec.DecodeError as exc:
        raise ApiError(ErrorCode.INVALID, f"malformed JSON: {exc}") from None
    except UnicodeDecodeError as exc:  # msgspec checks UTF-8 only inside strings, by raising this
        raise ApiError(ErrorCode.INVALID, f"body is not valid UTF-8 (byte {exc.start})") from None
    return result


_not_text: dict[Any, frozenset[str]] = {}


def _fields_not_text(kind: Any) -> frozenset[str]:
    """Fields of a query model that cannot hold a string (``null`` is no value for them)."""
    names = _not_text.get(kind)
    if names is None:
        info = msgspec.inspect.type_info(kind)
        assert isinstance(info, msgspec.inspect.StructType)
        names = frozenset(
            f.name
            for f in info.fields
            if not any(
                isinstance(t, msgspec.inspect.StrType)
                for t in (
                    f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
                )
            )
        )
        _not_text[kind] = names
    return names


def decode_query(kind: type[T], params: dict[str, str]) -> T:
    """Convert query-string values (all strings) to ``kind``; failures are ``invalid``.

    An optional number is given or left out: ``before=null`` is refused, not read as None.
    """
    for name in _fields_not_text(kind):
        if params.get(name) == "null":
            raise ApiError(ErrorCode.INVALID, f"invalid query: {name} must be a number")
    try:
        return msgspec.convert(params, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError(ErrorCode.INVALID, f"invalid query: {plain_words(str(exc))}") from None


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
