"""Cost of end-to-end encryption (issue 14): per message, per file MiB, group fan-out.

Prints, per message of ``--size`` characters: Megolm encrypt, decrypt and both
(vodozemac), one Olm to-device round (encrypt + decrypt of a room key), and what the
client library adds on top of Megolm (the JSON payload, the pickled session and the 0600
state file: one fsync'd write per ``RESERVED_INDEXES`` messages of a chat, with that
many Megolm indexes reserved ahead, shown per message); per MiB of a file:
``seal_file``, ``open_file`` and both (encrypt, decrypt and check, as an upload and a
download do). Then, against a real server process, the fan-out of a group of
``--members`` users (each a library client with its own device keys and event stream,
all in this process) that one member posts ``--fanout-messages`` messages to:
deliveries/s shown on the members' devices, a plain group vs an encrypted one (there:
decrypted and checked, each device appending its replay record) -- the same load
generator for both, so the ratio is what encryption adds end to end. The encrypted group
is measured twice: first without the sender's event stream (every send asks for the
members and their device keys first: three requests), then with it running, as a
console's or the TUI's does (its device keeps both in memory between sends, forgotten on
the events that change them: one request); the sender's HTTP requests per post are
counted::

    uv run python bench/e2ee.py --messages 2000 --size 200 --file-mib 4 --members 10
    uv run python bench/e2ee.py --no-fanout          # without a server
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec
import vodozemac as vz
from _common import ServerProcess

from messenger_client import Client, ConnectionState
from messenger_client.crypto import (
    NO_KEY_TEXT,
    RESERVED_INDEXES,
    DeviceCrypto,
    EncryptedFile,
    _load,
    _write_private,
    open_file,
    seal_file,
)
from messenger_protocol import Chat, MessageCreated


def _per_call(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _line(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2] * 1e6
    p99 = ordered[int(len(ordered) * 0.99)] * 1e6
    mean = statistics.fmean(samples) * 1e6
    print(f"{name:<48} mean {mean:8.1f} µs  p50 {p50:8.1f} µs  p99 {p99:8.1f} µs")


def file_costs(mib: int, rounds: int) -> None:
    """``seal_file`` and ``open_file`` of a random file of ``mib`` MiB, per MiB."""
    data = os.urandom(mib * 2**20)
    sealed: list[tuple[bytes, str]] = []
    seal = _per_call(lambda: sealed.append(seal_file(data)), rounds)
    ciphertext, key = sealed[-1]
    file = EncryptedFile(id="x", name="f", mime="application/octet-stream", size=len(data),
                         sha256=hashlib.sha256(data).hexdigest(), key=key)  # fmt: skip
    opened = _per_call(lambda: open_file(ciphertext, file), rounds)
    both = [a + b for a, b in zip(seal, opened, strict=True)]
    for name, samples in (
        ("file encrypt (seal_file)", seal),
        ("file decrypt + check", opened),
        ("file encrypt + decrypt + check", both),
    ):
        per_mib = statistics.fmean(samples) / mib
        print(f"{name + ' per MiB':<48} mean {per_mib * 1e3:8.2f} ms  ({1 / per_mib:7.1f} MiB/s)")
    extra = len(ciphertext) - len(data)
    print(f"{mib} MiB file, {rounds} rounds; ciphertext {extra} bytes longer than the file")


async def _member(
    client: Client, crypto: DeviceCrypto, chat_id: int, want: int, counts: list[int], i: int
) -> None:
    """One member's device: its event stream until ``want`` messages of the chat came,
    each encrypted one decrypted and checked (``counts[i]`` follows)."""
    stream = client.events()
    try:
        async for item in stream:
            if isinstance(item, ConnectionState):
                if item.state == "connected" and counts[i] < 0:
                    counts[i] = 0
                continue
            if not isinstance(item, MessageCreated) or item.message.chat_id != chat_id:
                continue
            if item.message.encrypted is not None:
                shown = await crypto.reveal(item.message)
                if shown is None or shown.text == NO_KEY_TEXT or shown.text.startswith("("):
                    raise RuntimeError(f"member {i}: not decrypted: {shown}")
            counts[i] += 1
            if counts[i] >= want:
                return
    finally:
        await stream.aclose()


async def _until(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.005)


async def _fan_out(
    group: Chat,
    sender: Client,
    sender_c: DeviceCrypto,
    members: list[tuple[Client, DeviceCrypto]],
    messages: int,
    text: str,
    requests: list[int],
) -> tuple[float, float, float]:
    """(deliveries/s, sends/s, HTTP requests per send) of ``messages`` posts to
    ``group``, after one warm-up post (for the encrypted group: the one that shares the
    Megolm session to every device); ``requests[0]`` counts the sender's requests."""
    counts = [-1] * len(members)
    tasks = [
        asyncio.create_task(_member(c, d, group.id, messages + 1, counts, i))
        for i, (c, d) in enumerate(members)
    ]
    await _until(lambda: min(counts) >= 0, "every stream connected")

    async def post() -> None:
        if group.encrypted:
            await sender_c.send(group, text)
        else:
            await sender.send(group.id, text)

    await post()
    await _until(lambda: min(counts) >= 1, "the warm-up post everywhere")
    before = requests[0]
    t0 = time.perf_counter()
    for _ in range(messages):
        await post()
    sent = time.perf_counter() - t0
    per_send = (requests[0] - before) / messages
    await asyncio.wait_for(asyncio.gather(*tasks), 300)
    elapsed = time.perf_counter() - t0
    return messages * len(members) / elapsed, messages / sent, per_send


