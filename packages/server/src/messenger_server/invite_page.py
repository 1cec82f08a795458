"""The small HTML page an invite link's URL shows in a browser (``GET /join/<chat>?key=…``).

The JSON answer is the typed :class:`~messenger_protocol.InvitePage`; this is the same for
people who open the link in a browser: which chat it is and how to join from the client.
"""

from __future__ import annotations

from datetime import UTC
from html import escape

from messenger_protocol import InvitePage, format_time

__all__ = ["PAGE_HEADERS", "invite_html"]

PAGE_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
]
"""Headers of the page: nothing runs, nothing loads, the key is not passed on."""

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;"
    "line-height:1.5}code{background:#eee;padding:.1em .3em;word-break:break-all}"
)


def invite_html(page: InvitePage | None, refusal: str = "") -> bytes:
    """The page of a usable link, or (``page`` None) the refusal of any other."""
    if page is None:
        title = "Invite link not valid"
        body = (
            f"<h1>{title}</h1><p>{escape(refusal.capitalize())}.</p>"
            "<p>With a new link, run <code>messenger-client</code> and type "
            "<code>/join &lt;link&gt;</code>.</p>"
        )
    else:
        title = f"Invite to {page.chat_name}"
        limits = []
        if page.expires_at is not None:
            limits.append(f"valid until {format_time(page.expires_at, tz=UTC)}")
        if page.uses_left is not None:
            limits.append(f"{page.uses_left} more use{'' if page.uses_left == 1 else 's'}")
        note = f" ({escape(', '.join(limits))})" if limits else ""
        body = (
            f"<h1>{escape(title)}</h1>"
            f"<p>This link invites you to the group chat <b>{escape(page.chat_name)}</b>{note}.</p>"
            "<p>To join, run <code>messenger-client</code>, log in, and type:</p>"
            f"<p><code>{escape(page.join_command)}</code></p>"
            "<p>The chat's owner approves your request; the client tells you when you are in.</p>"
        )
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return html.encode()
