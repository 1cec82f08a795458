"""Client settings: which server, where files live, and the saved login token.

Directories come from platformdirs (per user, per OS); ``MESSENGER_CLIENT_HOME``
puts all of them under one directory instead (tests, portable installs).
``MESSENGER_SERVER`` sets the default server URL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from .api import DEFAULT_SERVER

__all__ = ["APP_NAME", "ClientConfig", "TokenStore", "default_dirs"]

log = logging.getLogger(__name__)

APP_NAME = "messenger"


@dataclass(frozen=True, slots=True)
class Dirs:
    """Where the client keeps its files."""

    data: Path
    """Local cache databases."""
    state: Path
    """Logs and saved tokens."""
    config: Path
    """The keymap and other user configuration."""
    downloads: Path
    """Where ``/download`` saves by default."""


def default_dirs() -> Dirs:
    """The user's directories (or those under ``MESSENGER_CLIENT_HOME``)."""
    home = os.environ.get("MESSENGER_CLIENT_HOME")
    if home:
        root = Path(home)
        return Dirs(root / "data", root / "state", root / "config", root / "downloads")
    return Dirs(
        data=Path(platformdirs.user_data_dir(APP_NAME)),
        state=Path(platformdirs.user_state_dir(APP_NAME)),
        config=Path(platformdirs.user_config_dir(APP_NAME)),
        downloads=Path(platformdirs.user_downloads_dir()),
    )


@dataclass(slots=True)
class ClientConfig:
    """Everything a client front end (plain or TUI) starts from."""

    server: str = field(default_factory=lambda: os.environ.get("MESSENGER_SERVER", DEFAULT_SERVER))
    login: str | None = None
    password: str | None = None
    json: bool = False
    plain: bool = False
    history: int | None = None
    """Messages shown after login; None: the server's history_on_connect."""
    log_level: str = "INFO"
    device: str = ""
    dirs: Dirs = field(default_factory=default_dirs)

    @property
    def log_path(self) -> Path:
        """The client's log file."""
        return self.dirs.state / "client.log"

    @property
    def keymap_path(self) -> Path:
        """The user's key remapping file (read by the TUI)."""
        return self.dirs.config / "keymap.toml"

    @property
    def tokens(self) -> TokenStore:
        """Saved session tokens, per server."""
        return TokenStore(self.dirs.state / "tokens.json")


class TokenStore:
    """Session tokens saved per server URL, in a file only the user can read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        # Create with 0600 from the start: a token is as good as the password.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        tmp.replace(self.path)

    def load(self, server: str) -> tuple[str, str] | None:
        """``(login, token)`` saved for ``server``, or None."""
        entry = self._read().get(server.rstrip("/"))
        if not entry or "token" not in entry:
            return None
        return entry.get("login", ""), entry["token"]

    def save(self, server: str, login: str, token: str) -> None:
        """Remember the token of ``login`` on ``server``."""
        data = self._read()
        data[server.rstrip("/")] = {"login": login, "token": token}
        self._write(data)

    def forget(self, server: str) -> None:
        """Drop the token saved for ``server``."""
        data = self._read()
        if data.pop(server.rstrip("/"), None) is not None:
            with contextlib.suppress(OSError):
                self._write(data)