async def _drain(client: Client) -> None:
    """The sender's own event stream, read and passed over (what keeps its device's
    members and device keys in memory)."""
    async for _ in client.events():
        pass


async def fanout(n_members: int, messages: int, size: int) -> None:
    """Plain vs encrypted group fan-out against a real server (see the docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess(
            Path(tmp) / "data",
            args=["--rate-limit-messages", "1000000000", "--log-level", "WARNING"],
        )
        srv.start()
        clients: list[Client] = []
        try:
            devices: list[tuple[Client, DeviceCrypto]] = []
            for i in range(n_members + 1):
                client = Client(srv.url)
                clients.append(client)
                await client.register(f"member{i}", "benchmark")
                devices.append((client, await DeviceCrypto.open(client, Path(tmp) / f"d{i}")))
            (owner, owner_c), members = devices[0], devices[1:]
            plain = await owner.create_chat("lobby")
            vault = await owner.create_chat("vault", encrypted=True)
            for i in range(1, n_members + 1):
                await owner.invite(plain.id, f"member{i}")
                await owner.invite(vault.id, f"member{i}")
            text = "x" * size
            requests = [0]

            async def count(_: httpx.Request) -> None:
                requests[0] += 1

            owner._http.event_hooks["request"].append(count)
            drain: asyncio.Task[None] | None = None
            rates = {}
            runs = (("plain", plain, True), ("no stream", vault, False), ("encrypted", vault, True))
            for name, group, stream in runs:
                if stream and drain is None:
                    drain = asyncio.create_task(_drain(owner))
                    await _until(lambda: owner.streaming, "the sender's stream connected")
                elif not stream and drain is not None:
                    drain.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await drain
                    drain = None
                rates[name] = await _fan_out(
                    group, owner, owner_c, members, messages, text, requests
                )
                deliveries, sends, per_send = rates[name]
                label = "encrypted, sender without its stream" if name == "no stream" else name
                print(f"group fan-out, {label:<36} {n_members} members: {deliveries:8.1f}"
                      f" deliveries/s shown ({sends:6.1f} posts/s sent,"
                      f" {per_send:.2f} requests/post)")  # fmt: skip
            if drain is not None:
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain
            for name in ("no stream", "encrypted"):
                deliveries = rates[name][0] / rates["plain"][0]
                posts = rates[name][1] / rates["plain"][1]
                print(f"{name} / plain: deliveries/s x{deliveries:.2f}, posts/s x{posts:.2f}"
                      f" ({messages} posts of {size} chars)")  # fmt: skip
        finally:
            for client in clients:
                await client.close()
            srv.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=200, help="characters per message")
    parser.add_argument("--file-mib", type=int, default=4, help="MiB of the file measured")
    parser.add_argument("--file-rounds", type=int, default=5)
    parser.add_argument("--members", type=int, default=10, help="group members (fan-out)")
    parser.add_argument("--fanout-messages", type=int, default=100)
    parser.add_argument("--no-fanout", action="store_true", help="skip the server part")
    args = parser.parse_args()
    n, text = args.messages, "x" * args.size
    payload = msgspec.json.encode({"chat_id": 2, "sender": "alice", "text": text})

    outbound = vz.GroupSession()
    inbound = vz.InboundGroupSession(outbound.session_key)
    ciphertexts: list[str] = []
    encrypts = _per_call(lambda: ciphertexts.append(outbound.encrypt(payload).to_base64()), n)
    _line("megolm encrypt", encrypts)
    it = iter(ciphertexts)
    decrypts = _per_call(lambda: inbound.decrypt(vz.MegolmMessage.from_base64(next(it))), n)
    _line("megolm decrypt", decrypts)
    _line("megolm encrypt + decrypt (one message)", [
        a + b for a, b in zip(encrypts, decrypts, strict=True)
    ])  # fmt: skip

    alice, bob = vz.Account(), vz.Account()
    bob.generate_one_time_keys(1)
    otk = next(iter(bob.one_time_keys.values()))
    a_to_b = alice.create_outbound_session(bob.curve25519_key, otk)
    first = a_to_b.encrypt(b"hello").to_pre_key()
    assert first is not None
    b_from_a, _ = bob.create_inbound_session(alice.curve25519_key, first)
    room_key = msgspec.json.encode({"session_key": outbound.session_key.to_base64()})

    def olm_round() -> None:
        b_from_a.decrypt(a_to_b.encrypt(room_key))

    _line("olm room key encrypt + decrypt (one device)", _per_call(olm_round, n))

    with tempfile.TemporaryDirectory() as tmp:
        key, state = _load(Path(tmp), None)
        path = Path(tmp) / "state.json"

        def save() -> None:
            outbound.pickle(key)
            _write_private(path, msgspec.json.encode(state))

        saves = _per_call(save, min(n, 500))
        _line("client state save (pickle + fsync'd 0600 file)", saves)

        def reserve() -> None:
            ahead = vz.GroupSession.from_pickle(outbound.pickle(key), key)
            for _ in range(RESERVED_INDEXES):
                ahead.encrypt(b"")
            save()

        reserved = _per_call(reserve, max(1, min(n, 500) // RESERVED_INDEXES))
        _line(
            f"  per message, one reservation per {RESERVED_INDEXES}",
            [t / RESERVED_INDEXES for t in reserved],
        )
    print(f"{n} messages of {args.size} characters; ciphertext {len(ciphertexts[0])} chars")
    file_costs(args.file_mib, args.file_rounds)
    if not args.no_fanout:
        asyncio.run(fanout(args.members, args.fanout_messages, args.size))


if __name__ == "__main__":
    main()
