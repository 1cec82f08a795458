"""Item 16 of issue 9: out-of-range integers and non-UTF-8 text are 400 ``invalid``, never 500.

Every integer field of every request body and query model, and every integer path
parameter, is fed values outside 1..2**63-1 (or 0..2**63-1); every string field is fed
bytes that are not UTF-8. The real server must answer each with a typed 400 before
anything reaches storage (SQLite raises OverflowError beyond 2**63-1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger_client.api import tls_context
from messenger_protocol import ENDPOINTS, PATH_PARAM_TYPES, AnyEndpoint, limits
from messenger_protocol import _keys as k
from messenger_protocol import _models as m
from tests.support.server import ServerProcess

VALID: dict[type, dict[str, Any]] = {
    m.Credentials: {"login": "alice", "password": "password1", "device": "d"},
    m.SendMessage: {"text": "hi", "client_id": "c1"},
    m.OpenDirect: {"login": "bob"},
    m.CreateChat: {"name": "team"},
    m.InviteUser: {"login": "bob"},
    m.CreateLink: {"expires_in": 60, "max_uses": 5},
    m.JoinChat: {"name": "team", "key": "k"},
    m.MarkRead: {"up_to": 1},
    m.AddContact: {"login": "bob"},
    m.ScheduleMessage: {"chat_id": 1, "text": "later", "send_at": 4e9},
    m.FileComplaint: {"login": "bob", "reason": "spam", "message_id": 1},
    m.BanUser: {"login": "bob", "seconds": 60, "reason": "spam"},
    m.HistoryQuery: {"before": 5, "after": 1, "limit": 10},
    m.EventsQuery: {"last_event_id": 1},
    m.UnreadQuery: {"chat_id": 1, "after": 1, "limit": 10},
    m.UploadQuery: {"name": "a.txt"},
    m.InviteQuery: {"key": "k"},
    m.EditMessage: {"text": "hi again"},
    m.React: {"emoji": "\N{THUMBS UP SIGN}"},
    m.SearchQuery: {"q": "hello", "before": 5, "limit": 10},
    m.MentionsQuery: {"before": 5, "limit": 10},
    m.SetMute: {"mute": "mentions"},
    m.ChatOptions: {"mention_all": False},
    m.Privacy: {"hide_read_receipts": True},
    k.UploadKeys: {
        "device_id": "DEV1",
        "curve25519": "A" * 43,
        "ed25519": "B" * 43,
        "signature": "C" * 86,
    },
    k.QueryKeys: {"logins": ["bob"]},
    k.ClaimKeys: {"devices": [{"login": "bob", "device_id": "DEV1"}]},
    k.SendToDevice: {
        "messages": [{"login": "bob", "device_id": "DEV1", "type": 0, "ciphertext": "AAAA"}]
    },
    k.AckToDevice: {"up_to": 1},
}
"""A valid value of every request model: each case breaks exactly one field of it."""


def _fields(kind: type) -> Iterator[tuple[str, msgspec.inspect.Type]]:
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    for f in info.fields:
        types = f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
        for t in types:
            if isinstance(t, msgspec.inspect.IntType | msgspec.inspect.StrType):
                yield f.name, t


def _endpoints_with(kind: type) -> list[AnyEndpoint]:
    return [ep for ep in ENDPOINTS if kind in (ep.request, ep.query)]


def _path(ep: AnyEndpoint, **override: object) -> str:
    values: dict[str, object] = {"login": "bob", "file_id": "f", "key": "k", "chat_name": "team"}
    values.update({p: 1 for p in ep.params if p not in values})
    values.update(override)
    return ep.url(**{p: values[p] for p in ep.params})


INT_CASES = [
    (ep, kind, name, t)
    for kind in VALID
    for ep in _endpoints_with(kind)
    for name, t in _fields(kind)
    if isinstance(t, msgspec.inspect.IntType)
]
STR_CASES = [
    (ep, kind, name)
    for kind in VALID
    for ep in _endpoints_with(kind)
    for name, t in _fields(kind)
    if isinstance(t, msgspec.inspect.StrType)
]
PATH_INT_CASES = [(ep, p) for ep in ENDPOINTS for p in ep.params if PATH_PARAM_TYPES[p] is int]


def _out_of_range(t: msgspec.inspect.IntType) -> st.SearchStrategy[int]:
    low = t.ge if t.ge is not None else -(2**63)
    high = t.le if t.le is not None else 2**63 - 1
    return st.one_of(
        st.integers(min_value=high + 1, max_value=high + 2**70),
        st.integers(min_value=low - 2**70, max_value=low - 1),
        st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**30]).filter(
            lambda v: not low <= v <= high
        ),
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    data_dir: Path = tmp_path_factory.mktemp("bounds") / "data"
    srv = ServerProcess(data_dir, args=["--admins", "alice"])
    srv.start()
    try:
        resp = httpx.post(
            srv.url + "/api/v1/auth/register", json={"login": "alice", "password": "password1"}
        )
        assert resp.status_code == 200, resp.text
        yield srv, resp.json()["token"]
    finally:
        srv.kill()


def _request(
    srv: ServerProcess, token: str, ep: AnyEndpoint, kind: type, values: dict[str, Any], raw: bytes
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(
        verify=tls_context(), base_url=srv.url, timeout=10.0, headers=headers
    ) as client:
        if kind is ep.query:
            # the raw bytes are already a query string (percent-encoded)
            return client.request(ep.method, _path(ep) + "?" + raw.decode("ascii"))
        headers["Content-Type"] = "application/json"
        return client.request(ep.method, _path(ep), content=raw, headers=headers)


def _assert_invalid(resp: httpx.Response) -> None:
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid"


_SETTINGS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def test_every_request_model_has_a_valid_example() -> None:
    """Item 16: a new request model must join the property tests below."""
    kinds = {k for ep in ENDPOINTS for k in (ep.request, ep.query) if k is not None}
    assert kinds - VALID.keys() == set()
    for kind, value in VALID.items():
        msgspec.convert(value, kind)


@pytest.mark.parametrize(
    ("ep", "kind", "name", "t"), INT_CASES, ids=[f"{c[0].name}.{c[2]}" for c in INT_CASES]
)
def test_integer_out_of_range_is_400(
    live: tuple[ServerProcess, str],
    ep: AnyEndpoint,
    kind: type,
    name: str,
    t: msgspec.inspect.IntType,
) -> None:
    """Item 16: an integer outside the field's range (2**63 and beyond too) is 400, not 500."""
    srv, token = live

    @_SETTINGS
    @given(value=_out_of_range(t))
    def check(value: int) -> None:
        values = {**VALID[kind], name: value}
        if kind is ep.query:
            raw = httpx.QueryParams({k: str(v) for k, v in values.items()}).__str__().encode()
        else:
            raw = json.dumps(values).encode()
        _assert_invalid(_request(srv, token, ep, kind, values, raw))

    check()


