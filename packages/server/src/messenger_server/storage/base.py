"""The storage interface: what the services need of a database.

A unit of work is a plain (synchronous) function of a :class:`Tx`; the store runs
it atomically (:meth:`Store.write`) or as a read (:meth:`Store.read`). Keeping the
units synchronous lets the SQLite store run them inline and group their commits;
the PostgreSQL store runs them on its writer thread with a blocking driver, so a
unit changes service state only in ``after_commit`` callbacks (run on the loop).
The queries speak in protocol models and the records of :mod:`.records`, never SQL,
so services stay the same whatever the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, TypeVar

from messenger_protocol import Chat, LoginRecord, Message

from .records import ChatRecord, EventHandle, EventRecord, LinkRecord, SessionRecord, UserRecord

__all__ = [
    "AccountQueries",
    "ChatQueries",
    "ContactQueries",
    "EventQueries",
    "LinkQueries",
    "MessageQueries",
    "Store",
    "Tx",
    "UnitOfWork",
]

T = TypeVar("T")


class UnitOfWork(Protocol):
    """What every unit of work can do besides its queries."""

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this unit's changes are committed (in commit order)."""
        ...


class AccountQueries(Protocol):
    """Users, sessions and login history."""

    def insert_user(self, login: str, password_hash: str, now: float, is_admin: bool) -> int | None:
        """Create a user, a member of the general chat; None if the login is taken."""
        ...

    def user_by_login(self, login: str) -> UserRecord | None:
        """The user with this login (case-insensitive)."""
        ...

    def user_by_id(self, user_id: int) -> UserRecord | None:
        """The user with this id."""
        ...

    def users(self) -> list[UserRecord]:
        """Every user, by login."""
        ...

    def set_admin(self, user_id: int, is_admin: bool) -> None:
        """Grant or take away admin rights."""
        ...

    def set_last_seen(self, user_id: int, at: float) -> None:
        """Remember when the user was last seen."""
        ...

    def insert_session(
        self,
        session_id: str,
        token_sha256: bytes,
        user_id: int,
        device: str,
        now: float,
        address: str,
    ) -> None:
        """Store a new session (only the token's hash)."""
        ...

    def session_by_token(self, token_sha256: bytes) -> SessionRecord | None:
        """The live session with this token hash, or the one that expired (``expired``);
        None for an unknown or logged-out token."""
        ...

    def expire_session(self, session_id: str, now: float) -> bool:
        """End a live session as expired; False if it had ended already."""
        ...

    def live_sessions(self, user_id: int) -> list[SessionRecord]:
        """The sessions of a user that have not ended, oldest first."""
        ...

    def touch_session(self, session_id: str, address: str, now: float) -> None:
        """Record the address and time of a session's latest request."""
        ...

    def end_sessions(self, user_id: int, session_ids: list[str] | None, now: float) -> list[str]:
        """End some (or, with None, all) live sessions of a user; the ids that ended."""
        ...

    def insert_login(
        self, user_id: int, now: float, address: str, device: str, success: bool
    ) -> None:
        """Append to a user's login history."""
        ...

    def recent_logins(self, user_id: int, limit: int) -> list[LoginRecord]:
        """The newest login attempts of a user, newest first."""
        ...

    def add_login_failure(self, address: str, login: str, at: float, prune_before: float) -> None:
        """Note a failed login attempt; drop the notes older than ``prune_before``."""
        ...

    def login_failures(
        self, address: str, login: str | None, since: float, limit: int
    ) -> list[float]:
        """Times of the newest ``limit`` failures after ``since`` from ``address`` (for
        ``login`` only, or any login with None), newest first."""
        ...

    def clear_login_failures(self, address: str, login: str) -> None:
        """Forget the failures of ``login`` from ``address`` (after it logged in there)."""
        ...


class ChatQueries(Protocol):
    """Chats, their members and read cursors."""

    def chat(self, chat_id: int) -> ChatRecord | None:
        """The chat with this id."""
        ...

    def group_by_name(self, name: str) -> ChatRecord | None:
        """The group chat with this name (case-insensitive)."""
        ...

    def direct_chat(self, direct_key: str) -> ChatRecord | None:
        """The private conversation with this key."""
        ...

    def insert_chat(
        self,
        kind: str,
        name: str,
        owner_id: int | None,
        direct_key: str | None,
        now: float,
        *,
        encrypted: bool = False,
    ) -> int | None:
        """Create a chat; None if the name (group) or key (direct) is taken."""
        ...

    def add_member(self, chat_id: int, user_id: int, now: float, last_read: int = 0) -> bool:
        """Add a member; False if they already were one."""
        ...

    def remove_member(self, chat_id: int, user_id: int) -> bool:
        """Remove a member; False if they were not one."""
        ...

    def member_chat(self, chat_id: int, user_id: int) -> tuple[ChatRecord, int] | None:
        """The chat and the user's read cursor in it; None if they are not a member."""
        ...

    def last_read(self, chat_id: int, user_id: int) -> int | None:
        """The member's read cursor; None if they are not a member."""
        ...

    def set_last_read(self, chat_id: int, user_id: int, up_to: int) -> int:
        """Move the read cursor forward (never back); the cursor after the move."""
        ...

    def member_ids(self, chat_id: int) -> list[int]:
        """Ids of the members of a chat."""
        ...

    def members(self, chat_id: int) -> list[UserRecord]:
        """The members of a chat, by login."""
        ...

    def member_count(self, chat_id: int) -> int:
        """How many members a chat has."""
        ...

    def chat_ids_of(self, user_id: int) -> list[int]:
        """The chats a user belongs to."""
        ...

    def chat_views_of(self, user_id: int) -> list[Chat]:
        """:meth:`chat_view` of every chat the user belongs to, by chat id, in one query."""
        ...

    def chat_view(self, chat: ChatRecord, user_id: int) -> Chat:
        """A chat as one member sees it: their name for it, unread and mention counts, read
        cursor and mute setting."""
        ...

    def touch_chat(self, chat_id: int, message_id: int, now: float) -> None:
        """Record a chat's newest message."""
        ...


