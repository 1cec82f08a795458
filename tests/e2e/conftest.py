"""Every end-to-end test runs against both stores: ``[sqlite]`` and ``[postgres]``."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """The store of this run of the test."""
    kind: str = request.param
    return kind
