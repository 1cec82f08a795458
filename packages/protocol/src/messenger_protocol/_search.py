"""The search query syntax, and the snippets of search hits.

One parser for the server and for a client searching its own cache offline::

    deploy "release notes" in:team from:bob after:2026-11-30 before:2026-12-02 has:file

Words must all occur (any case, accents ignored); a ``"quoted phrase"`` must occur as
written, word after word. The last word, when the query ends with it outside quotes and
it has at least three characters, matches as a prefix: ``release not`` finds "release
notes" while the word is still being typed (as Slack's, Element's and Zulip's live
search do); the words before it match whole, and quoting it (``release "not"``) asks
for the whole word. Operators narrow the search: ``in:<chat>`` (``general``, a
group's name, or ``@login`` for a private conversation), ``from:<login>``,
``before:<date>`` (posted before that day began, UTC), ``after:<date>`` (posted after
that day ended, UTC), ``has:file``. Dates are ``YYYY-MM-DD``. Anything else of the form
``name:value`` is refused (quote it to search for it as words), so a typo like
``form:bob`` says so instead of finding nothing.
"""

from __future__ import annotations

import calendar
import datetime
import re
import unicodedata

import msgspec

from . import _limits as L
from ._errors import ApiError, ErrorCode
from ._models import Span

__all__ = [
    "OPERATORS",
    "ParsedSearch",
    "fts5_match",
    "parse_search",
    "search_words",
    "snippet",
]

OPERATORS = ("in", "from", "before", "after", "has")
"""The operators of the query syntax, without their colon."""

_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r'"([^"]*)"|(\S+)')
_OPERATOR = re.compile(r"^([A-Za-z]+):(.*)$", re.DOTALL)
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_LOGIN = re.compile(L.LOGIN_PATTERN)


class ParsedSearch(msgspec.Struct, frozen=True):
    """A parsed query: folded words and phrases, and the operators' values."""

    words: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()
    in_chat: str | None = None
    """A chat's name as the user sees it (``general``, ``team``, ``@bob``)."""
    from_login: str | None = None
    before: float | None = None
    """Only messages posted before this Unix time."""
    after: float | None = None
    """Only messages posted at or after this Unix time."""
    has_file: bool = False
    prefix: str | None = None
    """The query's last word when it matches as a prefix (not in ``words``): any word
    that begins with it is a match."""

    @property
    def terms(self) -> frozenset[str]:
        """Every word asked for, those of phrases included (what a snippet highlights,
        with the words that begin with ``prefix``)."""
        return frozenset(self.words).union(*self.phrases)

    @property
    def has_text(self) -> bool:
        """Words, phrases or a prefix were given (not only operators)."""
        return bool(self.words or self.phrases or self.prefix)


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def search_words(text: str) -> list[str]:
    """The words of a text as the index sees them: runs of letters and digits, in lower
    case without accents (``Café-Bar_2`` is ``cafe``, ``bar``, ``2``)."""
    return [_fold(w) for w in _WORD.findall(unicodedata.normalize("NFC", text))]


def _invalid(message: str) -> ApiError:
    return ApiError(ErrorCode.INVALID, message)


def _day(name: str, value: str) -> datetime.date:
    if _DATE.match(value):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise _invalid(f"{name}: takes a date like 2026-12-01, not {value[:20]!r}")


def _midnight(day: datetime.date) -> float:
    return float(calendar.timegm(day.timetuple()))


