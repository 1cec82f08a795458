"""``messenger-server``: run the server, or administer its data.

Every setting is a flag (``--max-file-bytes N``); bad values print one line on
stderr and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .config import ConfigError, Settings, describe, load_settings

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)

PROG = "messenger-server"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: error: {message} (see {PROG} --help)\n")
        raise SystemExit(2)


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (also MESSENGER_<NAME> env vars or TOML keys)")
    group.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="TOML file of settings (env MESSENGER_CONFIG)",
    )
    for name, what, help_text, default in describe():
        shown = ",".join(default) if isinstance(default, tuple) else default
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            metavar=_metavar(name, what),
            default=argparse.SUPPRESS,
            help=f"{help_text}; {what} (default: {shown!s})".replace("%", "%%"),
        )


def _metavar(name: str, what: str) -> str:
    if what.startswith("an integer"):
        return "N"
    if what.startswith("a number"):
        return "SECONDS"
    if what.startswith("one of "):
        return "{" + what.removeprefix("one of ").replace(", ", ",") + "}"
    if what == "on or off":
        return "{on,off}"
    if what.startswith("a comma"):
        return "A,B"
    return {"data_dir": "DIR", "public_url": "URL"}.get(name, "TEXT")


def build_parser() -> argparse.ArgumentParser:
    """The full command line: settings flags on the server and on every subcommand."""
    common = _Parser(add_help=False)
    _add_setting_flags(common)
    parser = _Parser(
        prog=PROG,
        parents=[common],
        description="messenger server: HTTP/1.1 + SSE on 127.0.0.1:8000 by default.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    admin = sub.add_parser("admin", parents=[common], help="grant or revoke admin rights")
    admin_sub = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    for action, what in (("add", "make LOGIN an admin"), ("remove", "revoke LOGIN's admin")):
        cmd = admin_sub.add_parser(action, parents=[common], help=what)
        cmd.add_argument("login")
    sub.add_parser("users", parents=[common], help="list users")
    ban = sub.add_parser("ban", parents=[common], help="ban LOGIN from sending")
    ban.add_argument("login")
    ban.add_argument("--seconds", type=int, default=None, help="ban length (default: setting)")
    unban = sub.add_parser("unban", parents=[common], help="lift LOGIN's ban")
    unban.add_argument("login")
    sub.add_parser("stats", parents=[common], help="server statistics")
    audit = sub.add_parser("audit", parents=[common], help="moderation audit log, newest last")
    audit.add_argument("--limit", type=int, default=50, help="lines shown (default: 50)")
    return parser


def _settings_from(args: argparse.Namespace) -> Settings:
    values = {name: getattr(args, name) for name, *_ in describe() if hasattr(args, name)}
    return load_settings(values, os.environ, getattr(args, "config", None))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``messenger-server`` and ``python -m messenger_server``."""
    args = build_parser().parse_args(argv)
    try:
        settings = _settings_from(args)
    except ConfigError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 2
    if args.command is None:
        return _serve(settings)
    return _admin(settings, args)


def _serve(settings: Settings) -> int:
    from .clock import clock_from_env
    from .logs import setup_logging
    from .main import run

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        setup_logging(settings)
    except OSError as exc:
        sys.stderr.write(f"{PROG}: error: cannot use data dir {str(settings.data_dir)!r}: {exc}\n")
        return 2
    try:
        run(settings, clock_from_env())
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        log.error("cannot serve on %s:%d: %s", settings.host, settings.port, exc)
        sys.stderr.write(f"{PROG}: error: cannot listen on {settings.host}:{settings.port}: ")
        sys.stderr.write(f"{exc.strerror or exc}\n")
        return 1
    return 0


def _admin(settings: Settings, args: argparse.Namespace) -> int:
    from .admin_cli import run

    return run(settings, args)
