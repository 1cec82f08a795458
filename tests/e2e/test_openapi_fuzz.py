"""Item 23 of issue 9: schemathesis (every check) against the live server finds nothing.

The served OpenAPI document must say what the server does: bounded path integers,
the ``Last-Event-ID`` pattern, SSE as ``text/event-stream``. Three operations stay out
of the run: ``events`` is an endless stream (its bad input is covered by
tests/e2e/test_bounds.py), and ``logout``/``logout_all`` would end the token the rest
of the run uses.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from messenger_protocol import limits, openapi_document
from tests.support.server import ServerProcess
from tests.support.wire import register

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 5
"""Examples per operation and phase: about a minute on a loaded 2-core machine."""


def test_openapi_describes_bounds_and_the_event_stream() -> None:
    """Item 23: path ids carry min/max, Last-Event-ID its pattern, events are SSE."""
    doc = openapi_document()
    message = doc["paths"]["/api/v1/messages/{message_id}"]["get"]["parameters"][0]
    assert message["schema"] == {"type": "integer", "minimum": 1, "maximum": limits.MAX_INT}
    events = doc["paths"]["/api/v1/events"]["get"]
    header = next(p for p in events["parameters"] if p["name"] == "Last-Event-ID")
    assert header["in"] == "header" and header["schema"]["pattern"] == r"^[0-9]{1,18}$"
    stream = events["responses"]["200"]["content"]["text/event-stream"]
    assert stream["schema"]["type"] == "string"
    assert "id:" in events["responses"]["200"]["description"]
    assert "$ref" not in stream["schema"]


@pytest.mark.timeout(400)  # about 70 s on a loaded 2-core machine; bounded by MAX_EXAMPLES
def test_schemathesis_finds_nothing(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Item 23: `st run --checks all` over the served document passes."""
    srv = server_factory(args=["--admins", "alice", "--rate-limit-messages", "100000"])
    token = asyncio.run(register(srv.url, "alice"))["token"]
    cmd = [
        str(Path(sys.executable).with_name("st")), "--config-file", str(CONFIG), "--no-color",
        "run", f"{srv.url}/api/v1/openapi.json",
        "--checks", "all", "--max-examples", str(MAX_EXAMPLES),
        "--phases", "examples,coverage,fuzzing,stateful", "--workers", "2",
        "--exclude-operation-id", "events", "--exclude-operation-id", "logout",
        "--exclude-operation-id", "logout_all", "--seed", "9",
        "-H", f"Authorization: Bearer {token}", "--request-timeout", "10",
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, check=False
    )
    warnings = [line for line in srv.log().splitlines() if " WARNING " in line]
    report = done.stdout[-6000:] + done.stderr[-2000:] + "\nserver:\n" + "\n".join(warnings)
    assert done.returncode == 0, report
    counts = re.search(r"Operations:\s+(\d+) selected / (\d+) total", done.stdout)
    tested = re.search(r"Tested: (\d+)", done.stdout)
    assert counts is not None and tested is not None, report
    selected, total = int(counts.group(1)), int(counts.group(2))
    assert (total - selected, int(tested.group(1))) == (3, selected), report
