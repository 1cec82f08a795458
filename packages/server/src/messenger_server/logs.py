"""Logging: ``<date-time> <level> <module> <message>`` to stderr and a rotated file.

The file is rotated at midnight and whenever it would grow past ``log_max_bytes``, so
a flood of bad clients can never fill the disk: the logs take at most
``(LOG_BACKUPS + 1) * log_max_bytes``.
"""

from __future__ import annotations

import datetime
import logging
import logging.handlers
import re
import sys
from pathlib import Path

from .config import Settings

__all__ = [
    "LOG_BACKUPS",
    "LOG_FORMAT",
    "RedactingFormatter",
    "SizeAndDayRotatingHandler",
    "log_file",
    "redact",
    "setup_logging",
]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
"""SPEC F19: date-time, level, module, message."""

LOG_BACKUPS = 14
"""Rotated files kept (``server.log.1`` is the newest)."""


_SECRETS = re.compile(
    r"(?i)(\bbearer\s+|\baccess_token=|\btoken=|\bpassword=|\"(?:token|password)\"\s*:\s*\")"
    r"[^\s&\"',;]+"
)


def redact(text: str) -> str:
    """``text`` with bearer tokens, ``access_token=``/``token=``/``password=`` values and
    JSON ``"token"``/``"password"`` strings replaced by ``REDACTED``."""
    return _SECRETS.sub(r"\1REDACTED", text)


class RedactingFormatter(logging.Formatter):
    """The log format, with credentials blanked wherever they appear (tracebacks too)."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, redacted."""
        return redact(super().format(record))


class SizeAndDayRotatingHandler(logging.handlers.RotatingFileHandler):
    """Rotates when the file would pass ``max_bytes`` and when the local date changes."""

    def __init__(self, path: Path, max_bytes: int, backups: int = LOG_BACKUPS) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self._day = self._today()

    @staticmethod
    def _today() -> datetime.date:
        return datetime.date.today()

    def shouldRollover(self, record: logging.LogRecord) -> bool:  # the logging API name
        """Past the size cap, or the first record of a new day in a non-empty file."""
        today = self._today()
        if today != self._day:
            self._day = today
            if self.stream is not None and self.stream.tell() > 0:
                return True
        return bool(super().shouldRollover(record))


def log_file(settings: Settings) -> Path:
    """Where the server log goes: ``<data_dir>/logs/server.log``."""
    return settings.data_dir / "logs" / "server.log"


def setup_logging(settings: Settings, *, stderr: bool = True) -> None:
    """Configure the root logger at ``settings.log_level`` (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_messenger", False):
            root.removeHandler(handler)
            handler.close()
    formatter = RedactingFormatter(LOG_FORMAT)
    path = log_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [SizeAndDayRotatingHandler(path, settings.log_max_bytes)]
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._messenger = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(settings.log_level)
