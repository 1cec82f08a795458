"""Markdown in message bodies, as chat users expect it (Slack, Element): no Textual.

Inline markup -- ``**bold**``, ``*italic*`` or ``_italic_``, ``~~strike~~``, `` `code` ``,
``[text](url)``, bare links and ``@mentions`` -- is styled by one set of patterns
(:func:`render_markdown`), so measuring a message needs no styled text: the markers
only ever go away (:func:`plain_inline`). Blocks -- fenced code (highlighted by
Pygments through rich's :class:`~rich.syntax.Syntax`), block quotes, lists, headings
and rules -- come from markdown-it-py's block parser, used only for a text that has a
line opening such a block (:func:`has_blocks`): the common message costs a regex.

:func:`render_blocks` gives the wrapped lines of such a text at a width; the timeline
counts its lines by rendering it (memoised), so what is measured is what is drawn.
A line break in a message is a line break (as in every chat app), and a message's
leading spaces and blank lines stay as typed unless it has blocks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from rich.cells import cell_len, get_character_cell_size
from rich.console import Console
from rich.style import Style
from rich.text import Text

from messenger_protocol import Span

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.tree import SyntaxTreeNode

__all__ = [
    "CODE_THEME",
    "TAB",
    "has_blocks",
    "plain_inline",
    "plain_snippet",
    "plain_text",
    "render_blocks",
    "render_markdown",
]

TAB = "    "
"""What a tab in a message shows as (fixed, so measuring needs no column tracking)."""
CODE_THEME = "monokai"
"""The Pygments theme of fenced code blocks."""
_CODE_BACKGROUND = "#272822"

_INLINE = re.compile(
    r"(?P<code>`[^`\n]+`)"
    r"|(?P<bold>\*\*[^*\n]+\*\*)"
    r"|(?P<italic>(?<![\w*])\*[^*\s](?:[^*\n]*[^*\s])?\*(?![\w*]))"
    r"|(?P<underscored>(?<![\w_])_[^_\s](?:[^_\n]*[^_\s])?_(?![\w_]))"
    r"|(?P<strike>~~[^~\n]+~~)"
    r"|(?P<named>\[[^\]\n]+\]\(https?://[^\s()<>]+\))"
    r"|(?P<link>https?://[^\s<>]*[^\s<>.,;:!?'\")\]])"
    r"|(?P<mention>(?<![\w@])@[A-Za-z0-9_][A-Za-z0-9_.\-]*[A-Za-z0-9_])"
)
_BLOCK_START = re.compile(
    r"^ {0,3}(?:```|~~~|>|[-+*][ \t]|[-+*]$|\d{1,9}[.)](?:[ \t]|$)|#{1,6}(?:[ \t]|$)"
    r"|(?:[-*_][ \t]*){3,}$)",
    re.MULTILINE,
)
_CODE = Style(color="#e6e6e6", bgcolor="#3a3a3a")
_BOLD = Style(bold=True)
_ITALIC = Style(italic=True)
_STRIKE = Style(strike=True)
_MENTION = Style(color="#e5c07b", bold=True)
_MENTION_ME = Style(color="#1e1e1e", bgcolor="#e5c07b", bold=True)
_LINK = Style(underline=True, color="#61afef")
_DIM = Style(dim=True)
_QUOTE_BAR = Style(color="#5c6370")
_QUOTE_TEXT = Style(color="#a0a0a0")
_HEADING = Style(bold=True, underline=True)
_BULLETS = ("• ", "◦ ", "▪ ")
QUOTE_BAR = "▌ "


@cache
def _parser() -> MarkdownIt:
    """markdown-it-py's block parser, imported and built with the first text that has
    blocks: most chats have none, and importing it was a tenth of the app's start-up."""
    from markdown_it import MarkdownIt

    return (
        MarkdownIt("commonmark", {"breaks": True, "html": False})
        .enable("strikethrough")
        # setext headings and indented code surprise in chat; references need the whole
        # text; inline markup is ours (the same patterns as a message without blocks)
        .disable(["lheading", "reference", "code", "html_block", "inline"])
    )


def _named_link(token: str) -> tuple[str, str]:
    label, _, url = token[1:-1].partition("](")
    return label, url


def _strip_markers(found: re.Match[str]) -> str:
    """The text a markup token shows (what :func:`render_markdown` keeps of it)."""
    token = found.group()
    kind = found.lastgroup
    if kind in ("bold", "strike"):
        return token[2:-2]
    if kind in ("code", "italic", "underscored"):
        return token[1:-1]
    if kind == "named":
        return _named_link(token)[0]
    return token


def plain_inline(text: str) -> str:
    """``text`` as :func:`render_markdown` shows it, without the styles."""
    return _INLINE.sub(_strip_markers, text)


