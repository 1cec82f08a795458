"""Accounts: register, log in and out, tokens, users with presence, ``/status``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from messenger_protocol import (
    ApiError,
    Credentials,
    ErrorCode,
    Session,
    SessionEnded,
    User,
    UserList,
    format_duration,
    limits,
)

from ..clock import Clock
from ..storage import Store, Tx, UserRecord
from ..storage.moderation import moderation_queries
from .actor import Actor, address_ip
from .events import EventService
from .presence import PresenceService
from .throttle import LoginThrottle

__all__ = ["AccountService", "banned_until", "token_hash"]

log = logging.getLogger(__name__)

_BAD_LOGIN = "wrong login or password"

HASH_NICENESS = 10
"""How much lower than the event loop the password-hashing threads run (Linux)."""

T = TypeVar("T")

TOUCH_MAX_SECONDS = 3600.0
"""A session's last use is written at least this often while it is used (and at most
every tenth of the idle timeout): after a restart the idle expiry is off by no more."""


@dataclasses.dataclass(slots=True)
class _Use:
    """When a session began, was last used, and when that use was last written."""

    created_at: float
    used_at: float
    saved_at: float


def _lower_priority() -> None:
    """Run this worker thread at a lower CPU priority than the event loop."""
    if sys.platform != "linux":
        return  # only Linux sets the priority of one thread by its id
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICENESS)


def banned_until(tx: Tx, user_id: int, now: float) -> float | None:
    """When the user's running ban ends (None: not banned)."""
    ban = moderation_queries(tx).active_ban(user_id, now)
    return None if ban is None else ban[0]


def _expired_error(why: str) -> ApiError:
    return ApiError(ErrorCode.SESSION_EXPIRED, f"session expired ({why}); log in again")


def token_hash(token: str) -> bytes:
    """What the store keeps of a bearer token."""
    return hashlib.sha256(token.encode()).digest()


