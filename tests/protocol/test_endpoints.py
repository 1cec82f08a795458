"""The endpoint table and the router built from it."""

from __future__ import annotations

import pytest

from messenger_protocol import BY_NAME, ENDPOINTS, ApiError, ErrorCode, Router, openapi_document


def test_names_are_unique_and_routes_unambiguous() -> None:
    assert len(BY_NAME) == len(ENDPOINTS)
    assert len({(e.method, e.path) for e in ENDPOINTS}) == len(ENDPOINTS)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_every_endpoint_routes_to_itself(endpoint: object) -> None:
    from messenger_protocol import Endpoint

    assert isinstance(endpoint, Endpoint)
    params = {p: (7 if p.endswith("_id") and p != "file_id" else "abc") for p in endpoint.params}
    found, typed = Router().match(endpoint.method, endpoint.url(**params))
    assert found is endpoint
    assert typed == params


def test_unknown_path_is_not_found() -> None:
    with pytest.raises(ApiError) as info:
        Router().match("GET", "/api/v1/nope")
    assert info.value.code is ErrorCode.NOT_FOUND


def test_wrong_method_is_method_not_allowed() -> None:
    with pytest.raises(ApiError) as info:
        Router().match("PUT", "/api/v1/chats")
    assert info.value.code is ErrorCode.METHOD_NOT_ALLOWED
    with pytest.raises(ApiError) as info:
        Router().match("PUT", "/api/v1/chats/1/messages")
    assert info.value.code is ErrorCode.METHOD_NOT_ALLOWED


def test_head_routes_to_get() -> None:
    assert Router().match("HEAD", "/healthz")[0].name == "health"
    assert Router().match("HEAD", "/api/v1/files/abc")[0].name == "download"


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "9" * 19, "%31%32x"])
def test_non_integer_ids_are_invalid(bad: str) -> None:
    with pytest.raises(ApiError) as info:
        Router().match("GET", f"/api/v1/chats/{bad}/messages")
    assert info.value.code is ErrorCode.INVALID


def test_path_params_are_percent_decoded_and_encoded() -> None:
    ep = BY_NAME["del_contact"]
    url = ep.url(login="a.b")
    assert Router().match("DELETE", url)[1] == {"login": "a.b"}
    assert BY_NAME["revoke_link"].url(chat_id=1, key="a/b") == "/api/v1/chats/1/links/a%2Fb"


def test_bad_login_in_path_is_not_found() -> None:
    with pytest.raises(ApiError) as info:
        Router().match("GET", "/api/v1/users/..%2F..")
    assert info.value.code is ErrorCode.NOT_FOUND


def test_url_needs_every_param() -> None:
    with pytest.raises(TypeError):
        BY_NAME["history"].url()


def test_openapi_covers_every_endpoint() -> None:
    doc = openapi_document()
    assert doc["openapi"] == "3.1.0"
    ops = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert ops == set(BY_NAME)
    schemas = doc["components"]["schemas"]
    for name in ("Message", "ErrorBody", "Event", "SendMessage", "MessageCreated"):
        assert name in schemas
    send = doc["paths"]["/api/v1/chats/{chat_id}/messages"]["post"]
    assert send["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SendMessage"
    }
    assert send["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/api/v1/auth/login"]["post"]


def test_a_path_asked_again_gets_the_same_answer_for_each_method() -> None:
    router = Router()
    first = router.match("POST", "/api/v1/chats/1/messages")
    first[1]["chat_id"] = 99  # a caller changing its parameters changes no later answer
    again = router.match("POST", "/api/v1/chats/1/messages")
    assert again[0].name == "send" and again[1] == {"chat_id": 1}
    assert router.match("GET", "/api/v1/chats/1/messages")[0].name == "history"
    assert router.match("HEAD", "/api/v1/chats/1/messages")[0].name == "history"
    with pytest.raises(ApiError) as info:
        router.match("PUT", "/api/v1/chats/1/messages")
    assert info.value.code is ErrorCode.METHOD_NOT_ALLOWED
    for chat_id in range(2, 6000):  # many paths: still every one right
        assert router.match("POST", f"/api/v1/chats/{chat_id}/messages")[1] == {"chat_id": chat_id}
    assert router.match("POST", "/api/v1/chats/1/messages")[1] == {"chat_id": 1}
