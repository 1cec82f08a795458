"""``messenger-client``: the Textual app in a terminal, the plain console otherwise.

messenger-client                      # TUI (plain when stdin is not a terminal)
messenger-client --plain [--json]     # slash commands on stdin, one line per output
messenger-client --server http://host:8000 --login alice --password secret1
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from messenger_protocol import limits

from .config import ClientConfig
from .logs import setup_logging

__all__ = ["build_parser", "config_from_args", "main"]

log = logging.getLogger(__name__)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"port must be a number from 1 to 65535, not {text!r}")
    return int(text)


def _server(text: str) -> str:
    parts = urlsplit(text if "://" in text else f"http://{text}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not a server URL: {text!r} (e.g. http://host:8000)")
    try:
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    p = argparse.ArgumentParser(prog="messenger-client", description=__doc__.splitlines()[0])
    p.add_argument("--plain", action="store_true", help="line-by-line console mode")
    p.add_argument("--json", action="store_true", help="plain mode, one JSON object per line")
    p.add_argument("--server", type=_server, help="server URL (default http://127.0.0.1:8000)")
    p.add_argument("--host", help=f"server host (default {limits.DEFAULT_HOST})")
    p.add_argument("--port", type=_port, help=f"server port (default {limits.DEFAULT_PORT})")
    p.add_argument("--login", help="log in as this user at start")
    p.add_argument("--password", help="password for --login")
    p.add_argument(
        "--history", type=int, help="messages shown after login (default: what the server says)"
    )
    p.add_argument("--log-level", default="INFO", help="level of the log file (DEBUG, INFO, ...)")
    return p


def config_from_args(argv: Sequence[str] | None = None) -> ClientConfig:
    """Settings from the command line (exits with a one-line message on bad values)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = ClientConfig()
    if args.server:
        config.server = args.server
    if args.host or args.port:
        base = urlsplit(config.server)
        host = args.host or base.hostname or limits.DEFAULT_HOST
        port = args.port or base.port or limits.DEFAULT_PORT
        config.server = _server(f"{base.scheme or 'http'}://{host}:{port}")
    if (args.login is None) != (args.password is None):
        parser.error("--login and --password go together")
    if args.log_level.upper() not in logging.getLevelNamesMapping():
        parser.error(f"unknown log level {args.log_level!r}")
    config.login, config.password = args.login, args.password
    config.json = args.json
    config.plain = args.plain or args.json
    if args.history is not None:
        config.history = max(0, min(args.history, limits.HISTORY_PAGE_MAX))
    config.log_level = args.log_level.upper()
    return config


def _run_tui(config: ClientConfig) -> int | None:
    """Run the Textual app; None when it is not installed/available."""
    try:
        app = importlib.import_module("messenger_client.tui.app")
    except ImportError as exc:
        log.warning("TUI not available (%s); using plain mode", exc)
        return None
    run = getattr(app, "run", None)
    if run is None:
        log.warning("messenger_client.tui.app has no run(); using plain mode")
        return None
    code = run(config)
    return code if isinstance(code, int) else 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``messenger-client``."""
    config = config_from_args(argv)
    setup_logging(config.log_path, config.log_level)
    log.info("client starting, server %s", config.server)
    if not config.plain and sys.stdin.isatty() and sys.stdout.isatty():
        code = _run_tui(config)
        if code is not None:
            sys.exit(code)
    from .plain import run_plain

    try:
        code = asyncio.run(run_plain(config))
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 0
    sys.exit(code)
