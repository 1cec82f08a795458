"""Full-text search over the messages a user may see.

A search only ever looks at the chats the user is a member of (the query itself says
so, in storage), and what it finds goes through :class:`~.retention.Visibility` like any
other read, so a message that disappeared for the user is never a hit; a deleted one is
no longer in the index. The query syntax is :func:`messenger_protocol.parse_search`.
"""

from __future__ import annotations

import logging

import msgspec

from messenger_protocol import (
    ApiError,
    ErrorCode,
    Message,
    ParsedSearch,
    SearchHit,
    SearchQuery,
    SearchResults,
    parse_search,
    snippet,
)

from ..storage import Store, Tx
from ..storage.search import SearchFilter, search_queries
from .actor import Actor, chat_names
from .messages import Attachments
from .retention import Visibility

__all__ = ["SearchService"]

log = logging.getLogger(__name__)


class SearchService:
    """``GET /search``: parse, resolve names, query the index, filter, snippet."""

    def __init__(
        self,
        store: Store,
        *,
        attachments: Attachments | None = None,
        visibility: Visibility | None = None,
    ) -> None:
        self.store = store
        self.attachments = attachments
        self.visibility = visibility

    async def search(self, actor: Actor, query: SearchQuery) -> SearchResults:
        """A page of hits, newest first; ``next_before`` asks for the next page."""
        parsed = parse_search(query.q)

        def unit(tx: Tx) -> tuple[list[Message], dict[int, str]]:
            found = self._filter(tx, actor.user_id, parsed)
            rows = search_queries(tx).search(actor.user_id, found, query.before, query.limit + 1)
            names = chat_names(tx, actor.user_id, {m.chat_id for m in rows})
            if self.attachments is not None and rows:
                files = self.attachments.load(tx, [m.id for m in rows])
                rows = [
                    msgspec.structs.replace(m, attachments=files[m.id]) if m.id in files else m
                    for m in rows
                ]
            return rows, names

        rows, names = await self.store.read(unit)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        alive = rows
        if self.visibility is not None:
            alive = await self.visibility.visible(actor.user_id, rows)
        hits = [
            SearchHit(message=m, chat_name=names[m.chat_id], snippet=snippet(m.text, parsed))
            for m in alive
        ]
        log.debug("search by %s: %d hits", actor.login, len(hits))
        return SearchResults(hits=hits, has_more=more, next_before=rows[-1].id if more else None)

    @staticmethod
    def _filter(tx: Tx, user_id: int, parsed: ParsedSearch) -> SearchFilter:
        chat_id: int | None = None
        if parsed.in_chat is not None:
            wanted = parsed.in_chat.lower()
            for candidate in tx.chat_ids_of(user_id):
                chat = tx.chat(candidate)
                assert chat is not None
                name = tx.chat_view(chat, user_id).name if chat.kind == "direct" else chat.name
                if name.lower() == wanted:
                    chat_id = candidate
                    break
            else:
                # the same answer for a chat that does not exist and one you are not in
                raise ApiError(
                    ErrorCode.INVALID, f"in: you are in no chat called {parsed.in_chat[:40]!r}"
                )
        author_id: int | None = None
        if parsed.from_login is not None:
            user = tx.user_by_login(parsed.from_login)
            if user is None:
                raise ApiError(ErrorCode.INVALID, f"from: there is no user {parsed.from_login!r}")
            author_id = user.id
        return SearchFilter(parsed, chat_id, author_id)
