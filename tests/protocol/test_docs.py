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