def parse_search(query: str) -> ParsedSearch:
    """Parse a query; an :class:`ApiError` (``invalid``, one line) says what is wrong."""
    if len(query) > L.SEARCH_QUERY_MAX:
        raise _invalid(f"a search is at most {L.SEARCH_QUERY_MAX} characters")
    if query.count('"') % 2:
        raise _invalid('a quote is not closed: write "a phrase" between two quotes')
    words: list[str] = []
    phrases: list[tuple[str, ...]] = []
    ops: dict[str, str] = {}
    terms = 0
    last_bare = False  # the query ends with bare words (its last one may be a prefix)
    for found in _TOKEN.finditer(query):
        quoted, bare = found.group(1), found.group(2)
        last_bare = False
        if quoted is not None:
            inside = tuple(search_words(quoted))
            if len(inside) == 1:
                words.extend(inside)
            elif inside:
                phrases.append(inside)
            terms += bool(inside)
            continue
        op = _OPERATOR.match(bare)
        if op is not None and not op.group(2).startswith("//"):
            name, value = op.group(1).lower(), op.group(2)
            if name not in OPERATORS:
                known = ", ".join(f"{o}:" for o in OPERATORS)
                raise _invalid(
                    f"unknown operator {name[:20]}: (there are {known}; quote it to search for it)"
                )
            if not value:
                raise _invalid(f"{name}: needs a value, as in {name}:{_EXAMPLE[name]}")
            if name in ops:
                raise _invalid(f"{name}: is given twice")
            ops[name] = value
            terms += 1
            continue
        found_words = search_words(bare)
        words.extend(found_words)
        terms += len(found_words)
        last_bare = bool(found_words)
    if terms > L.SEARCH_TERMS_MAX:
        raise _invalid(f"a search holds at most {L.SEARCH_TERMS_MAX} words, phrases and operators")
    if not words and not phrases and not ops:
        raise _invalid('nothing to search for: give a word, a "phrase" or an operator like in:')
    prefix = None
    if last_bare and len(words[-1]) >= L.SEARCH_PREFIX_MIN:
        prefix = words.pop()
    parsed = ParsedSearch(words=tuple(dict.fromkeys(words)), phrases=tuple(phrases), prefix=prefix)
    if "in" in ops:
        parsed = msgspec.structs.replace(parsed, in_chat=ops["in"].lstrip("#"))
    if "from" in ops:
        login = ops["from"].removeprefix("@")
        if not _LOGIN.match(login):
            raise _invalid(f"from: takes a login, not {login[:40]!r}")
        parsed = msgspec.structs.replace(parsed, from_login=login)
    if "before" in ops:
        before = _midnight(_day("before", ops["before"]))
        parsed = msgspec.structs.replace(parsed, before=before)
    if "after" in ops:
        after = _midnight(_day("after", ops["after"]) + datetime.timedelta(days=1))
        parsed = msgspec.structs.replace(parsed, after=after)
    if "has" in ops:
        if ops["has"].lower() not in ("file", "files"):
            raise _invalid(f"has: takes file (has:file), not {ops['has'][:20]!r}")
        parsed = msgspec.structs.replace(parsed, has_file=True)
    if parsed.before is not None and parsed.after is not None and parsed.after >= parsed.before:
        raise _invalid("after: must be a day before before: (nothing lies between them)")
    return parsed


def fts5_match(query: ParsedSearch) -> str:
    """The FTS5 ``MATCH`` expression of a query's words, phrases and prefix (the server's
    index and a client's cache): every term a double-quoted string, so nothing the user
    typed is an FTS5 operator (words hold letters and digits only: no quote inside), the
    prefix ``"noo"*``; all of them must match."""
    parts = [f'"{w}"' for w in query.words] + [f'"{" ".join(p)}"' for p in query.phrases]
    if query.prefix is not None:
        parts.append(f'"{query.prefix}"*')
    return " ".join(parts)


_EXAMPLE = {
    "in": "general",
    "from": "alice",
    "before": "2026-12-01",
    "after": "2026-12-01",
    "has": "file",
}


def snippet(text: str, query: ParsedSearch, width: int = L.SNIPPET_CHARS) -> list[Span]:
    """At most ``width`` characters of ``text`` on one line around its first word that
    the query asks for, as spans; the words asked for (and those that begin with its
    prefix) are ``match`` spans, an ellipsis marks where the text was cut."""
    line = " ".join(unicodedata.normalize("NFC", text).split())
    terms, prefix = query.terms, query.prefix or None
    hits = [
        m.span()
        for m in _WORD.finditer(line)
        if (w := _fold(m.group())) in terms or (prefix is not None and w.startswith(prefix))
    ]
    start = 0
    if hits and hits[0][1] > width:
        start = max(0, hits[0][0] - width // 4)
    end = min(len(line), start + width)
    start = max(0, min(start, end - width))
    spans: list[Span] = []
    cursor = start
    for lo, hi in hits:
        if hi <= start or lo >= end:
            continue
        lo, hi = max(lo, start), min(hi, end)
        if lo > cursor:
            spans.append(Span(text=line[cursor:lo]))
        spans.append(Span(text=line[lo:hi], match=True))
        cursor = hi
    if cursor < end:
        spans.append(Span(text=line[cursor:end]))
    if start > 0:
        spans.insert(0, Span(text="…"))
    if end < len(line):
        spans.append(Span(text="…"))
    return spans
