"""Codec round-trips and limits of request bodies, each crossed by one."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger_protocol import (
    ApiError,
    Attachment,
    CreateLink,
    Credentials,
    ErrorCode,
    HistoryQuery,
    Message,
    MessageCreated,
    SendMessage,
    decode,
    decode_error,
    decode_event,
    decode_query,
    encode,
    encode_event,
    limits,
)


def _invalid(kind: type, body: dict[str, object]) -> ApiError:
    with pytest.raises(ApiError) as info:
        decode(kind, encode(body))
    assert info.value.code is ErrorCode.INVALID
    return info.value


def test_message_round_trip_keeps_every_field() -> None:
    att = Attachment(id="f1", name="a.png", size=3, mime="image/png", sha256="ab", width=2)
    msg = Message(
        id=7, chat_id=1, author="alice", text="hi", created_at=1.5, thread_root=3,
        attachments=[att],
    )  # fmt: skip
    assert decode(Message, encode(msg)) == msg


def test_event_round_trip_is_tagged() -> None:
    event = MessageCreated(Message(id=1, chat_id=1, author="a", text="x", created_at=0.0))
    data = encode_event(event)
    assert data.startswith(b'{"type":"message"')
    assert decode_event(data) == event


def test_responses_tolerate_unknown_fields() -> None:
    body = b'{"id":1,"chat_id":1,"author":"a","text":"x","created_at":0,"new_field":1}'
    assert decode(Message, body).id == 1


def test_requests_refuse_unknown_fields() -> None:
    err = _invalid(SendMessage, {"text": "hi", "txet": "typo"})
    assert "txet" in err.message


def test_a_request_sends_only_what_it_sets_so_an_older_server_takes_it() -> None:
    """A field a newer client has and its server does not (``devices``, added with the
    device check) is left out when unset: the older server, which refuses unknown fields,
    still takes a plain send."""

    class OlderSendMessage(msgspec.Struct, forbid_unknown_fields=True):
        text: str
        client_id: str | None = None

    body = encode(SendMessage(text="hi", client_id="c1"))
    assert msgspec.json.decode(body) == {"text": "hi", "client_id": "c1"}
    assert msgspec.json.decode(body, type=OlderSendMessage) == OlderSendMessage("hi", "c1")


def test_malformed_json_is_invalid() -> None:
    with pytest.raises(ApiError) as info:
        decode(SendMessage, b'{"text": ')
    assert info.value.code is ErrorCode.INVALID


def test_text_limit_crossed_by_one() -> None:
    ok = "x" * limits.MAX_MESSAGE_TEXT
    assert decode(SendMessage, encode({"text": ok})).text == ok
    _invalid(SendMessage, {"text": ok + "x"})


def test_login_limit_crossed_by_one() -> None:
    ok = "a" * limits.MAX_LOGIN
    assert decode(Credentials, encode({"login": ok, "password": "secret"})).login == ok
    _invalid(Credentials, {"login": ok + "a", "password": "secret"})


@pytest.mark.parametrize("login", ["", "a b", ".dot", "-dash", "ünï", "a/b", "a\x00"])
def test_bad_logins_are_refused(login: str) -> None:
    _invalid(Credentials, {"login": login, "password": "secret"})


def test_password_limits_crossed_by_one() -> None:
    short = "p" * (limits.MIN_PASSWORD - 1)
    long = "p" * (limits.MAX_PASSWORD + 1)
    _invalid(Credentials, {"login": "bob", "password": short})
    _invalid(Credentials, {"login": "bob", "password": long})
    for ok in ("p" * limits.MIN_PASSWORD, "p" * limits.MAX_PASSWORD):
        assert decode(Credentials, encode({"login": "bob", "password": ok})).password == ok


def test_attachment_count_limit_crossed_by_one() -> None:
    ids = [f"f{i}" for i in range(limits.MAX_ATTACHMENTS)]
    assert len(decode(SendMessage, encode({"text": "", "attachments": ids})).attachments) == 10
    _invalid(SendMessage, {"text": "", "attachments": [*ids, "x"]})


def test_wrong_type_is_invalid_and_names_the_field() -> None:
    err = _invalid(SendMessage, {"text": 5})
    assert err.message == "invalid body: text must be text, not a whole number"


def test_query_strings_are_converted_and_checked() -> None:
    assert decode_query(HistoryQuery, {"limit": "50", "before": "9"}) == HistoryQuery(
        before=9, limit=50
    )
    assert decode_query(HistoryQuery, {}).limit is None  # the server's history_on_connect
    with pytest.raises(ApiError):
        decode_query(HistoryQuery, {"limit": str(limits.HISTORY_PAGE_MAX + 1)})
    with pytest.raises(ApiError):
        decode_query(HistoryQuery, {"limit": "abc"})
    with pytest.raises(ApiError):
        decode_query(HistoryQuery, {"bogus": "1"})


def test_error_body_round_trip() -> None:
    err = ApiError(ErrorCode.RATE_LIMITED, "slow down", retry_after=12.0)
    body = encode(err.body())
    assert b'"code":"rate_limited"' in body
    back = decode_error(body)
    assert back is not None
    assert (back.code, back.message, back.retry_after, back.status) == (
        ErrorCode.RATE_LIMITED,
        "slow down",
        12.0,
        429,
    )
    assert decode_error(b"not json") is None


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_invalid(data: bytes) -> None:
    try:
        decode(SendMessage, data)
    except ApiError as exc:
        assert exc.code is ErrorCode.INVALID


def test_structs_are_frozen() -> None:
    msg = Message(id=1, chat_id=1, author="a", text="x", created_at=0.0)
    with pytest.raises(AttributeError):
        msg.text = "changed"  # type: ignore[misc]
    assert msgspec.structs.replace(msg, text="y").text == "y"


@pytest.mark.parametrize(
    ("kind", "body", "said"),
    [
        (Credentials, b'{"login":"a b","password":"secret123"}',
         "login may only hold letters, digits and _ . - (at most 32, not starting with . or -)"),
        (Credentials, b'{"login":"ab","password":"s"}',
         "password is too short (at least 6 characters)"),
        (SendMessage, b'{"text":"' + b"x" * 4001 + b'"}',
         "text is too long (at most 4000 characters)"),
        (SendMessage, b"{}", "text is missing"),
        (SendMessage, b'{"text":"x","attachments":[1]}',
         "attachments[0] must be text, not a whole number"),
        (CreateLink, b'{"max_uses":0}', "max_uses must be at least 1"),
        (SendMessage, b"[1]", "the body must be an object, not a list"),
    ],
)  # fmt: skip
def test_invalid_bodies_are_explained_in_words(kind: type[Any], body: bytes, said: str) -> None:
    """Issue 9 item 12: no regexes or msgspec wording in what people read."""
    with pytest.raises(ApiError) as refused:
        decode(kind, body)
    assert refused.value.message == f"invalid body: {said}"
    assert "`" not in refused.value.message and "regex" not in refused.value.message


def test_integral_floats_are_integers_but_strings_are_not() -> None:
    """Item 23 of issue 9: JSON Schema's ``integer`` is any number without a fraction, as
    the OpenAPI document says; text never becomes a number, and a fraction stays wrong."""
    from messenger_protocol import ApiError, decode
    from messenger_protocol._models import MarkRead

    assert decode(MarkRead, b'{"up_to": 7050.0}') == MarkRead(up_to=7050)
    for bad in (b'{"up_to": 7050.5}', b'{"up_to": "7050"}', b'{"up_to": 1e30}'):
        with pytest.raises(ApiError) as caught:
            decode(MarkRead, bad)
        assert caught.value.code == "invalid"


def test_null_is_no_number_in_a_query() -> None:
    """Item 23: ``?before=null`` is refused; a text field may still say "null"."""
    from messenger_protocol import ApiError, decode_query
    from messenger_protocol._models import HistoryQuery, UploadQuery

    with pytest.raises(ApiError):
        decode_query(HistoryQuery, {"before": "null"})
    assert decode_query(UploadQuery, {"name": "null"}).name == "null"