def render_markdown(text: str, me: str = "") -> Text:
    """A text with inline Markdown: ``**bold**``, ``*italic*``, `` `code` ``,
    ``~~strike~~``, ``[named](links)`` and bare ones (clickable where the terminal
    allows), and ``@mentions`` (``me`` stands out)."""
    out = Text(overflow="fold")
    for index, line in enumerate(text.replace("\t", TAB).split("\n")):
        if index:
            out.append("\n")
        pos = 0
        for found in _INLINE.finditer(line):
            out.append(line[pos : found.start()])
            pos = found.end()
            token = found.group()
            kind = found.lastgroup
            if kind == "code":
                out.append(token[1:-1], _CODE)
            elif kind == "bold":
                out.append(token[2:-2], _BOLD)
            elif kind in ("italic", "underscored"):
                out.append(token[1:-1], _ITALIC)
            elif kind == "strike":
                out.append(token[2:-2], _STRIKE)
            elif kind == "named":
                label, url = _named_link(token)
                out.append(label, _LINK + Style(link=url))
            elif kind == "link":
                out.append(token, _LINK + Style(link=token))
            else:
                out.append(token, _MENTION_ME if me and token[1:] == me else _MENTION)
        out.append(line[pos:])
    return out


def has_blocks(text: str) -> bool:
    """Whether a line of ``text`` opens a block (code fence, quote, list, heading,
    rule): only then is it parsed as Markdown blocks."""
    return _BLOCK_START.search(text) is not None


def render_blocks(
    text: str, width: int, console: Console, *, me: str = "", suffix: Text | None = None
) -> list[Text]:
    """The lines of a text with Markdown blocks, wrapped at ``width`` cells; ``suffix``
    (the send state, "(edited)") follows its last paragraph, or has a line of its own
    after a last block that is not one. Always at least one line."""
    from markdown_it.tree import SyntaxTreeNode

    tree = SyntaxTreeNode(_parser().parse(text.replace("\t", TAB)))
    lines = _blocks(tree.children, width, console, me)
    if suffix is not None and suffix.plain:
        last = tree.children[-1] if tree.children else None
        if last is not None and last.type in ("paragraph", "heading"):
            lines = lines[: -_last_paragraph_height(last, width, console, me)]
            lines += _paragraph(last, width, console, me, suffix)
        else:
            own = suffix[len(suffix.plain) - len(suffix.plain.lstrip()) :]
            lines += own.wrap(console, width)
    return lines or [Text("")]


def block_height(text: str, width: int, suffix: str) -> int:
    """How many lines :func:`render_blocks` gives (memoised: a layout measures every
    message, the view renders the few on screen)."""
    return _block_height(text, width, suffix)


@lru_cache(maxsize=4096)
def _block_height(text: str, width: int, suffix: str) -> int:
    console = _measuring_console(width)
    return len(render_blocks(text, width, console, suffix=Text(suffix)))


@lru_cache(maxsize=64)
def _measuring_console(width: int) -> Console:
    return Console(width=width, color_system=None)


def _last_paragraph_height(node: SyntaxTreeNode, width: int, console: Console, me: str) -> int:
    return len(_paragraph(node, width, console, me, None))


def _inline_content(node: SyntaxTreeNode) -> str:
    return "".join(child.content for child in node.children if child.type == "inline")


def _paragraph(
    node: SyntaxTreeNode, width: int, console: Console, me: str, suffix: Text | None
) -> list[Text]:
    body = render_markdown(_inline_content(node), me)
    if node.type == "heading":
        body.stylize(_HEADING)
    if suffix is not None:
        body.append_text(suffix)
    return list(body.wrap(console, width))


def _blocks(nodes: Sequence[SyntaxTreeNode], width: int, console: Console, me: str) -> list[Text]:
    out: list[Text] = []
    previous_end: int | None = None
    for node in nodes:
        start, end = node.map if node.map is not None else (previous_end or 0, previous_end or 0)
        if previous_end is not None and start > previous_end:
            out.append(Text(""))  # a blank line in the source stays one
        out.extend(_block(node, width, console, me))
        previous_end = end
    return out


def _block(node: SyntaxTreeNode, width: int, console: Console, me: str) -> list[Text]:
    kind = node.type
    if kind in ("paragraph", "heading"):
        return _paragraph(node, width, console, me, None)
    if kind == "fence":
        return _code(node.content, node.info.split(maxsplit=1)[0] if node.info else "", width)
    if kind == "hr":
        return [Text("─" * width, _DIM)]
    if kind == "blockquote":
        inner = _blocks(node.children, max(width - cell_len(QUOTE_BAR), 1), console, me)
        quoted = []
        for line in inner or [Text("")]:
            line.stylize_before(_QUOTE_TEXT)
            quoted.append(_joined(QUOTE_BAR, _QUOTE_BAR, line))
        return quoted
    if kind in ("bullet_list", "ordered_list"):
        return _list(node, width, console, me)
    return _blocks(node.children, width, console, me)  # pragma: no cover - other containers


