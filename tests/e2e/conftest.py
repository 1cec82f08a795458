"""Every end-to-end test runs against both stores: ``[sqlite]`` and ``[postgres]``.

A test marked ``cluster_too`` (or a module with ``pytestmark = pytest.mark.cluster_too``)
runs a third time, ``[cluster]`` (``cluster_too(xfail="why")``: expected to fail there, a
known cluster bug): its ``server`` is three nodes on PostgreSQL with a Redis
bus, and each read of ``server.url`` names the next node, so its users, devices and
streams are spread over the nodes (see tests/conftest.py).
"""

from __future__ import annotations

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``store_kind`` (the fixture of tests/conftest.py says ``sqlite``)."""
    if "store_kind" not in metafunc.fixturenames:
        return
    kinds: list[object] = ["sqlite", "postgres"]
    on_cluster = metafunc.definition.get_closest_marker("cluster_too")
    if on_cluster is not None:
        marks = [pytest.mark.cluster]
        known = on_cluster.kwargs.get("xfail")  # a known cluster bug: the reason
        if known:
            marks.append(pytest.mark.xfail(reason=known, strict=True))
        kinds.append(pytest.param("cluster", marks=marks))
    metafunc.parametrize("store_kind", kinds)
