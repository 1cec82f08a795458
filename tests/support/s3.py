"""An S3-compatible server for tests: moto's server mode as a real process on a free port.

``moto`` is a dev dependency, so it is there after ``uv sync``; without it (or if it does
not start) the S3 tests skip with one summary line, and fail under ``CI=true``. moto keeps
everything in memory: stopping the process is the whole clean-up.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from tests.support.cluster import UNAVAILABLE_PREFIXES
from tests.support.server import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3_ENV", "S3_UNAVAILABLE_PREFIX", "S3Server"]

S3_UNAVAILABLE_PREFIX = UNAVAILABLE_PREFIXES[2]
"""How every skip reason for want of the S3 emulator begins (the summary line says it)."""

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""What a node (and the test's own client) needs to reach the emulator."""


class S3Server:
    """``python -m moto.server`` on 127.0.0.1:<free port>."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The endpoint (``--s3-endpoint``)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> str | None:
        """Start it and wait until it listens; why it cannot be used (None: it runs)."""
        where = f"{S3_UNAVAILABLE_PREFIX}127.0.0.1:{self.port}"
        if importlib.util.find_spec("moto") is None:
            return f"{where}: moto is not installed (uv sync installs it)"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=log, env={**os.environ, **S3_ENV},
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"{where}: moto exited with {self.proc.returncode}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return None
            except OSError:
                time.sleep(0.05)
        self.stop()
        return f"{where}: moto did not listen within {timeout:.0f} s"

    def stop(self) -> None:
        """Kill it (its buckets go with it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def client(self) -> S3Client:
        """A boto3 S3 client of the emulator (for set-up and checks)."""
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=S3_ENV["AWS_DEFAULT_REGION"],
        )
