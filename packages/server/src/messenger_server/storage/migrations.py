"""The schema, as an ordered list of migrations.

``PRAGMA user_version`` holds how many of :data:`MIGRATIONS` a database has run.
Each migration runs in its own transaction together with the version bump, so a
crash never leaves half a migration behind. To change the schema, append a new
script; never edit one that has shipped.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

_INITIAL = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    login TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    last_seen REAL
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    token_sha256 BLOB NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    device TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    last_address TEXT NOT NULL DEFAULT '',
    last_used_at REAL,
    ended_at REAL
);
CREATE INDEX sessions_user ON sessions(user_id) WHERE ended_at IS NULL;

CREATE TABLE logins (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    at REAL NOT NULL,
    address TEXT NOT NULL,
    device TEXT NOT NULL DEFAULT '',
    success INTEGER NOT NULL
);
CREATE INDEX logins_user ON logins(user_id, id);

CREATE TABLE chats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('general', 'direct', 'group')),
    name TEXT NOT NULL COLLATE NOCASE,
    owner_id INTEGER REFERENCES users(id),
    direct_key TEXT UNIQUE,
    created_at REAL NOT NULL,
    last_message_id INTEGER NOT NULL DEFAULT 0,
    last_message_at REAL
);
CREATE UNIQUE INDEX chats_group_name ON chats(name) WHERE kind = 'group';
INSERT INTO chats (id, kind, name, created_at) VALUES (1, 'general', 'general', 0);

CREATE TABLE members (
    chat_id INTEGER NOT NULL REFERENCES chats(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    joined_at REAL NOT NULL,
    last_read INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_user ON members(user_id, chat_id);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER NOT NULL REFERENCES chats(id),
    author_id INTEGER NOT NULL REFERENCES users(id),
    text TEXT NOT NULL,
    created_at REAL NOT NULL,
    client_id TEXT,
    thread_root INTEGER REFERENCES messages(id),
    comment_count INTEGER NOT NULL DEFAULT 0,
    last_comment_at REAL,
    scheduled_id INTEGER
);
CREATE UNIQUE INDEX messages_client_id ON messages(author_id, client_id)
    WHERE client_id IS NOT NULL;
-- history pages and unread counts: roots of one chat by id
CREATE INDEX messages_chat ON messages(chat_id, id) WHERE thread_root IS NULL;
CREATE INDEX messages_thread ON messages(thread_root, id) WHERE thread_root IS NOT NULL;
CREATE INDEX messages_author ON messages(author_id, chat_id);

CREATE TABLE thread_reads (
    user_id INTEGER NOT NULL REFERENCES users(id),
    root_id INTEGER NOT NULL,
    last_read INTEGER NOT NULL,
    PRIMARY KEY (user_id, root_id)
) WITHOUT ROWID;

CREATE TABLE contacts (
    user_id INTEGER NOT NULL REFERENCES users(id),
    contact_id INTEGER NOT NULL REFERENCES users(id),
    added_at REAL NOT NULL,
    PRIMARY KEY (user_id, contact_id)
) WITHOUT ROWID;

CREATE TABLE invite_links (
    key TEXT PRIMARY KEY,
    chat_id INTEGER NOT NULL REFERENCES chats(id),
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at REAL NOT NULL,
    expires_at REAL,
    max_uses INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    revoked_at REAL
);
CREATE INDEX invite_links_chat ON invite_links(chat_id);

CREATE TABLE join_requests (
    chat_id INTEGER NOT NULL REFERENCES chats(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at REAL NOT NULL,
    with_key INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, user_id)
) WITHOUT ROWID;

-- the event log: every durable event with its audience (one chat or one user)
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER,
    user_id INTEGER,
    name TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX events_chat ON events(chat_id, seq) WHERE chat_id IS NOT NULL;
CREATE INDEX events_user ON events(user_id, seq) WHERE user_id IS NOT NULL;
"""

