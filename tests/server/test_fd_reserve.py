"""The connection cap fits the open-file limit, with descriptors to spare (issue 9 item 20)."""

from __future__ import annotations

import resource

import pytest

from messenger_server.config import load_settings
from messenger_server.main import FD_HEADROOM, connection_cap, http_limits


def _limits(monkeypatch: pytest.MonkeyPatch, soft: int, hard: int) -> list[tuple[int, int]]:
    state = {"soft": soft, "hard": hard}
    raised: list[tuple[int, int]] = []

    def getrlimit(which: int) -> tuple[int, int]:
        return state["soft"], state["hard"]

    def setrlimit(which: int, value: tuple[int, int]) -> None:
        raised.append(value)
        state["soft"] = value[0]

    monkeypatch.setattr(resource, "getrlimit", getrlimit)
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    return raised


def test_cap_is_lowered_to_keep_descriptors_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 20: with 1,024 open files at most, connections stop FD_HEADROOM short of it, so
    the database, logs and files still open and clients get a 503, not a reset."""
    raised = _limits(monkeypatch, 1024, 1024)
    assert connection_cap(10_000) == 1024 - FD_HEADROOM
    assert raised == [(1024, 1024)]  # it tried to go as high as the hard limit allows
    limits = http_limits(load_settings({"max_connections": "10000"}))
    assert limits.max_connections == 1024 - FD_HEADROOM
    assert limits.reserved_connections == 100


def test_soft_limit_is_raised_when_the_hard_one_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 20: a low soft limit is raised (to what the cap needs) rather than lowering it."""
    raised = _limits(monkeypatch, 1024, 1_000_000)
    assert connection_cap(10_000) == 10_000
    assert raised == [(10_000 + FD_HEADROOM, 1_000_000)]


def test_reserve_must_be_smaller_than_the_cap() -> None:
    """Item 20: a reserve that would leave no ordinary connection is refused in one line."""
    from messenger_server.config import ConfigError

    with pytest.raises(ConfigError, match="reserved_connections must be less than"):
        load_settings({"max_connections": "10", "reserved_connections": "10"})
