"""LocalHub: one coalesced write per stream per loop turn, slow consumers cut, no gap/dup."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from messenger_protocol import sse_frame
from messenger_server.http import (
    HttpLimits,
    HttpServer,
    Request,
    ResponseStream,
    StreamResponse,
)
from messenger_server.hub import MAX_BUSY_GAP, LocalHub, frame_id


class FakeStream:
    """Records every writelines call; its buffer size is whatever the test says."""

    def __init__(self, peer: str = "127.0.0.1:1") -> None:
        self.peer = peer
        self.calls: list[list[bytes]] = []
        self.buffered = 0
        self.aborted = False
        self.closed = False

    def writelines(self, chunks: Iterable[bytes]) -> None:
        self.calls.append(list(chunks))

    def buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted or self.closed

    def close(self) -> None:
        self.closed = True

    @property
    def frames(self) -> list[bytes]:
        """The SSE frames written, whether they came one per chunk or joined."""
        return [
            frame + b"\n\n"
            for call in self.calls
            for chunk in call
            for frame in chunk.split(b"\n\n")[:-1]
        ]


def frame(seq: int | None, text: str = "x") -> bytes:
    return sse_frame(b'{"t":"%s"}' % text.encode(), "message_created", seq)


def flushes_of(hub: LocalHub) -> asyncio.Event:
    """An event the hub sets after each of its flushes (clear it to wait for the next)."""
    flushed = asyncio.Event()
    original = hub._flush

    def flush_and_signal() -> None:
        original()
        flushed.set()

    hub._flush = flush_and_signal  # type: ignore[method-assign]
    return flushed


async def next_turn() -> None:
    """Let the hub's flush run (it comes the turn after the one a publish schedules)."""
    for _ in range(2):
        await asyncio.sleep(0)


async def test_fan_out_is_one_write_per_stream_per_turn() -> None:
    hub = LocalHub()
    streams = [FakeStream() for _ in range(1000)]
    for i, stream in enumerate(streams):
        hub.attach(i, f"s{i}", stream)
    sent = [frame(seq) for seq in range(1, 11)]
    for f in sent:
        hub.publish(f, None)
    assert all(not s.calls for s in streams)  # nothing written inside publish
    await next_turn()
    for stream in streams:
        assert stream.calls == [[b"".join(sent)]]  # one call, all ten frames, in order
    assert len({id(s.calls[0][0]) for s in streams}) == 1  # joined once for all streams
    hub.publish(frame(11), None)
    await next_turn()
    assert all(len(s.calls) == 2 for s in streams)
    assert hub.deliveries == 11_000


async def test_streams_with_every_frame_share_one_write_and_the_others_get_their_own() -> None:
    hub = LocalHub()
    everyone = [FakeStream() for _ in range(3)]  # users 1-3: in every chat
    for i, stream in enumerate(everyone, 1):
        hub.attach(i, f"s{i}", stream)
    outsider = FakeStream()  # user 4: only in the first chat
    hub.attach(4, "s4", outsider)
    resumed_stream = FakeStream()  # user 5: catching up when the flush comes
    resumed = hub.attach(5, "s5", resumed_stream)
    resumed.hold()
    sent = [frame(1), frame(2), frame(3)]
    hub.publish(sent[0], [1, 2, 3, 4, 5])
    hub.publish(sent[1], [1, 2, 3, 5])
    resumed.release(after_seq=1)  # frame 2 goes to it apart from a fan-out
    hub.publish(sent[2], None)
    await next_turn()
    for stream in everyone:
        assert stream.calls == [[b"".join(sent)]]
    assert len({id(s.calls[0][0]) for s in everyone}) == 1
    assert outsider.calls == [[frame(1) + frame(3)]]
    assert resumed_stream.calls == [[frame(2) + frame(3)]]
    # a stream given one frame apart is not taken for one that got the flush's one frame
    resumed.hold()
    hub.publish(frame(4), [5])
    hub.publish(frame(5), [1, 2, 3])
    await next_turn()
    resumed.release(after_seq=3)
    hub.publish(frame(6), [1, 2, 3])
    await next_turn()
    assert [s.calls[1:] for s in everyone] == [[[frame(5)], [frame(6)]]] * 3
    assert resumed_stream.calls[1:] == [[frame(4)]]


