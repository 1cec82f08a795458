"""The app's settings beyond the client config: ``keymap.toml`` (keys, notifications)."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path

__all__ = ["TuiOptions", "load_options"]

log = logging.getLogger(__name__)


@dataclass
class TuiOptions:
    """Settings of the app beyond the client config (from ``keymap.toml``, or tests)."""

    keymap: dict[str, str] = field(default_factory=dict)
    """Binding id -> keys, e.g. ``{"chats.next": "ctrl+n"}``."""
    bell: bool = True
    """Ring the terminal bell for private messages and mentions."""
    toasts: bool = True
    """Show a toast for private messages and mentions in chats not in view."""
    tz: tzinfo | None = None
    """Time zone of shown times (None: local)."""
    cache_dir: Path | None = None
    """Where caches live (None: the client data dir)."""


def load_options(path: Path) -> TuiOptions:
    """Read ``keymap.toml``: ``[keys]`` binding id = keys, ``[notifications]`` bell/toasts.

    A missing or broken file gives the defaults (and a line in the log).
    """
    options = TuiOptions()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return options
    except (OSError, tomllib.TOMLDecodeError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return options
    keys = data.get("keys", {})
    if isinstance(keys, dict):
        options.keymap = {str(k): str(v) for k, v in keys.items() if isinstance(v, str)}
    notes = data.get("notifications", {})
    if isinstance(notes, dict):
        options.bell = bool(notes.get("bell", options.bell))
        options.toasts = bool(notes.get("toasts", options.toasts))
    return options
