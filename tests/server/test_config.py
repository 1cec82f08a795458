"""Settings: defaults, precedence flags > env > TOML > defaults, one clear line per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from messenger_protocol import limits
from messenger_server.config import ConfigError, Settings, load_settings


def test_defaults_come_from_the_protocol_limits() -> None:
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.data_dir == Path("messenger-data")
    assert settings.max_file_bytes == limits.MAX_FILE_BYTES == 5_242_880
    assert settings.rate_limit_messages == 20 and settings.rate_limit_window == 3600
    assert settings.idle_unauthenticated == 10.0
    assert settings.base_url == "http://127.0.0.1:8000"


def test_precedence_flags_over_env_over_toml(tmp_path: Path) -> None:
    toml = tmp_path / "server.toml"
    toml.write_text('port = 7001\nban-seconds = 60\nadmins = ["root", "ops"]\nhost = "0.0.0.0"\n')
    env = {"MESSENGER_PORT": "7002", "MESSENGER_BAN_SECONDS": "90"}
    settings = load_settings({"port": "7003"}, env, toml)
    assert settings.port == 7003  # flag
    assert settings.ban_seconds == 90  # env over TOML
    assert settings.admins == ("root", "ops")  # TOML over default
    assert settings.host == "0.0.0.0"
    assert load_settings({}, env, toml).port == 7002
    assert load_settings({}, {}, toml).port == 7001


def test_config_file_from_env(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("message_ttl = 0\n")
    assert load_settings({}, {"MESSENGER_CONFIG": str(toml)}).message_ttl == 0


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("port", "70000", "port must be an integer 1-65535, got '70000'"),
        ("port", "abc", "port must be an integer 1-65535, got 'abc'"),
        ("port", "0", "port must be an integer 1-65535, got '0'"),
        ("max_file_bytes", "-1", "max_file_bytes must be an integer >= 1, got '-1'"),
        ("idle_unauthenticated", "soon", "idle_unauthenticated must be a number > 0"),
        ("idle_unauthenticated", "nan", "idle_unauthenticated must be a number > 0"),
        ("log_level", "loud", "log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("sqlite_synchronous", "OFF", "sqlite_synchronous must be one of NORMAL, FULL"),
        ("argon2_time_cost", "0", "argon2_time_cost must be an integer 1-10, got '0'"),
        ("argon2_time_cost", "11", "argon2_time_cost must be an integer 1-10, got '11'"),
        ("argon2_memory_kib", "1023", "argon2_memory_kib must be an integer 1024-4194304"),
        ("edit_window", "-1", "edit_window must be an integer >= 0, or unlimited, got '-1'"),
        ("edit_window", "soon", "edit_window must be an integer >= 0, or unlimited"),
    ],
)
def test_bad_values_refused_with_one_clear_line(name: str, raw: str, message: str) -> None:
    for flags, env in (({name: raw}, {}), ({}, {f"MESSENGER_{name.upper()}": raw})):
        with pytest.raises(ConfigError) as caught:
            load_settings(flags, env)
        assert str(caught.value).startswith(message)
        assert "\n" not in str(caught.value)


def test_toml_types_checked(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("port = true\n")
    with pytest.raises(ConfigError, match="port must be an integer 1-65535, got 'True'"):
        load_settings({}, {}, toml)


def test_unknown_toml_key_refused(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("port = 8001\nmax_fiel_bytes = 10\n")
    with pytest.raises(ConfigError, match="unknown setting 'max_fiel_bytes'"):
        load_settings({}, {}, toml)


def test_broken_or_missing_toml_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, {}, broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, {}, tmp_path / "nope.toml")


def test_values_are_normalised() -> None:
    settings = load_settings(
        {"log_level": "debug", "allowed_mime": "image/png, text/plain,", "keepalive_idle": "1.5"}
    )
    assert settings.log_level == "DEBUG"
    assert settings.allowed_mime == ("image/png", "text/plain")
    assert settings.keepalive_idle == 1.5


def test_public_dict_holds_plain_values() -> None:
    settings = load_settings({"admins": "a,b", "public_url": "https://chat.example/"})
    public = settings.as_public_dict()
    assert public["admins"] == "a,b"
    assert public["data_dir"] == "messenger-data"
    assert public["port"] == 8000
    assert set(public) == {name for name in Settings.__dataclass_fields__}
    assert settings.base_url == "https://chat.example"


def test_edit_window_is_unlimited_by_default_and_zero_turns_editing_off() -> None:
    """Issue 12 item 1: the edit window setting."""
    assert load_settings({}, {}).edit_window is None
    assert load_settings({"edit_window": "unlimited"}, {}).edit_window is None
    assert load_settings({}, {"MESSENGER_EDIT_WINDOW": "0"}).edit_window == 0
    assert load_settings({"edit_window": "900"}, {}).edit_window == 900


def test_bus_settings_from_flags_env_and_toml(tmp_path: Path) -> None:
    """Issue 13: --bus and --node-id, like every setting."""
    pg = "postgresql://postgres@127.0.0.1/db"
    assert load_settings().bus == "local"
    assert load_settings({"port": "8123"}).node_name.endswith(":8123")  # default host:port
    toml = tmp_path / "c.toml"
    toml.write_text(f'store = "{pg}"\nbus = "nats://127.0.0.1:4222"\nnode-id = "n1"\n')
    settings = load_settings({}, {}, toml)
    assert (settings.bus, settings.node_name) == ("nats://127.0.0.1:4222", "n1")
    env = {"MESSENGER_STORE": pg, "MESSENGER_BUS": "redis://:secret@127.0.0.1:6379",
           "MESSENGER_NODE_ID": "n2"}  # fmt: skip
    settings = load_settings({}, env, toml)
    assert (settings.bus, settings.node_id) == ("redis://:secret@127.0.0.1:6379", "n2")
    assert "secret" not in str(settings.as_public_dict()["bus"])


def test_a_bus_needs_the_postgresql_store() -> None:
    """Issue 13: a bus other than local with SQLite is one line, before anything starts."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"bus": "redis://127.0.0.1:6379"})
    assert str(caught.value).startswith("bus 'redis://127.0.0.1:6379' needs a shared database")
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_settings({"bus": "kafka://x"})
    assert str(caught.value) == (
        "bus must be local, postgres, redis://host:port or nats://host:port, got 'kafka://x'"
    )


