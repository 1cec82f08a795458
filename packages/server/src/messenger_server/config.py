"""Server settings: defaults < TOML file < ``MESSENGER_*`` env vars < command-line flags.

Every field of :class:`Settings` can be given in all four places under the same
name (``--max-file-bytes``, ``MESSENGER_MAX_FILE_BYTES``, ``max_file_bytes = ...``).
Each bad value is refused with one line naming the setting, what it must be and
what it got: ``port must be an integer 1-65535, got '70000'``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from messenger_protocol import limits

__all__ = ["ENV_PREFIX", "ConfigError", "Settings", "describe", "load_settings"]

ENV_PREFIX = "MESSENGER_"
"""Env vars ``MESSENGER_<FIELD>`` set a field; ``MESSENGER_CONFIG`` names the TOML file."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL")


class ConfigError(ValueError):
    """A bad setting; the message is one line meant for the person who wrote it."""


Parser = Callable[[str, object], Any]


def _bad(name: str, what: str, raw: object) -> ConfigError:
    return ConfigError(f"{name} must be {what}, got {str(raw)!r}")


def _int(low: int, high: int | None = None) -> Parser:
    what = f"an integer {low}-{high}" if high is not None else f"an integer >= {low}"

    def parse(name: str, raw: object) -> int:
        if isinstance(raw, bool):
            raise _bad(name, what, raw)
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, str) and raw.strip().lstrip("+-").isdigit():
            value = int(raw.strip())
        else:
            raise _bad(name, what, raw)
        if value < low or (high is not None and value > high):
            raise _bad(name, what, raw)
        return value

    parse.__doc__ = what
    return parse


def _float(low: float, *, exclusive: bool = True) -> Parser:
    what = f"a number > {low:g}" if exclusive else f"a number >= {low:g}"

    def parse(name: str, raw: object) -> float:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise _bad(name, what, raw)
        try:
            value = float(raw)
        except ValueError:
            raise _bad(name, what, raw) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise _bad(name, what, raw)
        if value < low or (exclusive and value == low):
            raise _bad(name, what, raw)
        return value

    parse.__doc__ = what
    return parse


def _text(*, empty: bool = True) -> Parser:
    what = "a string" if empty else "a non-empty string"

    def parse(name: str, raw: object) -> str:
        if not isinstance(raw, str) or (not empty and not raw.strip()):
            raise _bad(name, what, raw)
        return raw.strip()

    parse.__doc__ = what
    return parse


def _path(name: str, raw: object) -> Path:
    if not isinstance(raw, str | Path) or not str(raw).strip():
        raise _bad(name, "a directory path", raw)
    return Path(str(raw).strip()).expanduser()


_path.__doc__ = "a directory path"


def _store(name: str, raw: object) -> str:
    """empty (SQLite in data_dir) or a postgresql:// URL"""
    if not isinstance(raw, str):
        raise _bad(name, _store.__doc__ or "", raw)
    value = raw.strip()
    if value in ("", "sqlite") or value.startswith(("postgresql://", "postgres://")):
        return "" if value == "sqlite" else value
    raise ConfigError(
        f"{name} must be empty (SQLite in data_dir) or a postgresql:// URL,"
        f" got {_redacted(value)!r}"
    )


def _blob_store(name: str, raw: object) -> str:
    """empty (data_dir/files), a directory path, or s3://bucket/prefix"""
    if isinstance(raw, str):
        value = raw.strip()
        if not value.startswith("s3://") or len(value.removeprefix("s3://").split("/")[0]) >= 3:
            return value
    raise _bad(name, _blob_store.__doc__ or "", raw)


def _bus(name: str, raw: object) -> str:
    """local, postgres, or a redis://, rediss://, nats:// or tls:// URL"""
    if isinstance(raw, str):
        value = raw.strip()
        if value in ("", "local"):
            return "local"
        if value in ("postgres", "postgresql"):
            return "postgres"
        if value.startswith(("redis://", "rediss://", "nats://", "tls://")) and len(value) > 8:
            return value
    raise ConfigError(
        f"{name} must be local, postgres, redis://host:port or nats://host:port,"
        f" got {_redacted(str(raw))!r}"
    )


def _redacted(url: str) -> str:
    """A store URL without its password."""
    scheme, sep, rest = url.partition("://")
    auth, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in auth:
        return url
    return f"{scheme}://{auth.split(':', 1)[0]}:***@{host}"


