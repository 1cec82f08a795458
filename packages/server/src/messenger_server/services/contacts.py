"""A user's contact list."""

from __future__ import annotations

from messenger_protocol import AddContact, ApiError, Contact, ContactList, ErrorCode

from ..clock import Clock
from ..storage import Store, Tx, UserRecord
from .accounts import AccountService
from .actor import Actor

__all__ = ["ContactService"]


class ContactService:
    """List, add and remove contacts (with their presence)."""

    def __init__(self, store: Store, accounts: AccountService, clock: Clock) -> None:
        self.store = store
        self.accounts = accounts
        self.clock = clock

    def _contact(self, user: UserRecord, added_at: float) -> Contact:
        view = self.accounts.user_view(user)
        return Contact(
            login=view.login, online=view.online, last_seen=view.last_seen, added_at=added_at
        )

    async def contacts(self, actor: Actor) -> ContactList:
        """The user's contacts, by login."""
        rows = await self.store.read(lambda tx: tx.contacts(actor.user_id))
        return ContactList(contacts=[self._contact(u, at) for u, at in rows])

    async def add(self, actor: Actor, body: AddContact) -> Contact:
        """Add a user to the contacts (again is fine); ``not_found`` if there is no such user."""
        now = self.clock.now()

        def unit(tx: Tx) -> Contact:
            user = tx.user_by_login(body.login)
            if user is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"no such user: {body.login}")
            return self._contact(user, tx.add_contact(actor.user_id, user.id, now))

        return await self.store.write(unit)

    async def remove(self, actor: Actor, login: str) -> None:
        """Remove a contact (``not_found`` if it is not one)."""

        def unit(tx: Tx) -> None:
            user = tx.user_by_login(login)
            if user is None or not tx.remove_contact(actor.user_id, user.id):
                raise ApiError(ErrorCode.NOT_FOUND, f"{login} is not in your contacts")

        await self.store.write(unit)
