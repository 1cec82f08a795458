"""Errors a peer can cause, each with one stable machine-readable code.

Every error the server sends has the body::

    {"error": {"code": "rate_limited", "message": "...", "retry_after": 1234}}

next to the HTTP status of :data:`STATUS_OF`. ``code`` is stable and meant for
programs; ``message`` is one human line. Hierarchy:

* :class:`ApiError` - any error with a code; raised by services, turned into a
  response by the server, re-raised by the client library.
* :class:`ProtocolViolation` - the byte stream itself is corrupt (bad HTTP, bad SSE
  framing); the connection is closed after the answer.

Anything else escaping a handler is a bug and becomes ``internal`` (500).
"""

from __future__ import annotations

import enum

import msgspec

from ._keys import DeviceRef


class ErrorCode(enum.StrEnum):
    """Stable error codes; never renamed, only added to."""

    INVALID = "invalid"
    UNAUTHORIZED = "unauthorized"
    SESSION_EXPIRED = "session_expired"
    """The token was a session that expired (idle too long, or too old): log in again."""
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    GONE = "gone"
    TOO_LARGE = "too_large"
    UNSUPPORTED_TYPE = "unsupported_type"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
    RATE_LIMITED = "rate_limited"
    BANNED = "banned"
    QUOTA_EXCEEDED = "quota_exceeded"
    TIMEOUT = "timeout"
    INTERNAL = "internal"
    NOT_IMPLEMENTED = "not_implemented"
    UNAVAILABLE = "unavailable"
    DEVICES_CHANGED = "devices_changed"
    """An encrypted send named another device set than its chat's members have now
    (``devices`` lists them): encrypt for them and send again."""


STATUS_OF: dict[ErrorCode, int] = {
    ErrorCode.INVALID: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.SESSION_EXPIRED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.GONE: 410,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_TYPE: 415,
    ErrorCode.RANGE_NOT_SATISFIABLE: 416,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.BANNED: 403,
    ErrorCode.QUOTA_EXCEEDED: 413,
    ErrorCode.TIMEOUT: 408,
    ErrorCode.INTERNAL: 500,
    ErrorCode.NOT_IMPLEMENTED: 501,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.DEVICES_CHANGED: 409,
}
"""HTTP status sent with each code."""


class ErrorDetail(msgspec.Struct, frozen=True, omit_defaults=True):
    """What went wrong: a code for programs and a line for people."""

    code: ErrorCode
    message: str
    retry_after: float | None = None
    """Seconds until the request may succeed (``rate_limited``, throttles)."""
    until: float | None = None
    """Unix time a ban ends (``banned``)."""
    limit: int | None = None
    """The limit that was crossed (``too_large``, ``quota_exceeded``)."""
    devices: list[DeviceRef] | None = None
    """The devices with keys of the chat's members now (``devices_changed``)."""


class ErrorBody(msgspec.Struct, frozen=True):
    """The body of every error response."""

    error: ErrorDetail


class MessengerError(Exception):
    """The root of what a messenger call can raise: :class:`ApiError` (the server said
    no) and the client's ``ServerUnavailable`` (no answer). ``except MessengerError``
    catches both, and nothing that is a bug."""


class ApiError(MessengerError):
    """An error with a stable code, raised on the server and re-raised by the client."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retry_after: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        allow: tuple[str, ...] = (),
        devices: list[DeviceRef] | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.until = until
        self.limit = limit
        self.allow = allow
        self.devices = devices
        """The devices of the chat's members now (``devices_changed``)."""
        """Methods the resource does allow (``method_not_allowed``: the ``Allow`` header)."""

    @property
    def status(self) -> int:
        """The HTTP status that goes with this error."""
        return STATUS_OF[self.code]

    def detail(self) -> ErrorDetail:
        """The typed detail of this error."""
        return ErrorDetail(
            code=self.code,
            message=self.message,
            retry_after=self.retry_after,
            until=self.until,
            limit=self.limit,
            devices=self.devices,
        )

    def body(self) -> ErrorBody:
        """The typed body of this error."""
        return ErrorBody(error=self.detail())

    @classmethod
    def from_detail(cls, detail: ErrorDetail) -> ApiError:
        """Rebuild an error from a received body."""
        return cls(
            detail.code,
            detail.message,
            retry_after=detail.retry_after,
            until=detail.until,
            limit=detail.limit,
            devices=detail.devices,
        )


class ProtocolViolation(ApiError):
    """The byte stream is corrupt; the answer is sent and the connection closed."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.INVALID) -> None:
        super().__init__(code, message)