def _optional_int(low: int) -> Parser:
    what = f"an integer >= {low}, or unlimited"
    whole = _int(low)

    def parse(name: str, raw: object) -> int | None:
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "unlimited")):
            return None
        try:
            value: int = whole(name, raw)
        except ConfigError:
            raise _bad(name, what, raw) from None
        return value

    parse.__doc__ = what
    return parse


def _choice(options: tuple[str, ...]) -> Parser:
    what = "one of " + ", ".join(options)

    def parse(name: str, raw: object) -> str:
        if not isinstance(raw, str) or raw.strip().upper() not in options:
            raise _bad(name, what, raw)
        return raw.strip().upper()

    parse.__doc__ = what
    return parse


def _list(name: str, raw: object) -> tuple[str, ...]:
    """Comma-separated in flags and env vars, a list of strings in TOML."""
    if isinstance(raw, str):
        items = raw.split(",")
    elif isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
        items = list(raw)
    else:
        raise _bad(name, "a comma-separated list", raw)
    return tuple(item.strip() for item in items if item.strip())


_list.__doc__ = "a comma-separated list"


def _networks(name: str, raw: object) -> tuple[str, ...]:
    """a comma-separated list of addresses or CIDR blocks"""
    items = _list(name, raw)
    out = []
    for item in items:
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(
                f"{name} must be a comma-separated list of addresses or CIDR blocks"
                f" (10.0.0.0/8,::1), got {item!r}"
            ) from None
    return tuple(out)


def _flag(name: str, raw: object) -> bool:
    """on or off"""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        value = raw.strip().lower()
        if value in ("on", "true", "yes", "1"):
            return True
        if value in ("off", "false", "no", "0"):
            return False
    raise _bad(name, "on or off", raw)


def _setting(default: Any, parse: Parser, help: str) -> Any:
    return field(default=default, metadata={"parse": parse, "help": help})