def test_the_postgres_bus_is_the_store_itself() -> None:
    """Issue 13: ``--bus postgres`` notifies on the store's database, so it needs one."""
    pg = "postgresql://postgres@127.0.0.1/db"
    assert load_settings({"bus": "postgres", "store": pg}).bus == "postgres"
    with pytest.raises(ConfigError) as caught:
        load_settings({"bus": "postgres"})
    assert str(caught.value).startswith("bus 'postgres' needs a shared database")


def test_trusted_proxies_and_the_proxy_protocol() -> None:
    """Issue 13: CIDR blocks (an address is its own /32 or /128); the PROXY protocol only
    with trusted proxies to take it from."""
    settings = load_settings({"trusted_proxies": "10.0.0.0/8, 127.0.0.1,::1"})
    assert settings.trusted_proxies == ("10.0.0.0/8", "127.0.0.1/32", "::1/128")
    assert settings.proxy_protocol is False
    assert load_settings({"trusted_proxies": "10.1.2.3/8", "proxy_protocol": "on"}).proxy_protocol
    with pytest.raises(ConfigError) as caught:
        load_settings({"trusted_proxies": "10.0.0.0/33"})
    assert "trusted_proxies must be a comma-separated list of addresses or CIDR" in str(
        caught.value
    )
    with pytest.raises(ConfigError) as caught:
        load_settings({"proxy_protocol": "on"})
    assert str(caught.value).startswith("proxy_protocol needs trusted_proxies")
    with pytest.raises(ConfigError) as caught:
        load_settings({"proxy_protocol": "maybe"})
    assert str(caught.value) == "proxy_protocol must be on or off, got 'maybe'"