class AccountService:
    """Users, sessions and presence."""

    def __init__(
        self,
        store: Store,
        events: EventService,
        clock: Clock,
        throttle: LoginThrottle,
        presence: PresenceService,
        *,
        admins: tuple[str, ...] = (),
        hasher: PasswordHasher | None = None,
        history_on_connect: int = limits.HISTORY_ON_CONNECT,
        hash_concurrency: int = limits.LOGIN_HASH_CONCURRENCY,
        session_idle_timeout: int = limits.SESSION_IDLE_SECONDS,
        session_max_age: int = limits.SESSION_MAX_AGE_SECONDS,
        message_ttl: int = 0,
        cache_sessions: bool = True,
    ) -> None:
        self.store = store
        self.cache_sessions = cache_sessions
        """Keep live sessions in memory between requests (one node). Several nodes read
        the session on every request, so a logout on one is refused at once on all."""
        self.history_on_connect = history_on_connect
        """General-chat messages a client shows after it connects (told in every Session)."""
        self.events = events
        self.clock = clock
        self.throttle = throttle
        self.presence = presence
        """Who is online (on this node or, with leases, on any)."""
        self.admins = {a.lower() for a in admins}
        self.hasher = hasher or PasswordHasher()
        self._hashing = asyncio.Semaphore(hash_concurrency)
        """Bounds argon2 work: a login flood waits here instead of taking every core."""
        self._hash_concurrency = hash_concurrency
        self._hash_threads: ThreadPoolExecutor | None = None
        self._dummy_hash: str | None = None
        self._actors: dict[bytes, Actor] = {}
        self._addresses: dict[str, str] = {}
        self.session_idle_timeout = session_idle_timeout
        self.session_max_age = session_max_age
        self._uses: dict[str, _Use] = {}
        """Times of sessions seen since start, by session id (newer than the stored ones)."""
        self.last_seen: dict[int, float] = {}
        """Last activity per user id, newer than the stored value."""
        self.message_ttl = message_ttl
        """Seconds a message stays after delivery (told in every Session; 0: forever)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # --- register / login / logout -----------------------------------------

    async def register(self, creds: Credentials, address: str) -> Session:
        """Create an account and log it in at once; ``conflict`` if the login is taken."""
        if await self.store.read(lambda tx: tx.user_by_login(creds.login)) is not None:
            raise ApiError(ErrorCode.CONFLICT, f"login {creds.login!r} is taken")
        password_hash = await self._hash_work(self.hasher.hash, creds.password)
        now = self.clock.now()
        is_admin = creds.login.lower() in self.admins

        def unit(tx: Tx) -> Session:
            user_id = tx.insert_user(creds.login, password_hash, now, is_admin)
            if user_id is None:
                raise ApiError(ErrorCode.CONFLICT, f"login {creds.login!r} is taken")
            tx.insert_login(user_id, now, address, creds.device, True)
            return self._new_session(tx, user_id, creds.login, is_admin, creds.device, address)

        session = await self.store.write(unit)
        log.info("registered %s from %s", creds.login, address)
        return session

    async def login(self, creds: Credentials, address: str) -> Session:
        """Log in; ``unauthorized`` with one message whether the login or the password is wrong.

        The throttle admits the attempt first (``rate_limited``); an unknown login is
        checked against a dummy hash, counted and answered exactly like a wrong password.
        """
        async with self.throttle.attempt(creds.login, address):
            user = await self.store.read(lambda tx: tx.user_by_login(creds.login))
            ok = await self._hash_work(self._verify, user, creds.password)
            now = self.clock.now()

            def unit(tx: Tx) -> Session | None:
                if user is not None:
                    tx.insert_login(user.id, now, address, creds.device, ok)
                if user is None or not ok:
                    self.throttle.failed(tx, creds.login, address, now)
                    return None
                self.throttle.succeeded(tx, creds.login, address)
                is_admin = user.is_admin or user.login.lower() in self.admins
                return self._new_session(tx, user.id, user.login, is_admin, creds.device, address)

            session = await self.store.write(unit)
        if session is None:
            log.info("failed login of %s from %s", creds.login, address)
            raise ApiError(ErrorCode.UNAUTHORIZED, _BAD_LOGIN)
        return session

    async def start(self) -> None:
        """Start making the dummy hash unknown logins are checked against, in the background:
        the server listens without waiting for argon2 on its low-priority thread (on a busy
        machine that wait was many seconds, for every node of a cluster)."""
        task = asyncio.create_task(self._warm_dummy(), name="dummy-hash")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _warm_dummy(self) -> None:
        try:
            await self._hash_work(self._dummy)
        except RuntimeError:  # closed before it was made
            log.debug("server closed before the dummy hash was made")

    async def _hash_work(self, fn: Callable[..., T], *args: object) -> T:
        """Run argon2 work on a low-priority thread, at most ``hash_concurrency`` at once."""
        async with self._hashing:
            if self._hash_threads is None:
                self._hash_threads = ThreadPoolExecutor(
                    self._hash_concurrency, "argon2", initializer=_lower_priority
                )
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._hash_threads, fn, *args)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_hex(8))
        return self._dummy_hash

    def _verify(self, user: UserRecord | None, password: str) -> bool:
        if user is None:
            # spend the same time as for a real account: no probing logins by timing
            dummy = self._dummy()
            with contextlib.suppress(VerificationError, InvalidHashError):
                self.hasher.verify(dummy, password)
            return False
        try:
            return self.hasher.verify(user.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _new_session(
        self, tx: Tx, user_id: int, login: str, is_admin: bool, device: str, address: str
    ) -> Session:
        token = secrets.token_urlsafe(32)
        session_id = secrets.token_hex(12)
        tx.insert_session(session_id, token_hash(token), user_id, device, self.clock.now(), address)
        user = tx.user_by_id(user_id)
        assert user is not None
        return Session(
            token=token,
            session_id=session_id,
            user=self._user(user, is_admin),
            last_event_id=self.events.session_start(tx),
            history_on_connect=self.history_on_connect,
            message_ttl=self.message_ttl,
        )

    async def session(self, actor: Actor) -> Session:
        """The acting session as a login returned it, without the token (its holder has
        it): what a client resuming from a saved token needs to know about itself."""
        record, start = await self.store.read(
            lambda tx: (tx.user_by_id(actor.user_id), self.events.session_start(tx, read=True))
        )
        if record is None:
            raise ApiError(ErrorCode.UNAUTHORIZED, "invalid or expired token")
        return Session(
            token="",
            session_id=actor.session_id,
            user=self.user_view(record),
            last_event_id=start,
            history_on_connect=self.history_on_connect,
            message_ttl=self.message_ttl,
        )

    async def logout(self, actor: Actor) -> None:
        """End this session (its event streams close)."""
        await self._end(actor, [actor.session_id])

    async def logout_all(self, actor: Actor) -> None:
        """End every session of this user."""
        await self._end(actor, None)

    async def _end(self, actor: Actor, session_ids: list[str] | None) -> None:
        now = self.clock.now()

        def unit(tx: Tx) -> list[str]:
            ended = tx.end_sessions(actor.user_id, session_ids, now)
            for session_id in ended:
                # logged: on every node the user's streams hear of it, then that session's
                # streams close, even if the bus loses it (the window repairs from the log)
                self.events.emit(tx, SessionEnded(session_id=session_id), user_id=actor.user_id)
            return ended

        ended = await self.store.write(unit)
        self._actors = {k: a for k, a in self._actors.items() if a.session_id not in ended}
        for session_id in ended:
            self._addresses.pop(session_id, None)
            self._uses.pop(session_id, None)
        log.info("%s logged out %d session(s)", actor.login, len(ended))

    # --- tokens -------------------------------------------------------------

    async def authenticate(self, token: str, address: str) -> Actor:
        """The actor behind a bearer token; ``unauthorized`` if it is not a live session,
        ``session_expired`` if it was one that expired (every request renews the idle time).

        With several nodes the session is read at every request, and its last use is the
        newest this node saw or any node wrote (written at least every
        ``min(TOUCH_MAX_SECONDS, idle / 10)`` while it is used), so a session in use on
        one node stays alive on all. A use another node has not written yet is at most
        that interval after the written one, so a node expires a session only once it is
        unused for the idle timeout past the written use plus that interval: later by at
        most the interval, never sooner. A node that finds it expired ends it in the
        database and logs ``session_ended``, as a logout does: every node closes its
        streams and refuses its token.
        """
        key = token_hash(token)
        actor = self._actors.get(key) if self.cache_sessions else None
        if actor is None:
            record = await self.store.read(lambda tx: tx.session_by_token(key))
            if record is None:
                self._actors.pop(key, None)
                raise ApiError(ErrorCode.UNAUTHORIZED, "invalid or ended token")
            used = record.last_used_at if record.last_used_at is not None else record.created_at
            if record.expired:
                self._forget(key, record.id)
                raise _expired_error(self._why(_Use(record.created_at, used, used)))
            use = self._uses.get(record.id)
            if use is None:
                self._uses[record.id] = _Use(record.created_at, used, used)
            elif used > use.used_at:  # used on another node since this one saw it
                use.used_at = used
                use.saved_at = max(use.saved_at, used)
            actor = Actor(
                user_id=record.user_id,
                login=record.login,
                session_id=record.id,
                is_admin=record.is_admin or record.login.lower() in self.admins,
            )
            self._actors[key] = actor
            self._addresses.setdefault(record.id, record.last_address)
        now = self.clock.now()
        use = self._uses[actor.session_id]
        if now >= self._expiry(use):
            await self._expire(key, actor, use, now)
        use.used_at = now
        self.last_seen[actor.user_id] = now
        touch_every = self._touch_every()
        ip = address_ip(address)  # a new connection from the same place changes nothing
        if self._addresses.get(actor.session_id) != ip or now - use.saved_at >= touch_every:
            # one write per new address (and now and then), not per request or connection
            self._addresses[actor.session_id] = ip
            use.saved_at = now
            session_id = actor.session_id
            await self.store.write(lambda tx: tx.touch_session(session_id, ip, now))
        # built directly: dataclasses.replace costs twice as much, on every request
        return Actor(
            user_id=actor.user_id,
            login=actor.login,
            session_id=actor.session_id,
            is_admin=actor.is_admin,
            address=address,
        )

    def _touch_every(self) -> float:
        """How often a session's last use is written while it is used."""
        return min(TOUCH_MAX_SECONDS, self.session_idle_timeout / 10)

    def _expiry(self, use: _Use) -> float:
        return min(use.used_at + self.session_idle_timeout, use.created_at + self.session_max_age)

    def _why(self, use: _Use) -> str:
        if use.created_at + self.session_max_age <= use.used_at + self.session_idle_timeout:
            return f"{format_duration(self.session_max_age)} after login"
        return f"unused for {format_duration(self.session_idle_timeout)}"

    def session_expires_at(self, session_id: str) -> float | None:
        """When a session seen since start expires if it is not used again."""
        use = self._uses.get(session_id)
        return None if use is None else self._expiry(use)

    def _forget(self, key: bytes, session_id: str) -> None:
        self._actors.pop(key, None)
        self._uses.pop(session_id, None)
        self._addresses.pop(session_id, None)

    async def _expire(self, key: bytes, actor: Actor, use: _Use, now: float) -> None:
        """Refuse an expired session for good (its token answers ``session_expired`` on
        every node), unless the database holds a use that keeps it alive: then return."""

        # another node's uses since its last write are unwritten (see authenticate)
        unwritten = 0.0 if self.cache_sessions else self._touch_every()

        def unit(tx: Tx) -> bool:
            record = tx.session_by_token(key)
            if record is None:
                raise ApiError(ErrorCode.UNAUTHORIZED, "invalid or ended token")
            if record.last_used_at is not None and record.last_used_at > use.used_at:
                use.used_at = record.last_used_at  # written by another node meanwhile
                if now < self._expiry(use):
                    return False
            written = record.last_used_at if record.last_used_at is not None else use.created_at
            if unwritten and now < min(written + unwritten + self.session_idle_timeout,
                                       use.created_at + self.session_max_age):  # fmt: skip
                return False
            if tx.expire_session(actor.session_id, now):
                # logged, as a logout: every node closes the session's streams
                event = SessionEnded(session_id=actor.session_id, expired=True)
                self.events.emit(tx, event, user_id=actor.user_id)
            return True

        if not await self.store.write(unit):
            return
        self._forget(key, actor.session_id)
        why = self._why(use)
        log.info("session of %s expired: %s", actor.login, why)
        raise _expired_error(why)

    # --- users and presence -------------------------------------------------

    def _user(
        self, record: UserRecord, is_admin: bool | None = None, banned_until: float | None = None
    ) -> User:
        seen = [t for t in (self.last_seen.get(record.id), self.presence.last_seen.get(record.id),
                            record.last_seen) if t is not None]  # fmt: skip
        return User(
            login=record.login,
            online=self.presence.is_online(record.id),
            last_seen=max(seen) if seen else None,
            is_admin=record.is_admin if is_admin is None else is_admin,
            banned_until=banned_until,
        )

    def user_view(self, record: UserRecord, banned_until: float | None = None) -> User:
        """The public view of a user with their presence (and running ban, if given)."""
        is_admin = record.is_admin or record.login.lower() in self.admins
        return self._user(record, is_admin, banned_until)

    def online_user_ids(self) -> set[int]:
        """Users with a live event stream."""
        return self.presence.online_user_ids()

    async def users(self) -> UserList:
        """All users with presence and running bans, by login."""
        now = self.clock.now()

        def unit(tx: Tx) -> UserList:
            bans = moderation_queries(tx).running_bans(now)
            return UserList(
                users=[self.user_view(r, bans.get(r.login.lower())) for r in tx.users()]
            )

        return await self.store.read(unit)

    async def user(self, login: str) -> User:
        """One user with presence and running ban; ``not_found`` if there is none."""
        now = self.clock.now()

        def unit(tx: Tx) -> User:
            record = tx.user_by_login(login)
            if record is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"no such user: {login}")
            return self.user_view(record, banned_until(tx, record.id, now))

        return await self.store.read(unit)

    async def close(self) -> None:
        """Persist presence times kept in memory; stop the hashing threads."""
        if self._hash_threads is not None:
            self._hash_threads.shutdown(wait=False, cancel_futures=True)
            self._hash_threads = None
        self._closing = True
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        seen = dict(self.last_seen)

        def unit(tx: Tx) -> None:
            for user_id, at in seen.items():
                tx.set_last_seen(user_id, at)

        if seen:
            await self.store.write(unit)