async def test_publish_reaches_only_the_named_users_on_all_their_devices() -> None:
    hub = LocalHub()
    phone, laptop, other = FakeStream(), FakeStream(), FakeStream()
    hub.attach(1, "phone", phone)
    hub.attach(1, "laptop", laptop)
    hub.attach(2, "other", other)
    hub.publish(frame(1), [1, 99])
    await next_turn()
    assert phone.frames == laptop.frames == [frame(1)]
    assert other.frames == []
    assert hub.online_user_ids() == {1, 2} and hub.stream_count() == 3


async def test_slow_consumer_is_cut_and_others_go_on() -> None:
    hub = LocalHub(max_queue_bytes=1000)
    slow, fast = FakeStream(), FakeStream()
    hub.attach(1, "slow", slow)
    hub.attach(2, "fast", fast)
    slow.buffered = 1001  # the kernel and transport hold this much unsent for it
    hub.publish(frame(1), None)
    await next_turn()
    assert slow.aborted and not fast.aborted
    assert hub.online_user_ids() == {2} and hub.stream_count() == 1
    hub.publish(frame(2), None)
    await next_turn()
    assert slow.frames == [frame(1)]
    assert fast.frames == [frame(1), frame(2)]


async def test_hold_and_release_no_gap_no_duplicate() -> None:
    hub = LocalHub()
    stream = FakeStream()
    sub = hub.attach(1, "s", stream)
    sub.hold()
    presence = sse_frame(b'{"online":true}', "presence")
    # live events arrive while the app replays the log: 5 and 6 are in the replay too
    for f in (frame(5), presence, frame(6), frame(7)):
        hub.publish(f, [1])
    await next_turn()
    assert stream.calls == []  # held
    replay = [frame(4), frame(5), frame(6)]
    stream.writelines(replay)  # what the app writes straight to the stream
    sub.release(after_seq=6)
    hub.publish(frame(8), [1])
    await next_turn()
    ids = [frame_id(f) for f in stream.frames]
    assert ids == [4, 5, 6, None, 7, 8]


async def test_held_stream_that_falls_too_far_behind_is_cut() -> None:
    hub = LocalHub(max_queue_bytes=200)
    stream, other = FakeStream(), FakeStream()
    hub.attach(1, "s", stream).hold()
    hub.attach(2, "o", other)
    for seq in range(1, 10):
        hub.publish(frame(seq), None)
    await next_turn()
    assert stream.aborted and hub.stream_count() == 1
    assert len(other.frames) == 9


async def test_close_sessions_flushes_then_closes() -> None:
    hub = LocalHub()
    gone, stays = FakeStream(), FakeStream()
    hub.attach(1, "logout", gone)
    hub.attach(1, "other", stays)
    hub.publish(frame(1, "session_ended"), [1])
    hub.close_sessions(["logout"])
    await next_turn()
    assert gone.frames == [frame(1, "session_ended")] and gone.closed
    assert stays.frames == [frame(1, "session_ended")] and not stays.closed
    assert hub.stream_count() == 1


async def test_close_all_flushes_every_stream_then_closes_it() -> None:
    """Shutdown drain: each stream gets what was queued for it, then ends."""
    hub = LocalHub()
    first, second = FakeStream(), FakeStream()
    hub.attach(1, "a", first)
    hub.attach(2, "b", second)
    hub.publish(frame(5), None)
    hub.publish(frame(6), [2])
    hub.close_all()
    await next_turn()
    assert first.frames == [frame(5)] and first.closed
    assert second.frames == [frame(5), frame(6)] and second.closed
    assert hub.stream_count() == 0 and hub.online_user_ids() == set()


