"""Services: the domain, with no HTTP in it.

Methods take the acting user (:class:`Actor`) and protocol models, return protocol
models, and raise :class:`~messenger_protocol.ApiError`. Extension points for
later services: :attr:`MessageService.send_checks` (moderation, rate limits),
:attr:`MessageService.attach_files` / :attr:`MessageService.load_attachments`
(files), and
:meth:`MessageService.post` as the one way to post (used by the scheduler).
"""

from .accounts import AccountService, token_hash
from .actor import Actor, forbidden, require_member, require_owner
from .chats import ChatService
from .contacts import ContactService
from .events import EventService, StreamInfo
from .messages import AttachFiles, Draft, LoadAttachments, MessageService, SendCheck
from .status import StatusService
from .throttle import LoginThrottle

__all__ = [
    "AccountService",
    "Actor",
    "AttachFiles",
    "ChatService",
    "ContactService",
    "Draft",
    "EventService",
    "LoadAttachments",
    "LoginThrottle",
    "MessageService",
    "SendCheck",
    "StatusService",
    "StreamInfo",
    "forbidden",
    "require_member",
    "require_owner",
    "token_hash",
]
