"""Limits and defaults that the server and every client agree on (SPEC §5).

Each value here is the default; the server can be configured to other values
(flags, ``MESSENGER_*`` env vars, TOML), and reports the effective ones to admins.
"""

from __future__ import annotations

from typing import Final

DEFAULT_HOST: Final = "127.0.0.1"
"""Address the server binds to by default."""
DEFAULT_PORT: Final = 8000
"""TCP port the server binds to by default."""

HISTORY_ON_CONNECT: Final = 20
"""Messages of the general chat a client gets right after it connects."""
HISTORY_PAGE_MAX: Final = 200
"""Largest page of history one request may ask for."""
UNREAD_PAGE_MAX: Final = 100
"""Most unread messages of one chat one ``/unread`` request returns (the count is exact)."""

MESSAGE_TTL_SECONDS: Final = 3600
"""A delivered message disappears this long after delivery (0 = keep forever)."""
MESSAGE_MAX_AGE_SECONDS: Final = 30 * 24 * 3600
"""A message nobody fetched is deleted after this long anyway (disappearing mode only)."""

RATE_LIMIT_MESSAGES: Final = 20
"""Messages a user may post to the general chat per window."""
RATE_LIMIT_WINDOW_SECONDS: Final = 3600
"""Length of the fixed rate-limit window."""

COMPLAINTS_TO_BAN: Final = 3
"""Distinct users whose complaints ban the target."""
BAN_SECONDS: Final = 4 * 3600
"""How long an automatic ban lasts."""

MAX_FILE_BYTES: Final = 5 * 1024 * 1024
"""Largest file upload: 5,242,880 bytes."""
MAX_FILE_NAME: Final = 255
"""Longest display name of an uploaded file (characters, after sanitising)."""
USER_QUOTA_BYTES: Final = 100 * 1024 * 1024
"""Total bytes of files one user may have stored."""

MAX_MESSAGE_TEXT: Final = 4000
"""Longest message text, in characters."""
TEXT_PATTERN: Final = r"^[^\x00]*$"
"""Message text may hold any character but NUL (U+0000), which PostgreSQL cannot store."""
MAX_ATTACHMENTS: Final = 10
MAX_NAMED_MENTIONS: Final = 50
"""Logins an encrypted message may name as mentioned (sender-chosen metadata)."""
"""Most files one message may carry."""
MAX_REACTION: Final = 16
"""Longest reaction: a short Unicode sequence (an emoji with its modifiers), in code points."""
REACTION_PATTERN: Final = (
    r"^[^\x00-\x20\x7f-\xa0\xad\u1680\u180e\u2000-\u200c\u200e-\u200f\u2028-\u202f"
    r"\u205f-\u2064\u2066-\u206f\u3000\ufeff\ufff9-\ufffb]{1,16}$"
)
"""What a reaction may hold: 1 to 16 code points, none a space, a control or an invisible
format character (the zero-width joiner of emoji sequences, U+200D, is allowed)."""
MAX_REACTIONS_PER_MESSAGE: Final = 20
"""Most distinct reactions one message may carry (each user may add each once)."""
QUOTE_MAX: Final = 100
"""Longest excerpt of a replied-to message (its first line) carried in ``reply_to``."""
PINS_MAX: Final = 100
"""Most messages pinned in one chat."""
MAX_REQUEST_HEAD: Final = 16 * 1024
"""Largest request line + headers, in bytes."""
MAX_JSON_BODY: Final = 64 * 1024
"""Largest JSON request body, in bytes."""
IDLE_UNAUTHENTICATED_SECONDS: Final = 10.0
"""An unauthenticated connection that sends nothing for this long is closed."""
KEEPALIVE_IDLE_SECONDS: Final = 120.0
"""An authenticated keep-alive connection idle for this long is closed."""
SSE_HEARTBEAT_SECONDS: Final = 15.0
"""Interval of comment heartbeats on an idle event stream."""

MAX_INT: Final = 2**63 - 1
"""Largest integer any request may carry (ids, counts, seconds): SQLite's INTEGER range."""
ID_PATTERN: Final = r"^[0-9]{1,19}$"
"""Text form of an id in a path or the ``Last-Event-ID`` header (value at most :data:`MAX_INT`)."""

LOGIN_PATTERN: Final = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,31}$"
"""Allowed logins: 1-32 characters, letters, digits, ``_ . -``, not starting with ``.``/``-``."""
MAX_LOGIN: Final = 32
"""Longest login."""
MIN_PASSWORD: Final = 6
"""Shortest password."""
MAX_PASSWORD: Final = 256
"""Longest password."""
CHAT_NAME_PATTERN: Final = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,31}$"
"""Group chat names: the same alphabet as logins, 1-32 characters."""
MAX_REASON: Final = 500
"""Longest complaint reason."""
MAX_DEVICE: Final = 64
"""Longest device label a client may give at login."""
CLIENT_ID_MAX: Final = 64
"""Longest client-supplied idempotency id of a send."""

SCHEDULE_MAX_AHEAD_SECONDS: Final = 365 * 24 * 3600
"""How far in the future a message may be scheduled."""
SCHEDULED_MAX_PENDING: Final = 100
"""Most pending scheduled messages per user."""