@dataclass(frozen=True, slots=True)
class Settings:
    """Effective server settings (SPEC §5 defaults from :mod:`messenger_protocol.limits`)."""

    host: str = _setting(limits.DEFAULT_HOST, _text(empty=False), "address to bind")
    port: int = _setting(limits.DEFAULT_PORT, _int(1, 65535), "TCP port to bind")
    data_dir: Path = _setting(Path("messenger-data"), _path, "database, files, logs")  # noqa: RUF009
    log_level: str = _setting("INFO", _choice(LOG_LEVELS), "least severe level logged")
    log_max_bytes: int = _setting(
        10 * 1024 * 1024, _int(4096), "log file size that starts a new file (14 are kept)"
    )
    history_on_connect: int = _setting(
        limits.HISTORY_ON_CONNECT, _int(0), "general-chat messages sent on connect"
    )
    message_ttl: int = _setting(
        limits.MESSAGE_TTL_SECONDS, _int(0), "seconds a delivered message lives (0 = keep)"
    )
    message_max_age: int = _setting(
        limits.MESSAGE_MAX_AGE_SECONDS, _int(1), "seconds an undelivered message is kept"
    )
    rate_limit_messages: int = _setting(
        limits.RATE_LIMIT_MESSAGES, _int(1), "general-chat messages per user per window"
    )
    rate_limit_window: int = _setting(
        limits.RATE_LIMIT_WINDOW_SECONDS, _int(1), "rate-limit window in seconds"
    )
    complaints_to_ban: int = _setting(
        limits.COMPLAINTS_TO_BAN, _int(1), "complaints from distinct users that ban"
    )
    ban_seconds: int = _setting(limits.BAN_SECONDS, _int(1), "length of an automatic ban")
    max_file_bytes: int = _setting(limits.MAX_FILE_BYTES, _int(1), "largest file upload")
    user_quota_bytes: int = _setting(
        limits.USER_QUOTA_BYTES, _int(0), "file bytes one user may store"
    )
    allowed_mime: tuple[str, ...] = _setting((), _list, "allowed upload MIME types (empty = all)")
    max_message_text: int = _setting(
        limits.MAX_MESSAGE_TEXT, _int(1), "longest message text in characters"
    )
    edit_window: int | None = _setting(
        None, _optional_int(0), "seconds after sending a message may be edited "
        "(unlimited by default; 0 turns editing off)"
    )  # fmt: skip
    max_request_head: int = _setting(
        limits.MAX_REQUEST_HEAD, _int(1024, 1024 * 1024), "largest request line + headers"
    )
    max_json_body: int = _setting(limits.MAX_JSON_BODY, _int(1024), "largest JSON body")
    idle_unauthenticated: float = _setting(
        limits.IDLE_UNAUTHENTICATED_SECONDS, _float(0), "seconds before an idle anonymous "
        "connection is closed"
    )  # fmt: skip
    keepalive_idle: float = _setting(
        limits.KEEPALIVE_IDLE_SECONDS, _float(0), "seconds before an idle keep-alive closes"
    )
    admins: tuple[str, ...] = _setting((), _list, "logins that are admins")
    schedule_max_ahead: int = _setting(
        limits.SCHEDULE_MAX_AHEAD_SECONDS, _int(1), "how far ahead a message may be scheduled"
    )
    scheduled_max_pending: int = _setting(
        limits.SCHEDULED_MAX_PENDING, _int(0), "pending scheduled messages per user"
    )
    login_failures_max: int = _setting(
        limits.LOGIN_FAILURES_MAX, _int(1), "failed logins of one login from one address "
        "per window before that pair is throttled"
    )  # fmt: skip
    login_failures_per_address: int = _setting(
        limits.LOGIN_FAILURES_PER_ADDRESS, _int(1), "failed logins from one address (any "
        "login) per window before the address is throttled"
    )  # fmt: skip
    login_failures_window: int = _setting(
        limits.LOGIN_FAILURES_WINDOW_SECONDS, _int(1), "login-failure window in seconds"
    )
    login_hash_concurrency: int = _setting(
        limits.LOGIN_HASH_CONCURRENCY, _int(1, 64), "password hashes computed at once"
    )
    argon2_time_cost: int = _setting(
        3, _int(1, 10), "argon2id passes per password hash (3 with 64 MiB is OWASP's "
        "choice; less only where passwords don't matter, such as tests)"
    )  # fmt: skip
    argon2_memory_kib: int = _setting(
        65536, _int(1024, 4_194_304), "argon2id memory per password hash, in KiB"
    )
    session_idle_timeout: int = _setting(
        limits.SESSION_IDLE_SECONDS, _int(60), "seconds unused before a session expires"
    )
    session_max_age: int = _setting(
        limits.SESSION_MAX_AGE_SECONDS, _int(60), "seconds after login a session expires"
    )
    max_connections_per_ip: int = _setting(
        limits.MAX_CONNECTIONS_PER_IP, _int(1), "simultaneous connections per address"
    )
    max_connections: int = _setting(
        limits.MAX_CONNECTIONS, _int(2), "simultaneous connections in all (503 beyond; "
        "lowered to fit the open-file limit)"
    )  # fmt: skip
    reserved_connections: int = _setting(
        limits.RESERVED_CONNECTIONS, _int(1), "of max_connections, kept for /healthz and "
        "requests with a valid token"
    )  # fmt: skip
    body_timeout: float = _setting(
        limits.BODY_TIMEOUT_SECONDS, _float(0), "seconds any request body gets in total, plus "
        "its size at body_min_rate"
    )  # fmt: skip
    body_min_rate: int = _setting(
        limits.BODY_MIN_RATE, _int(1), "slowest upload (bytes/s) the body deadline allows for"
    )
    event_queue_max_bytes: int = _setting(
        limits.EVENT_QUEUE_MAX_BYTES, _int(1024), "unsent event bytes before a stream is cut"
    )
    event_retention: int = _setting(
        limits.EVENT_RETENTION, _int(1), "events kept for resuming streams"
    )
    public_url: str = _setting("", _text(), "URL clients use (empty = http://host:port)")
    store: str = _setting(
        "", _store, "database: empty = SQLite in data_dir, or postgresql://user@host:port/db"
    )
    bus: str = _setting(
        "local", _bus, "how nodes pass events: local (one node), redis://host:port, "
        "nats://host:port or postgres (LISTEN/NOTIFY; several nodes on one PostgreSQL store)"
    )  # fmt: skip
    bus_channel: str = _setting(
        "messenger", _text(empty=False), "Redis channel / NATS subject prefix the nodes "
        "of one cluster share"
    )  # fmt: skip
    node_id: str = _setting("", _text(), "this node's name in logs and on the bus "
                            "(empty = hostname:port)")  # fmt: skip
    trusted_proxies: tuple[str, ...] = _setting(
        (), _networks, "load balancers whose X-Forwarded-For (and PROXY header) name the "
        "client's address"
    )  # fmt: skip
    proxy_protocol: bool = _setting(
        False, _flag, "connections from trusted_proxies start with a PROXY protocol v2 header"
    )
    shutdown_grace: float = _setting(
        5.0, _float(0), "seconds running requests get to finish after SIGTERM (the node "
        "stops accepting and closes its event streams at once)"
    )  # fmt: skip
    node_lease: float = _setting(
        15.0, _float(0), "seconds a node's live streams count after its last heartbeat "
        "(several nodes: a node that dies stops renewing; its users go offline after this)"
    )  # fmt: skip
    blob_store: str = _setting(
        "", _blob_store, "where uploaded files' bytes are: empty = data_dir/files, a "
        "directory (every node of a cluster mounts the same), or s3://bucket/prefix"
    )  # fmt: skip
    s3_endpoint: str = _setting(
        "", _text(), "URL of an S3-compatible store (empty = AWS); credentials and region "
        "come from the AWS_* env vars or ~/.aws, as for every AWS tool"
    )  # fmt: skip
    sqlite_synchronous: str = _setting(
        "NORMAL",
        _choice(SQLITE_SYNCHRONOUS),
        "SQLite durability: NORMAL survives kill -9, FULL also power loss (slower)",
    )

    @property
    def node_name(self) -> str:
        """``node_id``, or ``hostname:port`` when it is not set."""
        if self.node_id:
            return self.node_id
        import socket

        return f"{socket.gethostname()}:{self.port}"

    @property
    def base_url(self) -> str:
        """``public_url``, or ``http://host:port`` when it is not set."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def as_public_dict(self) -> dict[str, str | int | float | bool | None]:
        """Every setting as a plain value, for the admin "effective settings" view."""
        out: dict[str, str | int | float | bool | None] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, Path):
                value = str(value)
            elif f.name in ("store", "bus"):
                value = _redacted(value)  # never show a password
            out[f.name] = value
        return out

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (values already typed)."""
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in fields(Settings)}


