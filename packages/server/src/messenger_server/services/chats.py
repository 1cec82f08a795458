"""Chats: the general chat, private conversations, private groups with invites and links."""

from __future__ import annotations

import logging
import secrets

from messenger_protocol import (
    GENERAL_CHAT_ID,
    ApiError,
    Chat,
    ChatLeft,
    ChatList,
    ChatUpdated,
    CreateChat,
    CreateLink,
    ErrorCode,
    InviteLink,
    InvitePage,
    InviteUser,
    JoinChat,
    JoinDecided,
    JoinRequest,
    JoinRequested,
    JoinRequestList,
    JoinResult,
    Members,
    OpenDirect,
    OwnedChat,
)

from ..clock import Clock
from ..storage import ChatRecord, LinkRecord, Store, Tx, UserRecord
from .accounts import AccountService
from .actor import Actor, forbidden, require_member, require_owner
from .events import EventService
from .retention import Visibility

__all__ = ["INVITE_NOT_VALID", "ChatService"]

log = logging.getLogger(__name__)

_RESERVED_NAMES = {"general"}

INVITE_NOT_VALID = (
    "this invite link is not valid (unknown, revoked, expired or used up);"
    " ask the chat's owner for a new one"
)
"""The one answer to every unusable invite key: no reason tells an outsider more."""


def _user(tx: Tx, login: str) -> UserRecord:
    user = tx.user_by_login(login)
    if user is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"no such user: {login}")
    return user