def _joined(lead: str, style: Style, line: Text) -> Text:
    """``lead`` in ``style``, then ``line`` (``Text + Text`` would give the whole line
    the first one's style)."""
    out = Text(lead, style="", overflow="fold")
    out.stylize(style, 0, len(lead))
    out.append_text(line)
    return out


def _depth(node: SyntaxTreeNode) -> int:
    depth, parent = 0, node.parent
    while parent is not None:
        depth += parent.type in ("bullet_list", "ordered_list")
        parent = parent.parent
    return depth


def _list(node: SyntaxTreeNode, width: int, console: Console, me: str) -> list[Text]:
    items = node.children
    if node.type == "ordered_list":
        first = int(str(node.attrs.get("start", 1)))
        marks = [f"{first + i}{node.markup or '.'} " for i in range(len(items))]
    else:
        marks = [_BULLETS[_depth(node) % len(_BULLETS)]] * len(items)
    mark_width = max(cell_len(mark) for mark in marks)
    out: list[Text] = []
    previous_end: int | None = None
    for mark, item in zip(marks, items, strict=True):
        if item.map is not None:
            if previous_end is not None and item.map[0] > previous_end and not _tight(node):
                out.append(Text(""))
            previous_end = item.map[1]
        inner = _blocks(item.children, max(width - mark_width, 1), console, me) or [Text("")]
        for i, line in enumerate(inner):
            lead = mark.rjust(mark_width) if not i else " " * mark_width
            out.append(_joined(lead, _DIM, line))
    return out


def _tight(node: SyntaxTreeNode) -> bool:
    """A list without blank lines between its items (markdown-it hides their
    paragraphs)."""
    for item in node.children:
        for child in item.children:
            if child.type == "paragraph":
                return bool(child.hidden)
    return True


def _code(code: str, lexer: str, width: int) -> list[Text]:
    """A fenced code block: highlighted, on its own background, long lines folded
    (rich's Syntax and Pygments are imported with the first code block)."""
    from rich.syntax import Syntax

    syntax = Syntax(
        code, lexer or "text", theme=CODE_THEME, background_color=_CODE_BACKGROUND, word_wrap=True
    )
    highlighted = syntax.highlight(code.rstrip("\n"))
    base = Style(bgcolor=_CODE_BACKGROUND)
    out: list[Text] = []
    inner = max(width - 1, 1)
    for line in highlighted.split("\n", include_separator=False) or [Text("")]:
        for piece in _fold_cells(line, inner):
            padded = _joined(" ", base, piece)
            padded.pad_right(max(width - padded.cell_len, 0))
            padded.stylize(base)
            out.append(padded)
    return out


def _fold_cells(line: Text, width: int) -> list[Text]:
    """``line`` cut into pieces of at most ``width`` cells (code keeps its spaces, so
    it folds by cells, not at words)."""
    cuts: list[int] = []
    used = 0
    for index, char in enumerate(line.plain):
        size = get_character_cell_size(char)
        if used + size > width and used:
            cuts.append(index)
            used = 0
        used += size
    return list(line.divide(cuts)) if cuts else [line]


def plain_text(text: str) -> str:
    """A message's text without its markup (one line of it shows in a quote or a
    search hit): block markers and fences go, inline markers go."""
    lines = []
    for line in text.replace("\t", TAB).split("\n"):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            continue
        lines.append(plain_inline(_BLOCK_MARKER.sub("", line)))
    return "\n".join(lines)


_BLOCK_MARKER = re.compile(r"^ {0,3}(?:>[ \t]?)*(?:#{1,6}[ \t]+)?")
_SNIPPET_MARKUP = re.compile(
    r"\*\*|__|~~|`+|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])|(?:^|(?<=\n))[ \t]*(?:>[ \t]?)+"
    r"|(?:^|(?<=\n))[ \t]*#{1,6}[ \t]+|\]\(https?://[^\s()<>]*\)|\[(?=[^\]\n]*\]\()"
)


def plain_snippet(spans: Sequence[Span]) -> list[Span]:
    """A search hit's snippet (text with the matched words marked) without the
    message's markup: the markers are dropped across the spans, the marks stay."""
    whole = "".join(span.text for span in spans)
    drop = bytearray(len(whole))
    for found in _SNIPPET_MARKUP.finditer(whole):
        drop[found.start() : found.end()] = b"\x01" * (found.end() - found.start())
    out: list[Span] = []
    pos = 0
    for span in spans:
        kept = "".join(c for i, c in enumerate(span.text, pos) if not drop[i])
        pos += len(span.text)
        if not kept:
            continue
        if out and out[-1].match == span.match:
            out[-1] = Span(text=out[-1].text + kept, match=span.match)
        else:
            out.append(Span(text=kept, match=span.match))
    return out
