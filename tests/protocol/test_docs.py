"""docs/api.md stays true to the endpoint table and the error codes."""

from __future__ import annotations

from pathlib import Path

from messenger_protocol import ENDPOINTS, EVENT_TYPES, STATUS_OF

GUIDE = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()


def test_guide_lists_every_endpoint() -> None:
    missing = [
        f"{e.method} {e.path}" for e in ENDPOINTS if f"| {e.method} | `{e.path}` |" not in GUIDE
    ]
    assert missing == []


def test_guide_lists_every_error_code_and_event() -> None:
    assert [c.value for c in STATUS_OF if f"| `{c.value}` |" not in GUIDE] == []
    tags = [t.__struct_config__.tag for t in EVENT_TYPES]
    assert [t for t in tags if f"| `{t}` |" not in GUIDE] == []


def test_guide_says_what_a_committed_send_survives() -> None:
    """Item 21 of issue 9: no bare "committed to disk"; NORMAL and FULL each say what they
    survive (kill -9, power loss)."""
    assert "committed to disk before its answer" not in GUIDE
    normal = GUIDE.split("- `NORMAL` (the default)", 1)[1].split("- `FULL`", 1)[0]
    full = GUIDE.split("- `FULL`:", 1)[1].split("\n\n", 1)[0]
    assert "kill -9" in normal and "power loss" in normal and "may be lost" in normal
    assert "survives power loss" in full
