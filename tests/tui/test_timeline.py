"""The timeline of a chat: dedupe, ordering, pending sends, and a layout that stays exact."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from messenger_client.tui.timeline import Layout, Timeline, render_markdown, utc
from messenger_protocol import Attachment, Message, Quote, Reaction

T0 = 1_700_000_000.0


def msg(mid: int, text: str = "hello", author: str = "alice", at: float | None = None) -> Message:
    return Message(
        id=mid, chat_id=1, author=author, text=text, created_at=T0 + mid * 60 if at is None else at
    )


def assert_exact(layout: Layout) -> None:
    """Every message renders to exactly as many lines as the layout counted."""
    assert len(layout.heights) == len(layout.timeline)
    for i in range(len(layout.timeline)):
        assert len(layout.lines(i)) == layout.heights[i], (i, layout.timeline[i])
    assert layout.offsets[-1] == sum(layout.heights)
    fresh = Layout(Timeline(1, list(layout.timeline.messages)), layout.width, tz=utc())
    fresh.timeline.pending = list(layout.timeline.pending)
    fresh.timeline.failed = set(layout.timeline.failed)
    fresh.relayout()
    assert fresh.heights == layout.heights


def test_messages_are_deduplicated_by_id_and_kept_in_order() -> None:
    timeline = Timeline(1)
    assert timeline.add(msg(2))
    assert timeline.add(msg(5))
    assert timeline.add(msg(3))
    assert not timeline.add(msg(3))
    assert [m.id for m in timeline.messages] == [2, 3, 5]
    assert timeline.add_older([msg(1), msg(2)], has_more=False) == 1
    assert [m.id for m in timeline.messages] == [1, 2, 3, 5]
    assert not timeline.has_more


def test_a_pending_send_is_replaced_by_the_confirmed_message() -> None:
    timeline = Timeline(1, [msg(1)])
    layout = Layout(timeline, 60, tz=utc())
    timeline.add_pending(
        Message(id=0, chat_id=1, author="alice", text="hi", created_at=T0, client_id="c1")
    )
    assert timeline.state(timeline[1]) == "pending"
    assert "sending" in layout.lines(1)[-1].plain
    timeline.set_failed("c1", True)
    assert "not sent" in layout.lines(1)[-1].plain
    confirmed = Message(id=7, chat_id=1, author="alice", text="hi", created_at=T0, client_id="c1")
    assert timeline.add(confirmed)
    assert len(timeline) == 2
    assert timeline.state(timeline[1]) == "sent"
    assert_exact(layout)


def test_layout_groups_by_author_and_separates_days() -> None:
    timeline = Timeline(
        1,
        [
            msg(1, author="alice"),
            msg(2, author="alice"),
            msg(3, author="bob"),
            msg(4, author="bob", at=T0 + 3 * 86400),
        ],
    )
    layout = Layout(timeline, 60, tz=utc())
    plain = [line.plain for i in range(len(timeline)) for line in layout.lines(i)]
    assert plain[0].startswith("─") and "November 2023" in plain[0]
    assert plain[1].startswith("alice")
    assert plain[2:4] == ["  hello", "  hello"]
    assert plain[4] == ""
    assert plain[5].startswith("bob")
    assert "November 2023" in plain[7] and plain[8].startswith("bob")


def test_markdown_styles_bold_italic_strike_code_links_and_mentions() -> None:
    text = render_markdown(
        "a **b** _i_ ~~s~~ `c` https://x.org/p, @me and @you, not ~one~", me="me"
    )
    assert text.plain == "a b i s c https://x.org/p, @me and @you, not ~one~"
    styles = {text.plain[s.start : s.end]: s.style for s in text.spans}
    assert styles["b"].bold  # type: ignore[union-attr]
    assert styles["i"].italic and styles["s"].strike  # type: ignore[union-attr]
    assert styles["https://x.org/p"].link == "https://x.org/p"  # type: ignore[union-attr]
    assert styles["@me"] != styles["@you"]


def test_code_blocks_quotes_and_lists_render_as_markdown_with_exact_heights() -> None:
    """Issue 12: fenced code is highlighted on its own background, quotes get a bar,
    lists bullets; each message renders to the lines the layout counted."""
    code = "see:\n```python\ndef double(x):\n    return x * 2\n```"
    timeline = Timeline(
        1,
        [
            msg(1, code),
            msg(2, "> they said **this**\n> and that\n\nme too"),
            msg(3, "- one\n- two `x`\n  - nested\n1. first\n2. second"),
            msg(4, "```\n" + "y" * 70 + "\n```"),
            msg(5, "# Title\n_it_ and [site](https://x.org)"),
        ],
    )
    layout = Layout(timeline, 40, tz=utc())
    assert_exact(layout)
    body = [line.plain for line in layout.lines(0)][2:]
    assert body[0] == "  see:"
    assert body[1].startswith("   def double(x):") and len(body[1]) == 40, "padded block"
    assert body[2].startswith("       return x * 2")
    colors = {
        seg.text: seg.style and seg.style.color for seg in layout.lines(0)[3].render(Console())
    }
    assert colors["def"] is not None and colors["def"] != colors["double"], "highlighted"
    assert "```" not in "".join(body)
    quote = [line.plain for line in layout.lines(1)]
    assert quote[-4:] == ["  ▌ they said this", "  ▌ and that", "  ", "  me too"]
    assert [line.plain for line in layout.lines(2)] == [
        "  • one",
        "  • two x",
        "    ◦ nested",
        "  1. first",
        "  2. second",
    ]
    folded = [line.plain for line in layout.lines(3)]
    assert len(folded) == 2, "a long code line folds inside the block"
    heading = [line.plain for line in layout.lines(4)]
    assert heading == ["  Title", "  it and site"]
    timeline.update(msgspec.structs.replace(timeline[0], edited_at=T0 + 5))
    assert layout.lines(0)[-1].plain == "  (edited)", "after a code block, on a line of its own"
    timeline.update(msgspec.structs.replace(timeline[1], edited_at=T0 + 5))
    assert layout.lines(1)[-1].plain == "  me too (edited)"
    assert_exact(layout)


def test_incremental_layout_matches_a_fresh_one() -> None:
    timeline = Timeline(
        1, [msg(i, "word " * (i % 9) * 5, author="ab"[i % 2]) for i in range(50, 60)]
    )
    layout = Layout(timeline, 40, tz=utc())
    timeline.add_older([msg(i, author="ab"[i % 3 == 0]) for i in range(30, 50)], has_more=True)
    timeline.add(msg(70, "x\ny\nz"))
    timeline.add(msg(65, "**long** " * 20))
    timeline.remove(55)
    timeline.update(
        Message(
            id=56,
            chat_id=1,
            author="b",
            text="t",
            created_at=T0,
            comment_count=2,
            attachments=[Attachment("f", "a.png", 10, "image/png", "0")],
        )
    )
    assert_exact(layout)
    assert layout.index_at(0) == 0
    assert layout.index_at(layout.total - 1) == len(timeline) - 1
    assert layout.index_at(layout.total) is None


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(
        st.text(alphabet="ab *`~@:/\n\txé漢_h>-1.#[]()", max_size=120), min_size=1, max_size=12
    ),
    width=st.integers(min_value=5, max_value=70),
)
def test_heights_are_exact_for_any_text(texts: list[str], width: int) -> None:
    timeline = Timeline(1)
    layout = Layout(timeline, width, tz=utc())
    for i, text in enumerate(texts, start=1):
        timeline.add(msg(i, text, author="ab"[i % 2]))
    assert_exact(layout)


def test_edits_tombstones_replies_and_reactions_show_and_keep_heights_exact() -> None:
    """Issue 12: "(edited)", a dim tombstone, a one-line quote, reaction chips."""
    timeline = Timeline(1, [msg(1, "first line\nsecond"), msg(2), msg(3), msg(4)])
    layout = Layout(timeline, 30, tz=utc(), me="alice")
    timeline.update(msgspec.structs.replace(timeline[1], text="fixed", edited_at=T0 + 999))
    timeline.update(
        msgspec.structs.replace(timeline[2], text="", deleted_at=T0 + 999, attachments=[])
    )
    timeline.update(
        msgspec.structs.replace(
            timeline[3],
            text="agreed",
            reply_to=Quote(id=1, author="bob", text="first line"),
            reactions=[
                Reaction("👍", 3, ["bob", "alice", "carol"]),
                Reaction("🎉", 1, ["bob"]),
                *(Reaction(chr(0x1F600 + i), 1, ["bob"]) for i in range(8)),
            ],
        )
    )
    assert_exact(layout)
    edited = [line.plain for line in layout.lines(1)]
    assert edited[-1] == "  fixed (edited)"
    assert [line.plain for line in layout.lines(2)][-1] == "  message deleted"
    reply = [line.plain for line in layout.lines(3)]
    assert reply[0].startswith("  ↱ bob first line")
    assert reply[1] == "  agreed"
    assert " 👍 3   🎉 1 " in reply[2]
    assert len(reply) > 3, "twelve chips do not fit one 28-column line: they wrap"
    mine = next(
        s for s in layout.lines(3)[2].spans if "👍" in layout.lines(3)[2].plain[s.start : s.end]
    )
    theirs = next(
        s for s in layout.lines(3)[2].spans if "🎉" in layout.lines(3)[2].plain[s.start : s.end]
    )
    assert mine.style != theirs.style, "your own reaction is highlighted"


def test_a_quote_of_a_deleted_message_says_so() -> None:
    timeline = Timeline(1, [msg(1, "re", author="bob")])
    layout = Layout(timeline, 40, tz=utc())
    timeline.update(
        msgspec.structs.replace(
            timeline[0], reply_to=Quote(id=9, author="carol", text="", deleted=True)
        )
    )
    assert layout.lines(0)[2].plain == "  ↱ carol message deleted"
    assert_exact(layout)


def test_a_click_column_finds_the_reaction_chip_under_it() -> None:
    """Issue 12: chips toggle on click; the layout says which chip a column falls in."""
    reactions = [Reaction("👍", 2, ["bob", "alice"]), Reaction("🎉", 1, ["carol"])]
    timeline = Timeline(1, [msgspec.structs.replace(msg(1, "ship it"), reactions=reactions)])
    layout = Layout(timeline, 40, tz=utc(), me="alice")
    lines = [line.plain for line in layout.lines(0)]
    chips = lines.index(next(line for line in lines if "👍" in line))
    # "  " indent, " 👍 2 " (6 cells: the emoji is 2 wide), " ", " 🎉 1 "
    assert layout.reaction_at(0, chips, 1) is None, "the indent is no chip"
    assert layout.reaction_at(0, chips, 2) == "👍"
    assert layout.reaction_at(0, chips, 7) == "👍"
    assert layout.reaction_at(0, chips, 8) is None, "the gap between chips"
    assert layout.reaction_at(0, chips, 9) == "🎉"
    assert layout.reaction_at(0, chips - 1, 3) is None, "the text line above"
