"""Start the real ``messenger-server`` as a process on a free port for end-to-end tests."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import httpx

from messenger_client.api import tls_context

START_TIMEOUT = 60.0
"""A deadline, not a wait: start() returns as soon as /healthz answers (a loaded machine
may take many seconds to import and migrate)."""


CHEAP_HASHES = {"MESSENGER_ARGON2_TIME_COST": "1", "MESSENGER_ARGON2_MEMORY_KIB": "1024"}
"""Servers of the tests hash passwords with the cheapest argon2id (still argon2id): at the
default cost, hashing was a third of the suite's CPU time. A test that needs the real cost
passes these names in ``env``."""


EXEC_ENV = "MESSENGER_TEST_EXEC"
"""Set (to anything) to start every server with ``python -m messenger_server`` instead of
forking it from the :mod:`tests.support.launcher` of this worker."""


class _Launcher:
    """This worker's fork server (:mod:`tests.support.launcher`), started at first use."""

    _lock = threading.Lock()
    _running: _Launcher | None = None

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("launcher.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        atexit.register(self.close)

    @classmethod
    def get(cls) -> _Launcher:
        with cls._lock:
            if cls._running is None or cls._running.proc.poll() is not None:
                cls._running = cls()
            return cls._running

    def ask(self, request: dict[str, object]) -> dict[str, int | None]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the server launcher exited with {self.proc.wait()}")
        answer: dict[str, int | None] = json.loads(line)
        return answer

    def close(self) -> None:
        """End the launcher: it kills the servers it started that still run."""
        stdin: IO[bytes] | None = self.proc.stdin
        if stdin is not None and not stdin.closed:
            stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


class LaunchedProcess:
    """A server forked by the launcher, with the part of :class:`subprocess.Popen` the
    tests use (it is the launcher's child, so the launcher tells its exit code)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self._launcher = _Launcher.get()
        spawn: dict[str, object] = {"spawn": argv, "env": env, "cwd": os.getcwd(), "log": str(log)}
        pid = self._launcher.ask(spawn)["pid"]
        assert pid is not None
        self.pid: int = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._launcher.ask({"poll": self.pid})["code"]
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            exited = os.pidfd_open(self.pid)
        except ProcessLookupError:  # reaped already: poll() has its code
            exited = None
        try:
            while (code := self.poll()) is None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if left == 0.0:
                    raise subprocess.TimeoutExpired(["messenger-server"], timeout or 0.0)
                if exited is not None:  # readable once the process has ended
                    # poll, not select: the fd may be past 1024 (a bench holding streams)
                    waiter = select.poll()
                    waiter.register(exited, select.POLLIN)
                    waiter.poll(None if left is None else left * 1000)
                else:
                    time.sleep(0.01)
            return code
        finally:
            if exited is not None:
                os.close(exited)

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """One real server process with its own data dir; restartable on the same port."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        clock_file: Path | None = None,
        probe_prefix: bytes = b"",
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.args = list(args)
        self.env = dict(env or {})
        self.clock_file = clock_file
        self.probe_prefix = probe_prefix
        """Sent before the /healthz probe of :meth:`start` (a PROXY header, for a server
        that wants one from 127.0.0.1)."""
        self.proc: subprocess.Popen[bytes] | LaunchedProcess | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-stderr.log"

    @property
    def store_url(self) -> str:
        """The PostgreSQL store the server runs on ("" for SQLite in its data dir)."""
        return self.env.get("MESSENGER_STORE", "")

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def set_time(self, now: float) -> None:
        """Move the server's clock (needs ``clock_file``)."""
        assert self.clock_file is not None, "start the server with a clock_file"
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(repr(now))
        tmp.replace(self.clock_file)

    def start(self) -> None:
        """Start the process and wait until /healthz answers."""
        env = {**os.environ, **CHEAP_HASHES, **self.env}
        if self.clock_file is not None:
            env["MESSENGER_TEST_CLOCK_FILE"] = str(self.clock_file)
        argv = [
            "--host", "127.0.0.1", "--port", str(self.port),
            "--data-dir", str(self.data_dir), *self.args,
        ]  # fmt: skip
        if EXEC_ENV in os.environ:
            log = self.log_path.open("ab")
            cmd = [sys.executable, "-m", "messenger_server", *argv]
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
            log.close()
        else:
            self.proc = LaunchedProcess(argv, env, self.log_path)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if self._healthy():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not start in {START_TIMEOUT} s:\n{self.log()}")

    def terminate(self) -> None:
        """SIGTERM without waiting: the server drains and exits (see :meth:`wait_exit`)."""
        assert self.proc is not None and self.proc.poll() is None, "the server is not running"
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int:
        """The exit code, once the process has ended (TimeoutExpired after ``timeout``)."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def _healthy(self) -> bool:
        if not self.probe_prefix:
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(self.url + "/healthz", timeout=1.0, verify=tls_context())
                return response.status_code == 200
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(self.probe_prefix + b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
                             b"Connection: close\r\n\r\n")  # fmt: skip
                return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no chance to flush or say goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        """Stop cleanly and start again on the same port and data dir."""
        self.stop()
        self.start()

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""