def describe() -> list[tuple[str, str, str, object]]:
    """``(name, what it must be, help, default)`` of every setting, for ``--help``."""
    return [
        (f.name, f.metadata["parse"].__doc__ or "", f.metadata["help"], f.default)
        for f in fields(Settings)
    ]


def _parse(name: str, raw: object) -> Any:
    parse: Parser = _FIELDS[name].metadata["parse"]
    return parse(name, raw)


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    values: dict[str, object] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {key!r} in config file {str(path)!r}")
        values[name] = value
    return values


def load_settings(
    argv_values: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | str | None = None,
) -> Settings:
    """Build the settings: flags > ``MESSENGER_*`` env > TOML (``config_file`` or
    ``MESSENGER_CONFIG``) > defaults. Raises :class:`ConfigError` on the first bad value.

    ``argv_values`` maps field names to raw values; None values are ignored (not given).
    """
    environ = environ or {}
    if config_file is None:
        config_file = environ.get(ENV_PREFIX + "CONFIG") or None
    layers: list[dict[str, object]] = []
    if config_file is not None:
        layers.append(_read_toml(Path(config_file)))
    layers.append(
        {
            name: environ[ENV_PREFIX + name.upper()]
            for name in _FIELDS
            if ENV_PREFIX + name.upper() in environ
        }
    )
    given = {k: v for k, v in (argv_values or {}).items() if v is not None}
    for name in given:
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {name!r}")
    layers.append(given)
    merged: dict[str, object] = {}
    for layer in layers:
        merged.update(layer)
    settings = Settings(**{name: _parse(name, raw) for name, raw in merged.items()})
    if settings.bus != "local" and not settings.store:
        raise ConfigError(
            f"bus {_redacted(settings.bus)!r} needs a shared database: set store to a"
            " postgresql:// URL (SQLite serves one node only)"
        )
    if settings.proxy_protocol and not settings.trusted_proxies:
        raise ConfigError(
            "proxy_protocol needs trusted_proxies: the addresses of the load balancers that"
            " send the PROXY header (anyone else could claim any address)"
        )
    if settings.reserved_connections >= settings.max_connections:
        raise ConfigError(
            f"reserved_connections must be less than max_connections "
            f"({settings.max_connections}), got {settings.reserved_connections!r}"
        )
    return settings
