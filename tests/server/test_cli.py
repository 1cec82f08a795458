"""The command line and the serve loop: refusals without tracebacks, clean start and stop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from messenger_server import main
from messenger_server.clock import Clock
from messenger_server.config import Settings, load_settings
from messenger_server.http import HttpServer, Request, Response
from messenger_server.hub import Hub
from messenger_server.logs import log_file, setup_logging
from messenger_server.main import serve
from tests.support.server import free_port


def run_cli(
    *args: str, script: bool = False, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    console = Path(sys.executable).parent / "messenger-server"
    cmd = [str(console)] if script else [sys.executable, "-m", "messenger_server"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESSENGER_")}
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=30, env=env, cwd=cwd
    )


@pytest.mark.parametrize("script", [True, False])
@pytest.mark.parametrize("port", ["70000", "abc"])
def test_bad_port_refused_with_exit_2(port: str, script: bool, tmp_path: Path) -> None:
    done = run_cli("--port", port, script=script, cwd=tmp_path)
    assert done.returncode == 2
    assert (
        done.stderr == f"messenger-server: error: port must be an integer 1-65535, got '{port}'\n"
    )
    assert not (tmp_path / "messenger-data").exists()  # refused before touching anything


def test_unknown_toml_key_refused_by_the_cli(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text("colour = 'blue'\n")
    done = run_cli("--config", str(config), cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown setting 'colour'" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_unknown_flag_is_one_line(tmp_path: Path) -> None:
    done = run_cli("--no-such-flag", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_help_lists_every_setting() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for flag in ("--port", "--data-dir", "--max-file-bytes", "--idle-unauthenticated"):
        assert flag in done.stdout


class TinyApp:
    """Stands in for the real App in serve() tests: answers every request with its path."""

    def __init__(self, settings: Settings, clock: Clock, hub: Hub) -> None:
        self.http_server: HttpServer | None = None
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    def drain(self) -> None:
        self.events.append("drain")

    async def close(self) -> None:
        self.events.append("close")

    async def handle(self, request: Request) -> Response:
        return Response(body=b'{"path": "%s"}' % request.path.encode())


async def test_serve_starts_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    settings = load_settings({"port": str(free_port()), "data_dir": str(tmp_path)})
    apps: list[TinyApp] = []
    answers: list[bytes] = []

    def factory(settings: Settings, clock: Clock, hub: Hub) -> TinyApp:
        apps.append(TinyApp(settings, clock, hub))
        return apps[-1]

    async def started(server: HttpServer) -> None:
        assert apps[0].http_server is server
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers.append(await reader.read())
        writer.close()
        os.kill(os.getpid(), signal.SIGTERM)  # our own handler is installed: a clean stop

    async with asyncio.timeout(10):
        await serve(settings, app_factory=factory, started=started)
    assert answers[0].startswith(b"HTTP/1.1 200 OK") and b'"/healthz"' in answers[0]
    assert apps[0].events == ["start", "drain", "close"]


def test_logging_writes_the_spec_format_to_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path), "log_level": "INFO"})
    root = logging.getLogger()
    level = root.level
    setup_logging(settings, stderr=False)
    try:
        logging.getLogger("messenger_server.example").info("hello %s", "log")
        for handler in root.handlers:
            handler.flush()
        line = log_file(settings).read_text().splitlines()[-1]
        date, clock, level_name, module, *message = line.split(" ")
        assert (level_name, module, " ".join(message)) == (
            "INFO",
            "messenger_server.example",
            "hello log",
        )
        assert len(date) == 10 and clock.count(":") == 2
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_messenger", False)]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)


def test_the_server_runs_with_a_short_gil_switch_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker thread running Python (an upload's type sniffing) holds the event loop
    one switch interval at most: Python's default 5 ms was over the loop's lag budget."""
    seen: list[float] = []

    async def fake_serve(settings: Settings, clock: Clock | None = None) -> None:
        seen.append(sys.getswitchinterval())

    monkeypatch.setattr(main, "serve", fake_serve)
    default = sys.getswitchinterval()
    try:
        main.run(load_settings({"data_dir": str(tmp_path)}))
    finally:
        sys.setswitchinterval(default)
    assert seen == [main.GIL_SWITCH_INTERVAL] and main.GIL_SWITCH_INTERVAL <= 0.001
