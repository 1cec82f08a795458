"""Logging: ``<date-time> <level> <module> <message>`` to stderr and a daily-rotated file."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from .config import Settings

__all__ = ["LOG_FORMAT", "log_file", "setup_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
"""SPEC F19: date-time, level, module, message."""

LOG_BACKUPS = 14
"""Rotated daily files kept."""


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
    formatter = logging.Formatter(LOG_FORMAT)
    path = log_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [
        logging.handlers.TimedRotatingFileHandler(
            path, when="midnight", backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    ]
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._messenger = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(settings.log_level)