class ChatService:
    """Chat membership and everything an owner does with a group."""

    def __init__(
        self,
        store: Store,
        events: EventService,
        accounts: AccountService,
        clock: Clock,
        *,
        base_url: str,
        visibility: Visibility | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.accounts = accounts
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self.visibility = visibility
        """Disappearing messages: unread counts leave out what is gone for the reader."""

    # --- views ----------------------------------------------------------------

    async def chats(self, actor: Actor) -> ChatList:
        """The user's chats with unread counts, general first, then newest activity."""

        def unit(tx: Tx) -> ChatList:
            views = tx.chat_views_of(actor.user_id)
            views.sort(key=lambda c: (c.id != GENERAL_CHAT_ID, -(c.last_message_at or 0), c.id))
            if self.visibility is not None:
                # in the same read: on PostgreSQL each read is a trip to a reader thread
                views = self.visibility.unread_alive_in(tx, actor.user_id, views)
            return ChatList(chats=views)

        return await self.store.read(unit)

    async def chat(self, actor: Actor, chat_id: int) -> Chat:
        """One chat of the user."""

        def unit(tx: Tx) -> Chat:
            chat, _ = require_member(tx, chat_id, actor.user_id)
            return tx.chat_view(chat, actor.user_id)

        view = await self.store.read(unit)
        if self.visibility is None:
            return view
        return await self.visibility.unread_alive(actor.user_id, view)

    async def members(self, actor: Actor, chat_id: int) -> Members:
        """The members of a chat the user belongs to."""
        return await self.store.read(lambda tx: self._members(tx, chat_id, actor.user_id))

    def _members(self, tx: Tx, chat_id: int, user_id: int) -> Members:
        require_member(tx, chat_id, user_id)
        return Members(
            chat_id=chat_id, members=[self.accounts.user_view(u) for u in tx.members(chat_id)]
        )

    def _announce(self, tx: Tx, chat_id: int, user_ids: list[int] | None = None) -> None:
        """Tell members (each with their own view) that a chat changed."""
        chat = tx.chat(chat_id)
        assert chat is not None
        for user_id in tx.member_ids(chat_id) if user_ids is None else user_ids:
            self.events.emit(tx, ChatUpdated(chat=tx.chat_view(chat, user_id)), user_id=user_id)

    # --- private conversations ------------------------------------------------

    async def open_direct(self, actor: Actor, body: OpenDirect) -> Chat:
        """Find or create the private conversation with a user (``not_found`` if none)."""
        now = self.clock.now()

        def unit(tx: Tx) -> Chat:
            peer = _user(tx, body.login)
            low, high = sorted((actor.user_id, peer.id))
            key = f"{low}:{high}"
            chat = tx.direct_chat(key)
            if chat is None:
                chat_id = tx.insert_chat("direct", f"{low}:{high}", None, key, now)
                assert chat_id is not None
                for user_id in {actor.user_id, peer.id}:
                    tx.add_member(chat_id, user_id, now)
                self._announce(tx, chat_id)
                chat = tx.chat(chat_id)
                assert chat is not None
            return tx.chat_view(chat, actor.user_id)

        return await self.store.write(unit)

    # --- groups -----------------------------------------------------------------

    async def create(self, actor: Actor, body: CreateChat) -> Chat:
        """Create a private group owned by the user; ``conflict`` if the name is taken."""
        if body.name.lower() in _RESERVED_NAMES:
            raise ApiError(ErrorCode.CONFLICT, f"{body.name!r} is reserved")
        now = self.clock.now()

        def unit(tx: Tx) -> Chat:
            chat_id = tx.insert_chat(
                "group", body.name, actor.user_id, None, now, encrypted=body.encrypted
            )
            if chat_id is None:
                raise ApiError(ErrorCode.CONFLICT, f"a chat named {body.name!r} exists")
            tx.add_member(chat_id, actor.user_id, now)
            self._announce(tx, chat_id)
            chat = tx.chat(chat_id)
            assert chat is not None
            return tx.chat_view(chat, actor.user_id)

        chat = await self.store.write(unit)
        log.info("%s created chat %s (%d)", actor.login, chat.name, chat.id)
        return chat

    def _admit(
        self, tx: Tx, chat: ChatRecord, user: UserRecord, now: float, how: str = "invited"
    ) -> None:
        """Make a user a member (read up to now) and tell the chat; a pending request of
        theirs is settled as ``how`` (approved, or invited when the owner added them)."""
        if tx.decide_join_request(chat.id, user.id, how):
            self._decided(tx, chat, user, approved=True)
        if tx.add_member(chat.id, user.id, now, chat.last_message_id):
            self._announce(tx, chat.id)

    def _decided(self, tx: Tx, chat: ChatRecord, user: UserRecord, *, approved: bool) -> None:
        """Tell the requester, and every device of the owner (the one who may act on the
        request: a device still showing it drops it), that a join request is settled."""
        decided = JoinDecided(
            chat_id=chat.id, chat_name=chat.name, approved=approved, login=user.login
        )
        self.events.emit(tx, decided, user_id=user.id)
        if chat.owner_id is not None and chat.owner_id != user.id:
            self.events.emit(tx, decided, user_id=chat.owner_id)

    async def invite(self, actor: Actor, chat_id: int, body: InviteUser) -> Members:
        """The owner adds a user (who may or may not have asked to join)."""
        now = self.clock.now()

        def unit(tx: Tx) -> Members:
            chat = require_owner(tx, chat_id, actor.user_id)
            self._admit(tx, chat, _user(tx, body.login), now)
            return self._members(tx, chat_id, actor.user_id)

        return await self.store.write(unit)

    async def remove_member(self, actor: Actor, chat_id: int, login: str) -> None:
        """The owner removes a member, or a member leaves.

        The owner cannot leave while others remain (``conflict``); as the last
        member they may. Nobody leaves the general chat or a private conversation.
        """

        def unit(tx: Tx) -> None:
            chat, _ = require_member(tx, chat_id, actor.user_id)
            if chat.kind != "group":
                raise forbidden("only group chats can be left")
            leaving = login.lower() == actor.login.lower()
            if not leaving and chat.owner_id != actor.user_id:
                raise forbidden("only the owner of this chat may remove members")
            user = _user(tx, login)
            if tx.last_read(chat_id, user.id) is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"{login} is not a member of this chat")
            if user.id == chat.owner_id and tx.member_count(chat_id) > 1:
                raise ApiError(
                    ErrorCode.CONFLICT, "the owner cannot leave while others are in the chat"
                )
            tx.remove_member(chat_id, user.id)
            reason = "left" if leaving else "removed by the owner"
            self.events.emit(tx, ChatLeft(chat_id=chat_id, reason=reason), user_id=user.id)
            self._announce(tx, chat_id)

        await self.store.write(unit)

    # --- links ------------------------------------------------------------------

    def link_view(self, link: LinkRecord, chat_name: str) -> InviteLink:
        """The public view of an invite key with its shareable link."""
        return InviteLink(
            key=link.key,
            chat_id=link.chat_id,
            chat_name=chat_name,
            link=f"{self.base_url}/join/{chat_name}?key={link.key}",
            created_at=link.created_at,
            expires_at=link.expires_at,
            max_uses=link.max_uses,
            uses=link.uses,
        )

    async def create_link(self, actor: Actor, chat_id: int, body: CreateLink) -> InviteLink:
        """The owner creates an invite key, optionally expiring or limited in uses."""
        now = self.clock.now()
        expires_at = None if body.expires_in is None else now + body.expires_in

        def unit(tx: Tx) -> InviteLink:
            chat = require_owner(tx, chat_id, actor.user_id)
            link = tx.insert_link(
                secrets.token_urlsafe(16), chat_id, actor.user_id, now, expires_at, body.max_uses
            )
            return self.link_view(link, chat.name)

        return await self.store.write(unit)

    async def revoke_link(self, actor: Actor, chat_id: int, key: str) -> None:
        """The owner revokes an invite key."""
        now = self.clock.now()

        def unit(tx: Tx) -> None:
            require_owner(tx, chat_id, actor.user_id)
            link = tx.link(key)
            if link is None or link.chat_id != chat_id:
                raise ApiError(ErrorCode.NOT_FOUND, "no such invite key")
            tx.revoke_link(key, now)

        await self.store.write(unit)

    async def invite_page(self, chat_name: str, key: str | None) -> InvitePage:
        """What an invite link's URL tells whoever holds it: the chat and how to join.

        Anyone may ask (no login); a link that is not usable is ``forbidden`` with one
        message whatever the reason, so the URL tells nobody more than they already have.
        """
        now = self.clock.now()

        def unit(tx: Tx) -> InvitePage:
            chat = tx.group_by_name(chat_name)
            link = tx.link(key) if key else None
            if chat is None or link is None or link.chat_id != chat.id or not link.usable(now):
                raise forbidden(INVITE_NOT_VALID)
            view = self.link_view(link, chat.name)
            left = None if link.max_uses is None else link.max_uses - link.uses
            return InvitePage(
                chat_name=chat.name,
                link=view.link,
                join_command=f"/join {view.link}",
                expires_at=link.expires_at,
                uses_left=left,
            )

        return await self.store.read(unit)

    def owned_chat(self, tx: Tx, chat: Chat, now: float) -> OwnedChat:
        """A group the user owns with its usable keys and pending requests."""
        return OwnedChat(
            chat=chat,
            links=[self.link_view(k, chat.name) for k in tx.links(chat.id) if k.usable(now)],
            pending_requests=self._requests(tx, chat.id, chat.name),
        )

    # --- joining ----------------------------------------------------------------

    async def join(self, actor: Actor, body: JoinChat) -> JoinResult:
        """Ask to join a group: with a valid key a request for approval, else the owner is asked.

        A bad, expired, revoked or used-up key is ``forbidden``; nobody gets in
        without the owner: only an invite or an approved request admits.
        """
        now = self.clock.now()

        def unit(tx: Tx) -> JoinResult:
            chat = (
                tx.chat(GENERAL_CHAT_ID)
                if body.name.lower() == "general"
                else tx.group_by_name(body.name)
            )
            if chat is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"no such chat: {body.name}")
            if tx.last_read(chat.id, actor.user_id) is not None:
                return JoinResult(state="already_member", chat=tx.chat_view(chat, actor.user_id))
            with_key = body.key is not None
            if body.key is not None:
                link = tx.link(body.key)
                if link is None or link.chat_id != chat.id or not link.usable(now):
                    raise forbidden(INVITE_NOT_VALID)
                tx.use_link(link.key)
            tx.upsert_join_request(chat.id, actor.user_id, now, with_key)
            request = JoinRequest(
                chat_id=chat.id,
                chat_name=chat.name,
                login=actor.login,
                created_at=now,
                with_key=with_key,
            )
            if chat.owner_id is not None:
                self.events.emit(tx, JoinRequested(request=request), user_id=chat.owner_id)
            return JoinResult(state="requested" if with_key else "asked_owner")

        return await self.store.write(unit)

    def _requests(self, tx: Tx, chat_id: int, chat_name: str) -> list[JoinRequest]:
        return [
            JoinRequest(
                chat_id=chat_id, chat_name=chat_name, login=login, created_at=at, with_key=keyed
            )
            for login, at, keyed in tx.join_requests(chat_id)
        ]

    async def join_requests(self, actor: Actor, chat_id: int) -> JoinRequestList:
        """Pending requests of a group (owner only)."""

        def unit(tx: Tx) -> JoinRequestList:
            chat = require_owner(tx, chat_id, actor.user_id)
            return JoinRequestList(requests=self._requests(tx, chat_id, chat.name))

        return await self.store.read(unit)

    async def approve(self, actor: Actor, chat_id: int, login: str) -> Members:
        """The owner admits a user who asked to join (``not_found`` without a request)."""
        now = self.clock.now()

        def unit(tx: Tx) -> Members:
            chat = require_owner(tx, chat_id, actor.user_id)
            user = _user(tx, login)
            if tx.join_request(chat_id, user.id) is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"{login} has not asked to join")
            self._admit(tx, chat, user, now, "approved")  # the decision's event too
            return self._members(tx, chat_id, actor.user_id)

        return await self.store.write(unit)

    async def reject(self, actor: Actor, chat_id: int, login: str) -> None:
        """The owner turns a join request down; the requester is told."""

        def unit(tx: Tx) -> None:
            chat = require_owner(tx, chat_id, actor.user_id)
            user = _user(tx, login)
            if not tx.decide_join_request(chat_id, user.id, "rejected"):
                raise ApiError(ErrorCode.NOT_FOUND, f"{login} has not asked to join")
            self._decided(tx, chat, user, approved=False)

        await self.store.write(unit)