@pytest.mark.parametrize(
    ("ep", "kind", "name"), STR_CASES, ids=[f"{c[0].name}.{c[2]}" for c in STR_CASES]
)
def test_string_that_is_not_utf8_is_400(
    live: tuple[ServerProcess, str], ep: AnyEndpoint, kind: type, name: str
) -> None:
    """Item 16: bytes that are not UTF-8 inside a JSON string (or a query value) are 400."""
    srv, token = live
    bad_utf8 = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])

    @_SETTINGS
    @given(prefix=st.text(alphabet="abc", max_size=3), bad=bad_utf8)
    def check(prefix: str, bad: bytes) -> None:
        values = dict(VALID[kind])
        if kind is ep.query:
            others = httpx.QueryParams({k: str(v) for k, v in values.items() if k != name})
            escaped = "".join(f"%{b:02X}" for b in bad)
            raw = f"{others}&{name}={prefix}{escaped}".encode()
        else:
            marker = "@@BAD@@"
            values[name] = prefix + marker
            raw = json.dumps(values).encode().replace(marker.encode(), bad)
        _assert_invalid(_request(srv, token, ep, kind, values, raw))

    check()


@pytest.mark.parametrize(
    ("ep", "param"), PATH_INT_CASES, ids=[f"{c[0].name}.{c[1]}" for c in PATH_INT_CASES]
)
def test_path_integer_out_of_range_is_400(
    live: tuple[ServerProcess, str], ep: AnyEndpoint, param: str
) -> None:
    """Item 16: a path id of 0, 2**63 or more digits than any id has is 400 before storage."""
    srv, token = live
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(
        verify=tls_context(), base_url=srv.url, timeout=10.0, headers=headers
    ) as client:
        for value in (0, 2**63, 2**64, 10**30):
            resp = client.request(ep.method, _path(ep, **{param: value}))
            _assert_invalid(resp)
        top = client.request(ep.method, _path(ep, **{param: limits.MAX_INT}))
        assert top.status_code != 500, top.text  # the largest id is a valid (unknown) id


def test_login_body_not_utf8_is_400_without_token(live: tuple[ServerProcess, str]) -> None:
    """Item 16: the unauthenticated login refuses non-UTF-8 with 400 too."""
    srv, _ = live
    resp = httpx.post(
        srv.url + "/api/v1/auth/login",
        content=b'{"login":"\xff\xfe","password":"password1"}',
        headers={"Content-Type": "application/json"},
    )
    _assert_invalid(resp)
