"""messenger client: the async library that bots, scripts, tests and the UIs use.

For example::

    from messenger_client import Client

    async with Client("http://127.0.0.1:8000") as client:
        session = await client.login("alice", "secret1")
        await client.send(GENERAL_CHAT_ID, "hello")
        async for item in client.events(session.last_event_id):
            ...
"""

from messenger_protocol import ApiError, MessengerError

from .api import DEFAULT_SERVER, Client, Progress, ServerUnavailable, new_client_id
from .events import ConnectionState, EventStream, StreamItem

__all__ = [
    "DEFAULT_SERVER",
    "ApiError",
    "Client",
    "ConnectionState",
    "EventStream",
    "MessengerError",
    "Progress",
    "ServerUnavailable",
    "StreamItem",
    "new_client_id",
]