LOGIN_FAILURES_MAX: Final = 5
"""Failed logins to one login from one address per window before that pair is throttled."""
LOGIN_FAILURES_PER_ADDRESS: Final = 20
"""Failed logins from one address (any logins) per window before the address is throttled."""
LOGIN_FAILURES_WINDOW_SECONDS: Final = 300
"""Window of the login-failure throttle."""
LOGIN_HASH_CONCURRENCY: Final = 1
"""Password hashes (argon2, ~0.3 CPU-s each) computed at once; further logins wait their
turn. One leaves the other cores to chat traffic; raise it on a machine with many cores."""
SESSION_IDLE_SECONDS: Final = 30 * 24 * 3600
"""A session unused this long expires."""
SESSION_MAX_AGE_SECONDS: Final = 365 * 24 * 3600
"""A session this old expires however much it is used."""
MAX_CONNECTIONS_PER_IP: Final = 256
"""Simultaneous TCP connections one IP address may hold."""
MAX_CONNECTIONS: Final = 10_000
"""Simultaneous TCP connections the whole server holds (503 beyond; lowered to fit the
process's file-descriptor limit)."""
RESERVED_CONNECTIONS: Final = 100
"""The last connections under :data:`MAX_CONNECTIONS`, kept for ``/healthz`` and
requests with a valid token: an anonymous flood cannot take them."""
BODY_TIMEOUT_SECONDS: Final = 30.0
"""Every request body gets this long in total, plus its size at :data:`BODY_MIN_RATE`."""
BODY_MIN_RATE: Final = 8 * 1024
"""Slowest average upload speed (bytes/s) the body deadline allows for: a 5 MiB file
gets 30 s + 640 s; one byte every 4 s is cut after about 30 s."""

EVENT_QUEUE_MAX_BYTES: Final = 1024 * 1024
"""Bytes of undelivered events a stream may buffer before it is cut (it resumes by id)."""
EVENT_RETENTION: Final = 100_000
"""Events the server keeps for resume; a client further behind gets a ``reset`` event."""

SEARCH_QUERY_MAX: Final = 200
"""Longest search query, in characters."""
SEARCH_TERMS_MAX: Final = 16
"""Most words, phrases and operators one search query may hold."""
SEARCH_PREFIX_MIN: Final = 3
"""Shortest last word of a search query that matches as a prefix (``noo`` finds ``noon``);
a shorter one matches only itself: over 1,000,000 messages (``bench/search.py``) a
two-letter prefix took 82 ms p99 on SQLite, past the 50 ms target, three letters 21 ms."""
SEARCH_PAGE_MAX: Final = 50
"""Largest page of search results (and of ``/mentions``) one request may ask for."""
SEARCH_PAGE_DEFAULT: Final = 20
"""Search results (and mentions) per page unless asked otherwise."""
SNIPPET_CHARS: Final = 160
"""Longest snippet of a search hit, in characters (an ellipsis marks a cut)."""
SEEN_BY_MAX_MEMBERS: Final = 50
"""Read receipts ("seen by") are given for chats of at most this many members."""
TYPING_INTERVAL_SECONDS: Final = 3.0
"""One typing notice per chat per user per this long; more within it are dropped."""
TYPING_TTL_SECONDS: Final = 6.0
"""A typing notice shows this long unless another one renews it."""

# end-to-end encryption (issue 14): the key directory and to-device messages
KEY_PATTERN: Final = r"^[A-Za-z0-9+/]{43}$"
"""A Curve25519 or Ed25519 public key: 32 bytes as unpadded base64 (43 characters)."""
SIGNATURE_PATTERN: Final = r"^[A-Za-z0-9+/]{86}$"
"""An Ed25519 signature: 64 bytes as unpadded base64 (86 characters)."""
KEY_ID_PATTERN: Final = r"^[A-Za-z0-9+/]{1,32}$"
"""The id of a one-time key, as the device's Olm account names it (base64 text)."""
DEVICE_ID_PATTERN: Final = r"^[A-Za-z0-9_\-]{1,32}$"
"""A device id the client chooses once and keeps in its data dir."""
CIPHERTEXT_PATTERN: Final = r"^[A-Za-z0-9+/]+={0,2}$"
"""Base64 ciphertext (padding optional)."""
MAX_DEVICES_PER_USER: Final = 20
"""Devices with keys one user may have in the key directory."""
MAX_ONE_TIME_KEYS_PER_UPLOAD: Final = 50
"""One-time keys one upload may carry (an Olm account holds 50 unpublished at most)."""
MAX_ONE_TIME_KEYS_STORED: Final = 100
"""Unclaimed one-time keys the server keeps per device; an upload past it is refused."""
MAX_KEY_QUERY_USERS: Final = 100
"""Logins one key query may name."""
MAX_KEY_CLAIM_DEVICES: Final = 100
"""Devices one claim may ask a one-time key of."""
MAX_TO_DEVICE_BATCH: Final = 50
"""To-device messages one send may carry."""
MAX_TO_DEVICE_CIPHERTEXT: Final = 4096
"""Longest ciphertext of one to-device message, in base64 characters."""
MAX_TO_DEVICE_PENDING: Final = 1000
"""Unacknowledged to-device messages one device may have waiting; a send past it is refused."""
MAX_ENCRYPTED_CIPHERTEXT: Final = 32768
"""Longest Megolm ciphertext of one encrypted message, in base64 characters."""
