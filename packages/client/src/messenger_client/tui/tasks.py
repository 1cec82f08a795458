"""Workers of the app started from its parts (:class:`~.session.LiveSession` and the
others), which are not DOM nodes and so cannot use Textual's ``@work``.

:func:`app_work` is ``@work`` for a method of an object with an ``app``: the worker is
the app's (it outlives every screen), named after the method, and its coroutine is made
when it starts.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial, wraps
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from textual.worker import Worker

from .host import Host

__all__ = ["AppPart", "app_work"]

P = ParamSpec("P")


class AppPart(Protocol):
    """A part of the app: it knows the app it belongs to."""

    @property
    def app(self) -> Host:
        """The app whose workers run this part's network calls."""
        ...


S = TypeVar("S", bound=AppPart)


def app_work(
    *, group: str = "default", exclusive: bool = False
) -> Callable[
    [Callable[Concatenate[S, P], Coroutine[Any, Any, None]]],
    Callable[Concatenate[S, P], Worker[None]],
]:
    """Run the decorated coroutine method as a worker of ``self.app`` (like ``@work``)."""

    def decorate(
        method: Callable[Concatenate[S, P], Coroutine[Any, Any, None]],
    ) -> Callable[Concatenate[S, P], Worker[None]]:
        @wraps(method)
        def start(self: S, /, *args: P.args, **kwargs: P.kwargs) -> Worker[None]:
            return self.app.run_worker(
                partial(method, self, *args, **kwargs),
                name=method.__name__,
                group=group,
                exclusive=exclusive,
            )

        return start

    return decorate