async def test_frames_for_everyone_keep_their_place_around_other_steps_of_the_turn() -> None:
    """A frame for every stream waits unqueued for the flush; a stream attached, held,
    sent a frame of its own or closed after it in the same turn still gets exactly what
    it would have (issue 11)."""
    hub = LocalHub()
    plain, targeted, closing, held_stream = FakeStream(), FakeStream(), FakeStream(), FakeStream()
    hub.attach(1, "plain", plain)
    hub.attach(2, "targeted", targeted)
    hub.attach(3, "closing", closing)
    held = hub.attach(4, "held", held_stream)

    def ids(stream: FakeStream) -> list[int | None]:
        return [frame_id(f) for f in stream.frames]

    hub.publish(frame(1), None)
    late = FakeStream()
    hub.attach(5, "late", late)  # after frame 1: not for it
    hub.publish(frame(2), None)
    await next_turn()
    assert ids(plain) == [1, 2] and ids(late) == [2]
    hub.publish(frame(3), None)
    hub.publish(frame(4), [2])
    hub.publish(frame(5), None)
    await next_turn()
    assert ids(targeted) == [1, 2, 3, 4, 5] and ids(plain) == [1, 2, 3, 5]
    hub.publish(frame(6), None)
    hub.close_sessions(["closing"])
    await next_turn()
    assert ids(closing) == [1, 2, 3, 5, 6] and closing.closed
    hub.publish(frame(7), None)
    held.hold()  # frame 7 came before the hold: it goes out, 8 waits
    hub.publish(frame(8), None)
    await next_turn()
    assert ids(plain) == [1, 2, 3, 5, 6, 7, 8] and ids(held_stream) == [1, 2, 3, 5, 6, 7]
    held.release(after_seq=7)
    hub.publish(frame(9), None)
    await next_turn()
    assert ids(held_stream) == ids(plain) == [1, 2, 3, 5, 6, 7, 8, 9]
    assert ids(late) == [2, 3, 5, 6, 7, 8, 9]


def test_frame_id() -> None:
    assert frame_id(frame(123)) == 123
    assert frame_id(frame(None)) is None
    assert frame_id(b"id: nope\n") is None


async def test_hub_over_real_event_streams() -> None:
    hub = LocalHub()
    attached = asyncio.Semaphore(0)
    gone = asyncio.Event()

    async def events(request: Request) -> StreamResponse:
        user_id = int(request.query["user"])

        async def produce(stream: ResponseStream) -> None:
            sub = hub.attach(user_id, request.peer, stream)
            attached.release()
            try:
                await stream.wait_closed()
            finally:
                sub.detach()
                gone.set()

        return StreamResponse(produce, content_type="text/event-stream")

    server = HttpServer(events, HttpLimits())
    await server.start("127.0.0.1", 0)
    try:
        readers = []
        for user in (1, 2):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /events?user=%d HTTP/1.1\r\nHost: t\r\n\r\n" % user)
            await reader.readuntil(b"\r\n\r\n")
            readers.append((reader, writer))
        async with asyncio.timeout(5):  # the producers attach after the head is sent
            await attached.acquire()
            await attached.acquire()
        hub.publish(frame(1), None)
        hub.publish(frame(2), [2])
        async with asyncio.timeout(5):
            assert await readers[0][0].readexactly(len(frame(1))) == frame(1)
            both = frame(1) + frame(2)
            assert await readers[1][0].readexactly(len(both)) == both
        readers[0][1].close()
        async with asyncio.timeout(5):
            await gone.wait()
        assert hub.online_user_ids() == {2}
    finally:
        await server.close(1.0)


