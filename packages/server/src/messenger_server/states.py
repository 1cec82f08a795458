"""The state machines of the server, as transition tables: one place for each.

A table maps a state to the states it may move to. Services ask :func:`require`
before they change a state, and the storage queries change a row only from the
states :func:`sources` allows (``... WHERE state IN (...)``), so a race between two
paths (the scheduler sending while its author cancels) cannot skip the table.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "COMPLAINT",
    "SCHEDULED",
    "Transitions",
    "allowed",
    "sources",
]

Transitions = Mapping[str, frozenset[str]]
"""State -> the states it may move to (a final state maps to nothing)."""

SCHEDULED: Transitions = {
    "pending": frozenset({"sent", "failed", "cancelled"}),
    "sent": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
"""A scheduled message: posted, refused at send time, or cancelled by its author."""

COMPLAINT: Transitions = {
    "open": frozenset({"dismissed", "actioned"}),
    "dismissed": frozenset(),
    "actioned": frozenset(),
}
"""A complaint: dismissed by an admin, or actioned by a ban of its target."""


def allowed(table: Transitions, state: str, to: str) -> bool:
    """``state`` may move to ``to``."""
    return to in table.get(state, frozenset())


def sources(table: Transitions, to: str) -> tuple[str, ...]:
    """The states that may move to ``to``, sorted (the guard of an UPDATE)."""
    return tuple(sorted(s for s, targets in table.items() if to in targets))
