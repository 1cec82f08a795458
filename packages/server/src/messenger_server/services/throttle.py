"""The failed-login throttle (OWASP authentication guidance).

Rules (docs/moderation.md has the whole story):

* Failures are counted per (login, client address) and per client address, never
  per login alone: an attacker cannot lock the owner out, and a correct password
  from an address that has not failed is accepted.
* A (login, address) pair is refused after ``login_failures_max`` failures within
  ``login_failures_window`` seconds (a success from that address starts it again);
  an address after ``login_failures_per_address`` failures for any logins in the
  window (password spraying). A success does not clear the address count.
* Logins that do not exist are counted exactly like those that do (the login is
  only a string here), so the throttle tells nothing about which logins exist.
* Attempts still being checked count too, so a burst of concurrent attempts cannot
  slip past the limit before the first failure is written.
* IPv6 addresses count per /64 network (one host usually has a whole /64).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator

from messenger_protocol import ApiError, ErrorCode, format_duration

from ..clock import Clock
from ..config import Settings
from ..storage import Store, Tx

__all__ = ["LoginThrottle", "address_key"]

log = logging.getLogger(__name__)


def address_key(address: str) -> str:
    """What the throttle counts an address as: itself, or its /64 network for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    """Admits or refuses login attempts; notes their outcome in the store."""

    def __init__(self, store: Store, clock: Clock, settings: Settings) -> None:
        self.store = store
        self.clock = clock
        self.window = settings.login_failures_window
        self.pair_max = settings.login_failures_max
        self.address_max = settings.login_failures_per_address
        self._pending_pairs: Counter[tuple[str, str]] = Counter()
        self._pending_addresses: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def attempt(self, login: str, address: str) -> AsyncIterator[None]:
        """Admit one attempt (``rate_limited`` with ``retry_after`` if throttled) and
        count it as pending until the block ends."""
        key, name = address_key(address), login.lower()
        now = self.clock.now()
        since = now - self.window

        def unit(tx: Tx) -> tuple[list[float], list[float]]:
            return (
                tx.login_failures(key, name, since, self.pair_max),
                tx.login_failures(key, None, since, self.address_max),
            )

        pair_failures, address_failures = await self.store.read(unit)
        # no await from here to the count: concurrent attempts see each other as pending
        retry = max(
            self._retry_after(pair_failures, self._pending_pairs[(key, name)], self.pair_max, now),
            self._retry_after(
                address_failures, self._pending_addresses[key], self.address_max, now
            ),
        )
        if retry > 0:
            log.warning("login of %s from %s throttled for %.0f s", login, address, retry)
            raise ApiError(
                ErrorCode.RATE_LIMITED,
                f"too many failed logins; try again in {format_duration(retry)}",
                retry_after=retry,
            )
        self._pending_pairs[(key, name)] += 1
        self._pending_addresses[key] += 1
        try:
            yield
        finally:
            # after the failure is written (the block awaits its commit)
            self._pending_pairs[(key, name)] -= 1
            if not self._pending_pairs[(key, name)]:
                del self._pending_pairs[(key, name)]
            self._pending_addresses[key] -= 1
            if not self._pending_addresses[key]:
                del self._pending_addresses[key]

    def _retry_after(self, failures: list[float], pending: int, limit: int, now: float) -> float:
        """0 if an attempt may go ahead; else seconds until one may (newest first)."""
        if len(failures) + pending < limit:
            return 0.0
        if len(failures) < limit:
            return 1.0  # attempts in flight fill the limit: they end in about a second
        # the attempt that lets the oldest counted failure leave the window
        return max(float(math.ceil(failures[limit - 1] + self.window - now)), 1.0)

    def failed(self, tx: Tx, login: str, address: str, now: float) -> None:
        """Note a failed attempt (in the unit of work that answers it)."""
        tx.add_login_failure(address_key(address), login.lower(), now, now - self.window)

    def succeeded(self, tx: Tx, login: str, address: str) -> None:
        """A correct password from ``address``: its failures for this login are forgiven."""
        tx.clear_login_failures(address_key(address), login.lower())