# moderation and time (issue 6): complaints, bans, audit, rate-limit counters,
# scheduled messages, per-recipient deliveries of disappearing messages
_MODERATION_AND_TIME = """
CREATE TABLE complaints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id INTEGER NOT NULL REFERENCES users(id),
    target_id INTEGER NOT NULL REFERENCES users(id),
    reason TEXT NOT NULL DEFAULT '',
    message_id INTEGER,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'dismissed', 'actioned')),
    counted INTEGER NOT NULL DEFAULT 1,
    decided_by TEXT,
    decided_at REAL
);
CREATE INDEX complaints_target ON complaints(target_id, counted);
CREATE INDEX complaints_open ON complaints(state, id);

CREATE TABLE bans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at REAL NOT NULL,
    until REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    banned_by TEXT,
    lifted_at REAL,
    lifted_by TEXT
);
CREATE INDEX bans_user ON bans(user_id, until);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);

CREATE TABLE rate_counts (
    user_id INTEGER PRIMARY KEY REFERENCES users(id),
    window_start REAL NOT NULL,
    count INTEGER NOT NULL
);

CREATE TABLE scheduled (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id),
    chat_id INTEGER NOT NULL REFERENCES chats(id),
    text TEXT NOT NULL,
    send_at REAL NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sent', 'failed', 'cancelled')),
    failure TEXT,
    message_id INTEGER
);
CREATE INDEX scheduled_due ON scheduled(send_at) WHERE state = 'pending';
CREATE INDEX scheduled_user ON scheduled(user_id, id);

-- disappearing messages: every message until it is deleted, and the recipients
-- who were offline when it was posted (delivered_at NULL until they fetch it)
CREATE TABLE expiring (
    message_id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    partial INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX expiring_due ON expiring(expires_at) WHERE partial = 0;
CREATE INDEX expiring_age ON expiring(created_at);

CREATE TABLE deliveries (
    message_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    delivered_at REAL,
    expired INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, user_id)
) WITHOUT ROWID;
CREATE INDEX deliveries_due ON deliveries(delivered_at)
    WHERE expired = 0 AND delivered_at IS NOT NULL;
CREATE INDEX deliveries_user ON deliveries(user_id, message_id);
"""

_FILES = """
-- uploads: one row per upload; the bytes live once per sha256 in files/ab/cd/<sha256>
CREATE TABLE files (
    id TEXT PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users(id),
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mime TEXT NOT NULL,
    name TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    created_at REAL NOT NULL
);
CREATE INDEX files_owner ON files(owner_id, sha256);
CREATE INDEX files_sha256 ON files(sha256);

-- which message carries which upload (no foreign key to messages: retention deletes them)
CREATE TABLE message_files (
    message_id INTEGER NOT NULL,
    file_id TEXT NOT NULL REFERENCES files(id),
    position INTEGER NOT NULL,
    chat_id INTEGER NOT NULL,
    PRIMARY KEY (message_id, file_id)
) WITHOUT ROWID;
CREATE INDEX message_files_file ON message_files(file_id);
CREATE INDEX message_files_chat ON message_files(chat_id, message_id);
"""

# disappearing messages take their logged "message" event with them
_EXPIRING_EVENT = """
ALTER TABLE expiring ADD COLUMN event_seq INTEGER;
"""

# the message a logged event carries, so retention deletes the event with the message
_EVENT_MESSAGE = """
ALTER TABLE events ADD COLUMN message_id INTEGER;
CREATE INDEX events_message ON events(message_id) WHERE message_id IS NOT NULL;
"""

# the login throttle (issue 9): failed attempts by client address and login, whether
# or not the login exists (login lower-cased; rows older than the window are pruned)
_LOGIN_FAILURES = """
CREATE TABLE login_failures (
    address TEXT NOT NULL,
    login TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX login_failures_pair ON login_failures(address, login, at);
CREATE INDEX login_failures_address ON login_failures(address, at);
CREATE INDEX login_failures_at ON login_failures(at);
"""

MIGRATIONS: list[str] = [
    _INITIAL,
    _MODERATION_AND_TIME,
    _FILES,
    _EXPIRING_EVENT,
    _EVENT_MESSAGE,
    _LOGIN_FAILURES,
]
"""Schema scripts in order; migration ``n`` brings ``user_version`` from ``n`` to ``n + 1``."""
