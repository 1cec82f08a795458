"""PostgreSQL reads use psycopg's prepared statements (planned once for all parameters
when that is no dearer: planning the chat list at every GET /chats cost more than running
it), except searches, planned with their words at every run (a plan for all words cannot
see how selective a tsquery is)."""

from __future__ import annotations

from messenger_protocol import GENERAL_CHAT_ID, parse_search
from messenger_server.storage.postgres import PostgresStore
from messenger_server.storage.search import SearchFilter, search_queries
from messenger_server.storage.sql import connection
from tests.support.postgres import PgDatabase

RUNS = 15
"""psycopg prepares a statement at its 6th run; PostgreSQL weighs a plan for all
parameters after 5 runs of a prepared one."""


async def test_the_chat_list_is_prepared_a_search_never(pg_database: PgDatabase) -> None:
    store = PostgresStore(pg_database.new_store(), read_pool=1)  # one session to look at
    await store.open()
    try:
        user = await store.write(lambda tx: tx.insert_user("alice", "h", 1.0, False))
        assert user is not None
        await store.write(
            lambda tx: tx.insert_message(GENERAL_CHAT_ID, user, "hello", 2.0, None, None, None)
        )
        found = SearchFilter(parse_search("hello"))
        for _ in range(RUNS):
            hits = await store.read(lambda tx: search_queries(tx).search(user, found, None, 10))
            assert [m.text for m in hits] == ["hello"]
            chats = await store.read(lambda tx: tx.chat_views_of(user))
            assert [c.id for c in chats] == [GENERAL_CHAT_ID]
        prepared = await store.read(
            lambda tx: [
                (str(r[0]), int(r[1]))
                for r in connection(tx).execute(
                    "SELECT statement, generic_plans FROM pg_prepared_statements"
                )
            ]
        )
    finally:
        await store.close()
    assert next(n for s, n in prepared if "FROM members mem JOIN chats c" in s) > 0
    assert not [s for s, _ in prepared if "tsv @@" in s]