class MessageQueries(Protocol):
    """Messages, threads and their read state."""

    def insert_message(
        self,
        chat_id: int,
        author_id: int,
        text: str,
        now: float,
        client_id: str | None,
        thread_root: int | None,
        scheduled_id: int | None,
    ) -> Message | None:
        """Store a message (a root, or a comment under ``thread_root``) and return it.

        Idempotent by ``(author_id, client_id)``: None, storing nothing, if the author
        already has a message with this ``client_id`` (committed by another writer; the
        insert waits for it, so the caller can then read it with
        :meth:`message_by_client_id`).
        """
        ...

    def message(self, message_id: int) -> Message | None:
        """One message or comment."""
        ...

    def message_author_id(self, message_id: int) -> int | None:
        """Id of a message's author."""
        ...

    def message_by_client_id(self, author_id: int, client_id: str) -> Message | None:
        """The message an author already sent with this idempotency id."""
        ...

    def history(
        self, chat_id: int, before: int | None, after: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """A page of root messages, oldest first, and whether there are more beyond it."""
        ...

    def unread_count(self, chat_id: int, user_id: int, after: int) -> int:
        """Root messages of others in a chat newer than ``after`` (at most ``UNREAD_COUNT_MAX``)."""
        ...

    def unread_messages(self, chat_id: int, user_id: int, after: int, limit: int) -> list[Message]:
        """The oldest ``limit`` root messages of others newer than ``after``, oldest first."""
        ...

    def comments(self, root_id: int) -> list[Message]:
        """The comments under a root message, oldest first."""
        ...

    def count_comment(self, root_id: int, now: float) -> Message:
        """Add one to a root's comment count; the updated root."""
        ...

    def thread_participants(self, root_id: int) -> set[int]:
        """The root's author and everyone who commented under it."""
        ...

    def thread_last_read(self, user_id: int, root_id: int) -> int:
        """The user's read cursor in a thread (0 if never read)."""
        ...

    def set_thread_read(self, user_id: int, root_id: int, up_to: int) -> int:
        """Move the thread read cursor forward; the cursor after the move."""
        ...

    def thread_unread(self, root_id: int, user_id: int, after: int) -> int:
        """Comments of others under a root newer than ``after``."""
        ...

    def private_counts(self, user_id: int) -> tuple[int, int]:
        """Messages the user sent to and received in private conversations."""
        ...


class ContactQueries(Protocol):
    """Contact lists."""

    def contacts(self, user_id: int) -> list[tuple[UserRecord, float]]:
        """A user's contacts with when they were added, by login."""
        ...

    def add_contact(self, user_id: int, contact_id: int, now: float) -> float:
        """Add a contact (no-op if present); when it was added."""
        ...

    def remove_contact(self, user_id: int, contact_id: int) -> bool:
        """Remove a contact; False if it was not one."""
        ...


class LinkQueries(Protocol):
    """Invite keys and join requests."""

    def insert_link(
        self,
        key: str,
        chat_id: int,
        created_by: int,
        now: float,
        expires_at: float | None,
        max_uses: int | None,
    ) -> LinkRecord:
        """Store a new invite key."""
        ...

    def link(self, key: str) -> LinkRecord | None:
        """The invite key, revoked or not."""
        ...

    def links(self, chat_id: int) -> list[LinkRecord]:
        """Every invite key of a chat, oldest first."""
        ...

    def use_link(self, key: str) -> None:
        """Count one use of an invite key."""
        ...

    def revoke_link(self, key: str, now: float) -> None:
        """Revoke an invite key."""
        ...

    def upsert_join_request(self, chat_id: int, user_id: int, now: float, with_key: bool) -> None:
        """File (or refresh) a join request; a keyed request stays keyed."""
        ...

    def join_request(self, chat_id: int, user_id: int) -> tuple[float, bool] | None:
        """``(created_at, with_key)`` of a pending request."""
        ...

    def join_requests(self, chat_id: int) -> list[tuple[str, float, bool]]:
        """``(login, created_at, with_key)`` of a chat's pending requests, oldest first."""
        ...

    def decide_join_request(self, chat_id: int, user_id: int, to: str) -> bool:
        """Settle a pending request as ``to`` (approved, rejected, invited: the table
        :data:`~messenger_server.states.JOIN_REQUEST`; another state is refused with
        :class:`~messenger_server.states.IllegalTransition`); False if there was none."""
        ...


class EventQueries(Protocol):
    """The event log."""

    def append_event(
        self,
        name: str,
        payload: bytes,
        chat_id: int | None,
        user_id: int | None,
        now: float,
        message_id: int | None = None,
        except_late: int | None = None,
    ) -> EventHandle:
        """Append an event for a chat's members or one user; ``handle.seq`` after commit.

        ``message_id`` names the message whose text the event carries (it is deleted
        with the message). ``except_late`` (a chat's event only) names a message: members
        with a ``deliveries`` row of it (their copy was not delivered when it was posted)
        do not get the event.
        """
        ...

    def unnumbered_events(self) -> list[EventHandle]:
        """The events this transaction appended that are not rows of the log yet
        (PostgreSQL inserts a group's events, of all its units, by its last statement;
        SQLite: none). Changing a handle's ``payload`` changes what is logged and
        published; clearing its ``logged`` keeps it out of the log (a row SQLite would
        have deleted), though it is still numbered and published."""
        ...

    def events_after(self, user_id: int, after: int, upto: int, limit: int) -> list[EventRecord]:
        """Events in ``(after, upto]`` for the user or a chat they belong to, oldest first."""
        ...

    def event_bounds(self) -> tuple[int, int]:
        """``(oldest kept seq, newest seq ever)``; the oldest is newest + 1 when none are kept."""
        ...

    def event_max(self) -> int:
        """The newest sequence number handed out (0 if none): every seq up to it is committed.

        On PostgreSQL the counter row, so a seq at or below it that has no row was deleted,
        never "not yet committed" (what a node's ordered window relies on to repair gaps).
        """
        ...

    def events_range(self, after: int, upto: int, limit: int) -> list[EventRecord]:
        """Events of every audience in ``(after, upto]``, oldest first, with their audience
        (``chat_id`` or ``user_id``, and ``except_late``): what a node missed on the bus."""
        ...

    def prune_events(self, keep: int) -> int:
        """Delete all but the newest ``keep`` events; how many went."""
        ...


class Tx(
    UnitOfWork,
    AccountQueries,
    ChatQueries,
    MessageQueries,
    ContactQueries,
    LinkQueries,
    EventQueries,
    Protocol,
):
    """Queries available to a unit of work (see :class:`~.sqlite.SqliteTx` for SQLite).

    The other domains keep their queries in their own modules (``files``, ``moderation``,
    ``retention``, ``scheduler``, ``admin``) on the same connection.
    """

    @property
    def dialect(self) -> Literal["sqlite", "postgresql"]:
        """Which SQL the connection speaks (for the dialect hooks of query modules)."""
        ...

    def message_count(self) -> int:
        """Messages and comments stored."""
        ...

    def nested(self, unit: Callable[[Tx], T]) -> T:
        """Run ``unit`` in a savepoint of this unit of work: if it raises, its changes
        (rows, events, after-commit callbacks) are undone and the exception reaches the
        caller, whose own changes stay (a scheduled send that fails still records why)."""
        ...

    def try_job_lock(self, job: str) -> bool:
        """Take the lock of a singleton job (``retention``, ``files``, ``scheduler``) until
        this write unit's transaction ends; False if another server node holds it, and the
        pass is skipped. PostgreSQL: ``pg_try_advisory_xact_lock`` on the job and schema;
        SQLite: always True (one process writes the file)."""
        ...

    def database_bytes(self) -> int:
        """Bytes the database takes: SQLite's file with its WAL, or the tables and indexes
        of the PostgreSQL schema the store uses."""
        ...


class Store(Protocol):
    """A database: opened once, units of work run against it, closed at shutdown."""

    errors: tuple[type[Exception], ...]
    """What this store raises when the database itself fails (not a domain error)."""
    unavailable: tuple[type[Exception], ...]
    """What it raises when the database does not answer now (connection lost, locked,
    timed out): nothing was stored, and the same request may succeed later."""

    async def open(self) -> None:
        """Connect and bring the schema up to date."""
        ...

    async def close(self) -> None:
        """Commit what is pending and disconnect."""
        ...

    async def read(self, unit: Callable[[Tx], T]) -> T:
        """Run a read-only unit of work."""
        ...

    async def write(self, unit: Callable[[Tx], T]) -> T:
        """Run a unit of work atomically; return only once it is durable."""
        ...

    async def sync(self) -> None:
        """Wait until every write so far is durable."""
        ...
