"""Rate-limited logging: a storm of one kind of failure costs a few lines, not megabytes."""

from __future__ import annotations

import logging
import time

__all__ = ["LogLimiter"]

log = logging.getLogger(__name__)


class LogLimiter:
    """Lets at most ``burst`` lines of one kind through per ``window`` seconds.

    What it holds back is counted and reported in one line when the next window opens,
    so a storm of bad or vanishing clients costs a few log lines, not megabytes.
    """

    __slots__ = ("_burst", "_kinds", "_log", "_window")

    def __init__(
        self, burst: int = 10, window: float = 10.0, *, logger: logging.Logger | None = None
    ) -> None:
        self._log = log if logger is None else logger
        """Where the line that counts what was held back goes (the caller's logger)."""
        self._burst = burst
        self._window = window
        self._kinds: dict[str, list[float]] = {}  # kind -> [window start, lines, suppressed]

    def allow(self, kind: str) -> bool:
        """True if a line of ``kind`` may be logged now."""
        now = time.monotonic()
        state = self._kinds.get(kind)
        if state is None or now - state[0] >= self._window:
            if state is not None and state[2]:
                self._log.warning(
                    "%d more %s lines suppressed in the last %.0f s",
                    state[2], kind, now - state[0],
                )  # fmt: skip
            state = self._kinds[kind] = [now, 0, 0]
        if state[1] < self._burst:
            state[1] += 1
            return True
        state[2] += 1
        return False


_pass_limit = LogLimiter(burst=3, window=60.0)


def log_pass_failure(
    logger: logging.Logger, what: str, exc: BaseException, away: tuple[type[BaseException], ...]
) -> None:
    """Log that a background pass failed: one rate-limited line when it is because the
    database is away (``away``: the store's "does not answer" errors; every pass fails
    alike until it is back), else the traceback."""
    if isinstance(exc, away):
        if _pass_limit.allow(what):
            logger.warning("%s: the database did not answer: %s", what, exc)
        return
    logger.exception(what, exc_info=exc)
