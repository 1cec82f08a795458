"""Cost of end-to-end encryption per message (issue 14), without a server.

Prints, per message of ``--size`` characters: Megolm encrypt + decrypt (vodozemac), one
Olm to-device round (encrypt + decrypt of a room key), and what the client library adds
on top of Megolm (the JSON payload, the pickled session and the 0600 state file it writes
after each message)::

    uv run python bench/e2ee.py --messages 2000 --size 200
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import vodozemac as vz

from messenger_client.crypto import _load, _write_private


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=200, help="characters per message")
    args = parser.parse_args()
    n, text = args.messages, "x" * args.size
    payload = msgspec.json.encode({"chat_id": 2, "sender": "alice", "text": text})

    outbound = vz.GroupSession()
    inbound = vz.InboundGroupSession(outbound.session_key)
    ciphertexts: list[str] = []
    _line(
        "megolm encrypt",
        _per_call(lambda: ciphertexts.append(outbound.encrypt(payload).to_base64()), n),
    )
    it = iter(ciphertexts)
    _line(
        "megolm decrypt",
        _per_call(lambda: inbound.decrypt(vz.MegolmMessage.from_base64(next(it))), n),
    )

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

        _line("client state save (pickle + fsync'd 0600 file)", _per_call(save, min(n, 500)))
    print(f"{n} messages of {args.size} characters; ciphertext {len(ciphertexts[0])} chars")


if __name__ == "__main__":
    main()
