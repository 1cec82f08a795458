"""Client logging: to a file in the user's state dir, never over the UI (SPEC F19)."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

__all__ = ["LOG_FORMAT", "setup_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
"""``<date-time> <level> <module> <message>``."""

_MAX_BYTES = 2 * 1024 * 1024
_BACKUPS = 3


def setup_logging(path: Path, level: str | int = "INFO") -> Path:
    """Send every log record to ``path`` (rotated at 2 MiB) and nowhere else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        # A stream handler would write over the screen the UI owns.
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request at INFO; that is noise in a chat client's log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return path