async def test_one_heartbeat_timer_reaches_every_stream() -> None:
    hub = LocalHub()
    streams = [FakeStream() for _ in range(3)]
    for i, stream in enumerate(streams):
        hub.attach(i, f"s{i}", stream)
    held = FakeStream()
    hub.attach(9, "held", held).hold()  # catching up: the heartbeat waits with the rest
    hub.start_heartbeats(0.01, b": hb\n\n")
    beat = flushes_of(hub)
    async with asyncio.timeout(5):
        await beat.wait()
    hub.stop_heartbeats()
    assert all(stream.frames[:1] == [b": hb\n\n"] for stream in streams)
    assert held.frames == []
    assert hub.frames_published == 0  # heartbeats are not events


async def test_busy_flushes_are_spaced_and_carry_more_frames() -> None:
    """Issue 11: with a flush interval, a frame after a quiet spell goes out in its own
    turn, while frames right behind a flush wait for the interval and share one write."""
    hub = LocalHub(flush_interval=1.0)
    stream = FakeStream()
    hub.attach(1, "s1", stream)
    flushed = flushes_of(hub)
    hub.publish(frame(1), None)
    await next_turn()
    assert stream.calls == [[frame(1)]]  # quiet before: at once
    flushed.clear()
    hub.publish(frame(2), None)
    hub.publish(frame(3), None)
    await next_turn()
    assert len(stream.calls) == 1  # just flushed: these wait
    hub.publish(frame(4), None)
    async with asyncio.timeout(5):
        await flushed.wait()
    assert stream.calls[1:] == [[frame(2) + frame(3) + frame(4)]]


async def test_a_busy_hub_lets_frames_gather_as_long_as_its_last_flush_took() -> None:
    """Issue 11: a flush to many streams costs a write syscall each; when frames come as
    fast as the hub writes them, the next flush waits as long as the last one took (more
    frames per write), never past MAX_BUSY_GAP; a frame after a quiet spell does not wait."""
    now = [0.0]
    hub = LocalHub(flush_interval=0.001, clock=lambda: now[0], cpu_clock=lambda: now[0])
    took = [MAX_BUSY_GAP * 0.8]

    class SlowStream(FakeStream):
        def writelines(self, chunks: Iterable[bytes]) -> None:
            super().writelines(chunks)
            now[0] += took[0]  # the write syscall's time, on the hub's clocks

    stream = SlowStream()
    hub.attach(1, "s1", stream)
    flushed = flushes_of(hub)

    async def published_and_flushed(seq: int) -> bool:
        """Publish frame ``seq``: was it written within two turns?"""
        before = len(stream.calls)
        hub.publish(frame(seq), None)
        await next_turn()
        return len(stream.calls) > before

    assert await published_and_flushed(1)  # quiet before: at once
    assert await published_and_flushed(2)  # right behind it: at once, but now busy
    now[0] += MAX_BUSY_GAP * 0.4  # within as long again as that flush took
    flushed.clear()
    assert not await published_and_flushed(3)
    hub.publish(frame(4), None)
    now[0] += MAX_BUSY_GAP * 0.5  # it runs past the gap: late, but it had to wait
    async with asyncio.timeout(5):
        await flushed.wait()
    assert stream.calls[2:] == [[frame(3) + frame(4)]]
    flushed.clear()
    assert not await published_and_flushed(40)  # still busy: the flush before waited
    async with asyncio.timeout(5):
        await flushed.wait()
    now[0] += 1.0  # quiet: a frame goes at once, and so does one coming later than that took
    assert await published_and_flushed(5)
    now[0] += took[0] * 1.5
    assert await published_and_flushed(6)
    # a flush that took an hour holds the next frames back no longer than the bound
    took[0] = 3600.0
    assert await published_and_flushed(7)  # right behind 6: busy
    now[0] += MAX_BUSY_GAP * 0.2
    flushed.clear()
    assert not await published_and_flushed(8)
    async with asyncio.timeout(MAX_BUSY_GAP * 100):
        await flushed.wait()
    assert stream.calls[-1] == [frame(8)]
