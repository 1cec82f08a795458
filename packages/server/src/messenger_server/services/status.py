"""``/status`` (SPEC F7): connections, private-message counts, chats, login history."""

from __future__ import annotations

from messenger_protocol import Chat, Connection, OwnedChat, Status

from ..clock import Clock
from ..storage import SessionRecord, Store, Tx
from .accounts import AccountService, banned_until
from .actor import Actor
from .chats import ChatService
from .events import EventService, StreamInfo
from .presence import PresenceService

__all__ = ["LOGIN_HISTORY", "StatusService"]

LOGIN_HISTORY = 20
"""Login attempts ``/status`` shows, newest first."""


class StatusService:
    """Builds what ``/status`` shows."""

    def __init__(
        self,
        store: Store,
        accounts: AccountService,
        chats: ChatService,
        events: EventService,
        presence: PresenceService,
        clock: Clock,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.chats = chats
        self.events = events
        """This node's live streams."""
        self.presence = presence
        """The live streams on the other nodes."""
        self.clock = clock

    def _connections(
        self, actor: Actor, sessions: list[SessionRecord], streams: list[StreamInfo]
    ) -> list[Connection]:
        """One row per live event stream of a session, and the session making this request
        when it has no stream (a client with a stream is listed once, not twice)."""
        out: list[Connection] = []
        for session in sessions:
            current = session.id == actor.session_id
            live = [s for s in streams if s.session_id == session.id]
            if current and not live:
                out.append(
                    Connection(
                        session_id=session.id,
                        address=actor.address,
                        device=session.device,
                        connected_at=session.created_at,
                        streaming=False,
                        current=True,
                    )
                )
            out.extend(
                Connection(
                    session_id=session.id,
                    address=s.peer,
                    device=session.device,
                    connected_at=s.connected_at,
                    streaming=True,
                    current=current,
                )
                for s in live
            )
        return out

    async def status(self, actor: Actor) -> Status:
        """The acting user's status."""
        now = self.clock.now()
        streams = list(self.events.streams.get(actor.user_id, []))

        def unit(tx: Tx) -> Status:
            user = tx.user_by_id(actor.user_id)
            assert user is not None
            sent, received = tx.private_counts(actor.user_id)
            owned: list[OwnedChat] = []
            member: list[Chat] = []
            for chat_id in tx.chat_ids_of(actor.user_id):
                chat = tx.chat(chat_id)
                assert chat is not None
                view = tx.chat_view(chat, actor.user_id)
                member.append(view)
                if chat.kind == "group" and chat.owner_id == actor.user_id:
                    owned.append(self.chats.owned_chat(tx, view, now))
            until = banned_until(tx, actor.user_id, now)
            every = streams + self.presence.streams_elsewhere(tx, actor.user_id)
            return Status(
                user=self.accounts.user_view(user, until),
                banned_until=until,
                connections=self._connections(actor, tx.live_sessions(actor.user_id), every),
                private_sent=sent,
                private_received=received,
                owned_chats=owned,
                member_chats=member,
                logins=tx.recent_logins(actor.user_id, LOGIN_HISTORY),
                session_expires_at=self.accounts.session_expires_at(actor.session_id),
            )

        return await self.store.read(unit)
