"""The one place where a bug in the TUI becomes an error line instead of a dead app.

Textual hands every exception it did not expect to ``App._handle_exception``, which ends
the app; worse, an exception inside a screen's or widget's own handler first ends that
node's message loop, so the node would stop answering even if the app lived on. So:

* :class:`Guarded` is the first base of every screen, widget and the app itself: an
  exception in one of its message or event handlers is reported and the node's loop goes
  on with the next message;
* the app's ``_handle_exception`` reports the rest (failed workers of the app or of any
  screen, timers) the same way.

Reporting is :func:`report_failure`: the traceback in the log, one line on screen.
"""

from __future__ import annotations

import logging
from typing import Any

from textual.app import App
from textual.message import Message
from textual.message_pump import MessagePump

from messenger_protocol import ApiError, ErrorCode

from ..api import ServerUnavailable

__all__ = ["Guarded", "describe_error", "failure_line", "report_failure", "session_over_reason"]

log = logging.getLogger(__name__)

LONGEST_LINE = 160
"""Longest error line shown on screen (the log has all of it)."""


def session_over_reason(exc: ApiError) -> str:
    """The one line the login screen shows when the session's token stopped working."""
    if exc.code == ErrorCode.SESSION_EXPIRED:
        return exc.message[:1].upper() + exc.message[1:]  # says why, and to log in again
    return "Your session has ended; please log in again"


def describe_error(exc: BaseException, server: str = "") -> str:
    """One human line for a failed call."""
    if isinstance(exc, ServerUnavailable):
        return f"Cannot reach the server {server}".rstrip() + " -- is it running?"
    if isinstance(exc, ApiError):
        match exc.code:
            case ErrorCode.UNAUTHORIZED:
                return "Wrong login or password"
            case ErrorCode.SESSION_EXPIRED:
                return session_over_reason(exc)
            case ErrorCode.CONFLICT:
                return f"That login is taken: {exc.message}"
            case _:
                return exc.message
    return str(exc) or type(exc).__name__


def failure_line(where: str, error: BaseException) -> str:
    """``Something went wrong (where): first line of the error``, at most one short line."""
    said = describe_error(error)
    text = said.splitlines()[0] if said.strip() else type(error).__name__
    if len(text) > LONGEST_LINE:
        text = text[: LONGEST_LINE - 1] + "…"
    return f"Something went wrong ({where}): {text}"


def report_failure(app: App[Any], where: str, error: BaseException) -> None:
    """Log ``error`` with its traceback and show one error line; the app goes on."""
    log.error("%s failed", where, exc_info=error)
    if app._closing or not app.is_running:
        return  # torn down mid-call while quitting: nobody to tell
    app.notify(failure_line(where, error), severity="error")


class Guarded(MessagePump):
    """A screen, widget or app whose handler exceptions are reported, not fatal."""

    async def _dispatch_message(self, message: Message) -> None:
        try:
            await super()._dispatch_message(message)
        except Exception as error:
            app = self.app
            if not app.is_running or app._closing:
                raise  # while quitting, Textual's own handling is right
            report_failure(app, type(message).__name__, error)
