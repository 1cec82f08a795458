"""The state machines of the server, as transition tables: one place for each.

A table maps a state to the states it may move to. Services ask :func:`allowed`
before they change a state, and the storage queries change a row only from the
states :func:`sources` allows (``... WHERE state IN (...)``), so a race between two
paths (the scheduler sending while its author cancels) cannot skip the table.
Code that keeps a state in memory (the HTTP connection) moves it with
:func:`require`, which refuses a move the table does not have.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "COMPLAINT",
    "CONNECTION",
    "JOIN_REQUEST",
    "SCHEDULED",
    "IllegalTransition",
    "Transitions",
    "allowed",
    "require",
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

JOIN_REQUEST: Transitions = {
    "pending": frozenset({"approved", "rejected", "invited"}),
    "approved": frozenset(),
    "rejected": frozenset(),
    "invited": frozenset(),
}
"""A request to join a group: the owner approves or rejects it, or invites the user
directly (which settles the request too). Only pending requests are stored: a decided
one is deleted, and asking again files a new request."""

CONNECTION: Transitions = {
    "idle": frozenset({"handling", "closing"}),
    "handling": frozenset({"idle", "draining", "streaming", "closing"}),
    "draining": frozenset({"idle", "closing"}),
    "streaming": frozenset({"closing"}),
    "closing": frozenset(),
}
"""An HTTP connection: ``idle`` while it waits for (and reads) a request head;
``handling`` while the handler runs, reading the body as it asks, and the answer is
written; ``draining`` while the unread rest of the body is dropped so the next head can
be read; ``streaming`` once an event stream owns the socket (until the connection
ends); ``closing`` whatever ended it."""


class IllegalTransition(ValueError):
    """A move the transition table does not allow."""


def allowed(table: Transitions, state: str, to: str) -> bool:
    """``state`` may move to ``to``."""
    return to in table.get(state, frozenset())


def require(table: Transitions, state: str, to: str) -> str:
    """``to``, if ``state`` may move there; else :class:`IllegalTransition`."""
    if to not in table.get(state, frozenset()):
        raise IllegalTransition(f"{state!r} cannot become {to!r}")
    return to


def sources(table: Transitions, to: str) -> tuple[str, ...]:
    """The states that may move to ``to``, sorted (the guard of an UPDATE)."""
    return tuple(sorted(s for s, targets in table.items() if to in targets))
