"""The key directory and to-device messages of issue 14, on the real server, both stores.

The server takes public keys in the documented formats only, hands out each one-time
key once, delivers to-device ciphertext to the addressed device only and forgets it once
acknowledged; every limit is crossed by one.
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

from messenger_protocol import ToDeviceWaiting, limits
from tests.support.server import ServerProcess
from tests.support.wire import SseReader, call, register

KEYS = "/api/v1/keys"


def b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode().rstrip("=")


def device_body(device_id: str, otks: int = 0, first: int = 0) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "curve25519": b64(32),
        "ed25519": b64(32),
        "signature": b64(64),
        "one_time_keys": [
            {"key_id": f"K{first + i}", "key": b64(32), "signature": b64(64)} for i in range(otks)
        ],
    }


async def login(base: str, name: str) -> str:
    resp = await call(
        base, "POST", "/api/v1/auth/login", json={"login": name, "password": "password1"}
    )
    token: str = resp.json()["token"]
    return token


async def test_upload_query_claim_each_key_once(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    body = device_body("ALICEPHONE", otks=3)
    resp = await call(server.url, "POST", f"{KEYS}/upload", alice, body)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"device_id": "ALICEPHONE", "one_time_keys": 3}
    found = (await call(server.url, "POST", f"{KEYS}/query", bob, {"logins": ["alice"]})).json()
    [dev] = found["devices"]
    assert (dev["login"], dev["device_id"], dev["curve25519"], dev["ed25519"]) == (
        "alice", "ALICEPHONE", body["curve25519"], body["ed25519"]
    )  # fmt: skip
    # four claims at once for three keys: three distinct keys, one comes back empty
    ref = {"devices": [{"login": "alice", "device_id": "ALICEPHONE"}]}
    answers = await asyncio.gather(
        *(call(server.url, "POST", f"{KEYS}/claim", bob, ref) for _ in range(4))
    )
    keys = [k["key_id"] for a in answers for k in a.json()["keys"]]
    assert sorted(keys) == ["K0", "K1", "K2"]
    # the same identity keys again (a new login of that device) rebind it; other keys: conflict
    again = await call(server.url, "POST", f"{KEYS}/upload", alice, {**body, "one_time_keys": []})
    assert again.json()["one_time_keys"] == 0
    other = await call(server.url, "POST", f"{KEYS}/upload", alice, device_body("ALICEPHONE"))
    assert other.status_code == 409 and "other identity keys" in other.json()["error"]["message"]


async def test_bad_key_formats_are_refused(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    for field, value in [
        ("curve25519", b64(31)),
        ("curve25519", b64(33)),
        ("ed25519", "not base64 at all!!!!!!!!!!!!!!!!!!!!!!!!!!"),
        ("signature", b64(63)),
        ("device_id", "has space"),
        ("device_id", "x" * 33),
    ]:
        resp = await call(
            server.url, "POST", f"{KEYS}/upload", alice, {**device_body("D1"), field: value}
        )
        assert resp.status_code == 400, (field, resp.text)
        assert resp.json()["error"]["code"] == "invalid"


async def test_to_device_reaches_the_addressed_device_only(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob_phone = (await register(server.url, "bob"))["token"]
    bob_laptop = await login(server.url, "bob")
    # a session without device keys cannot send or read to-device messages
    msg = {"login": "bob", "device_id": "BOBPHONE", "type": 0, "ciphertext": b64(100)}
    refused = await call(server.url, "POST", f"{KEYS}/to_device", alice, {"messages": [msg]})
    assert refused.status_code == 409 and "upload them first" in refused.text
    for token, dev in [(alice, "A1"), (bob_phone, "BOBPHONE"), (bob_laptop, "BOBLAPTOP")]:
        assert (
            await call(server.url, "POST", f"{KEYS}/upload", token, device_body(dev))
        ).is_success
    async with SseReader(server.url, bob_laptop) as laptop_stream:
        sent = await call(server.url, "POST", f"{KEYS}/to_device", alice, {"messages": [msg]})
        assert sent.json() == {"queued": 1}
        got_events = await laptop_stream.until(lambda e: isinstance(e, ToDeviceWaiting))
        waiting = [e for _, e in got_events if isinstance(e, ToDeviceWaiting)]
        assert [e.device_id for e in waiting] == ["BOBPHONE"]
    # only the phone's session reads it; the laptop's inbox is empty
    phone_box = (await call(server.url, "GET", f"{KEYS}/to_device", bob_phone)).json()
    laptop_box = (await call(server.url, "GET", f"{KEYS}/to_device", bob_laptop)).json()
    assert laptop_box == {"messages": []}
    [got] = phone_box["messages"]
    assert (got["sender"], got["sender_device"], got["ciphertext"]) == (
        "alice", "A1", msg["ciphertext"]
    )  # fmt: skip
    # the laptop cannot acknowledge (delete) the phone's mail; the phone can
    await call(server.url, "POST", f"{KEYS}/to_device/ack", bob_laptop, {"up_to": got["id"]})
    assert len((await call(server.url, "GET", f"{KEYS}/to_device", bob_phone)).json()["messages"])
    await call(server.url, "POST", f"{KEYS}/to_device/ack", bob_phone, {"up_to": got["id"]})
    assert (await call(server.url, "GET", f"{KEYS}/to_device", bob_phone)).json() == {
        "messages": []
    }
    unknown = {**msg, "device_id": "NOSUCH"}
    resp = await call(server.url, "POST", f"{KEYS}/to_device", alice, {"messages": [unknown]})
    assert resp.status_code == 404


async def test_limits_are_crossed_by_one(server: ServerProcess) -> None:
    alice = (await register(server.url, "alice"))["token"]
    bob = (await register(server.url, "bob"))["token"]
    up = f"{KEYS}/upload"
    # one-time keys per upload
    n = limits.MAX_ONE_TIME_KEYS_PER_UPLOAD
    assert (await call(server.url, "POST", up, alice, device_body("D0", n + 1))).status_code == 400
    assert (await call(server.url, "POST", up, alice, device_body("D0", n))).is_success
    # unclaimed keys stored per device: D0 holds 50, 50 more fill it, one more crosses it
    d0 = (await call(server.url, "POST", f"{KEYS}/query", bob, {"logins": ["alice"]})).json()
    ident = {k: d0["devices"][0][k] for k in ("device_id", "curve25519", "ed25519", "signature")}
    room = limits.MAX_ONE_TIME_KEYS_STORED - n
    fits = {**ident, "one_time_keys": device_body("x", room, first=n)["one_time_keys"]}
    assert (await call(server.url, "POST", up, alice, fits)).json()["one_time_keys"] == 100
    over = {**ident, "one_time_keys": device_body("x", 1, first=500)["one_time_keys"]}
    resp = await call(server.url, "POST", up, alice, over)
    assert resp.status_code == 409
    assert resp.json()["error"]["limit"] == limits.MAX_ONE_TIME_KEYS_STORED
    # devices per user (D0 is one)
    for i in range(1, limits.MAX_DEVICES_PER_USER):
        assert (await call(server.url, "POST", up, alice, device_body(f"D{i}"))).is_success
    resp = await call(server.url, "POST", up, alice, device_body("ONEMORE"))
    assert resp.status_code == 409 and resp.json()["error"]["limit"] == limits.MAX_DEVICES_PER_USER
    # logins per query, devices per claim
    q = limits.MAX_KEY_QUERY_USERS
    for count, ok in [(q, True), (q + 1, False)]:
        resp = await call(server.url, "POST", f"{KEYS}/query", bob, {"logins": ["alice"] * count})
        assert resp.is_success is ok
    c = limits.MAX_KEY_CLAIM_DEVICES
    for count, ok in [(c, True), (c + 1, False)]:
        refs = [{"login": "nobody", "device_id": "X"}] * count
        resp = await call(server.url, "POST", f"{KEYS}/claim", bob, {"devices": refs})
        assert resp.is_success is ok
    # to-device: messages per send, ciphertext length, messages waiting per device
    assert (await call(server.url, "POST", up, bob, device_body("B1"))).is_success
    longest = limits.MAX_TO_DEVICE_CIPHERTEXT

    def msgs(count: int, length: int = 40) -> dict[str, Any]:
        m = {"login": "alice", "device_id": "D1", "type": 1, "ciphertext": "A" * length}
        return {"messages": [m] * count}

    td = f"{KEYS}/to_device"
    assert (await call(server.url, "POST", td, bob, msgs(1, longest + 1))).status_code == 400
    assert (await call(server.url, "POST", td, bob, msgs(1, longest))).is_success
    batch = limits.MAX_TO_DEVICE_BATCH
    assert (await call(server.url, "POST", td, bob, msgs(batch + 1))).status_code == 400
    waiting = 1
    while waiting + batch <= limits.MAX_TO_DEVICE_PENDING:
        assert (await call(server.url, "POST", td, bob, msgs(batch))).is_success
        waiting += batch
    room_left = limits.MAX_TO_DEVICE_PENDING - waiting
    if room_left:
        assert (await call(server.url, "POST", td, bob, msgs(room_left))).is_success
    resp = await call(server.url, "POST", td, bob, msgs(1))
    assert resp.status_code == 409
    assert resp.json()["error"]["limit"] == limits.MAX_TO_DEVICE_PENDING
