"""Command-line settings, saved tokens and the client's log file."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from messenger_client.cli import config_from_args
from messenger_client.config import ClientConfig, TokenStore, default_dirs
from messenger_client.logs import setup_logging


def test_defaults_point_at_the_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESSENGER_SERVER", raising=False)
    config = config_from_args([])
    assert config.server == "http://127.0.0.1:8000"
    assert not config.plain and not config.json
    assert config.history is None  # the server says how many (issue 9 item 4)
    assert config_from_args(["--history", "5"]).history == 5


def test_server_host_and_port_flags() -> None:
    assert config_from_args(["--server", "http://chat.example:9000/"]).server == (
        "http://chat.example:9000"
    )
    assert config_from_args(["--server", "chat.example:9000"]).server == "http://chat.example:9000"
    assert config_from_args(["--port", "9001"]).server == "http://127.0.0.1:9001"
    assert config_from_args(["--host", "10.0.0.5"]).server == "http://10.0.0.5:8000"
    both = config_from_args(["--server", "http://h:1", "--port", "2"])
    assert both.server == "http://h:2"


def test_json_implies_plain_and_login_flags() -> None:
    config = config_from_args(["--json", "--login", "alice", "--password", "secret1"])
    assert config.plain and config.json
    assert (config.login, config.password) == ("alice", "secret1")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "port must be a number from 1 to 65535"),
        (["--port", "abc"], "port must be a number from 1 to 65535"),
        (["--server", "ftp://x"], "not a server URL"),
        (["--login", "alice"], "--login and --password go together"),
        (["--log-level", "LOUD"], "unknown log level"),
    ],
)
def test_bad_flags_are_refused_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        config_from_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_client_home_holds_every_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MESSENGER_CLIENT_HOME", str(tmp_path))
    dirs = default_dirs()
    assert (dirs.data, dirs.state, dirs.config, dirs.downloads) == (
        tmp_path / "data",
        tmp_path / "state",
        tmp_path / "config",
        tmp_path / "downloads",
    )
    config = ClientConfig()
    assert config.log_path == tmp_path / "state" / "client.log"
    assert config.keymap_path == tmp_path / "config" / "keymap.toml"


def test_tokens_are_saved_per_server_for_the_user_only(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "state" / "tokens.json")
    assert store.load("http://a:1") is None
    store.save("http://a:1/", "alice", "tok-a")
    store.save("http://b:2", "bob", "tok-b")
    assert store.load("http://a:1") == ("alice", "tok-a")
    assert store.load("http://b:2") == ("bob", "tok-b")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    store.forget("http://a:1")
    assert store.load("http://a:1") is None
    assert store.load("http://b:2") == ("bob", "tok-b")
    store.path.write_text("not json")
    assert store.load("http://b:2") is None  # a damaged file is an empty one


def test_logs_go_to_the_file_not_the_screen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        path = setup_logging(tmp_path / "logs" / "client.log", "INFO")
        logging.getLogger("messenger_client.test").warning("something odd")
        for handler in root.handlers:
            handler.flush()
        line = path.read_text().strip()
        assert line.endswith("WARNING messenger_client.test something odd")
        assert line[:4].isdigit()  # <date-time> <level> <module> <message>
        captured = capsys.readouterr()
        assert "something odd" not in captured.out + captured.err
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved_handlers  # pytest's own capture handlers
        root.setLevel(saved_level)


async def test_the_plain_console_tells_a_person_at_a_terminal_how_to_begin(
    tmp_path: Path,
) -> None:
    """Typed at a terminal, ``--plain`` opens with one line saying how to register, log in
    and get help (a blank screen told a new user nothing); a script's piped input gets none."""
    import io
    import os

    from messenger_client.config import Dirs
    from messenger_client.plain import run_plain

    dirs = Dirs(tmp_path / "data", tmp_path / "state", tmp_path / "config", tmp_path / "dl")
    config = ClientConfig(server="http://127.0.0.1:9", dirs=dirs, plain=True)
    primary, secondary = os.openpty()
    terminal = os.fdopen(secondary, "r")
    shown = io.StringIO()
    try:
        os.write(primary, b"/exit\n")
        assert await run_plain(config, stdin=terminal, out=shown) == 0
    finally:
        # the terminal's end first: the console's reader thread, still reading, gets an
        # error and lets go of the file (closing it under the thread would wait forever)
        os.close(primary)
        terminal.close()
    piped = io.StringIO()
    assert await run_plain(config, stdin=io.StringIO("/exit\n"), out=piped) == 0
    first = shown.getvalue().splitlines()[0]
    assert "/auth <login> <password>" in first and "/login" in first and "/help" in first
    assert "http://127.0.0.1:9" in first
    assert "/auth" not in piped.getvalue()
