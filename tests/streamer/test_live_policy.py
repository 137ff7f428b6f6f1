"""LivePolicy (how a live input differs from a file), DropQueue and Latency."""

from __future__ import annotations

import os
import threading
import time
from fractions import Fraction

import pytest

from streamer.errors import StreamerError
from streamer.live import DropQueue, Latency, LivePolicy
from streamer.options import EncodeConfig, LiveConfig
from streamer.stages import END, Stopped

pytestmark = pytest.mark.timeout(20)


def test_a_file_keeps_the_queue_depth_and_drops_nothing():
    policy = LivePolicy.decide(False, LiveConfig(drop="newest"), batch_size=4, queue_frames=48)
    assert policy == LivePolicy(live=False, drop="none", depth=48)


@pytest.mark.parametrize("drop", ["oldest", "newest", "none"])
def test_a_live_input_is_latency_first_and_drops_by_its_policy(drop):
    """One frame per model call, one call at a time, one frame waiting for the model at most."""
    policy = LivePolicy.decide(True, LiveConfig(drop=drop), batch_size=4, queue_frames=48)
    threads = max(1, len(os.sched_getaffinity(0)) - 1)  # a core left for decoding and encoding
    assert policy == LivePolicy(live=True, drop=drop, depth=1, batch=1, parallel=1, handoff=True, threads=threads)


def test_a_file_is_encoded_as_asked():
    encode = EncodeConfig()
    policy = LivePolicy.decide(False, LiveConfig(), 4, 32)
    assert policy.encoding(encode, Fraction(30)) == encode
    assert encode.tune is None and encode.gop is None


@pytest.mark.parametrize(
    "rate, gop", [(Fraction(30), 60), (Fraction(25), 50), (Fraction(30000, 1001), 60), (Fraction(1, 4), 1)]
)
def test_live_encoding_is_zerolatency_with_a_two_second_gop(rate, gop):
    policy = LivePolicy.decide(True, LiveConfig(), 4, 32)
    encode = EncodeConfig(crf=30)
    live = policy.encoding(encode, rate)
    assert live.tune == "zerolatency"
    assert live.gop == gop
    assert live.crf == 30 and live.codec == encode.codec
    assert encode.tune is None and encode.gop is None  # the given config is not changed


def test_live_encoding_keeps_explicit_tune_and_gop():
    policy = LivePolicy.decide(True, LiveConfig(), 4, 32)
    encode = EncodeConfig(tune="film", gop=12)
    assert policy.encoding(encode, Fraction(30)) == encode


def drops(size: int, policy: str):
    stop = threading.Event()
    counted = []
    return DropQueue(size, policy, stop, on_drop=lambda: counted.append(1)), stop, counted


def drain(queue: DropQueue) -> list:
    return [queue.get() for _ in range(len(queue))]


def test_oldest_policy_drops_the_oldest_frames():
    queue, _, counted = drops(3, "oldest")
    for i in range(7):
        queue.put(i)
    assert len(queue) == 3
    assert queue.dropped == 4 and len(counted) == 4
    assert drain(queue) == [4, 5, 6]


def test_newest_policy_drops_the_arriving_frames():
    queue, _, counted = drops(3, "newest")
    for i in range(7):
        queue.put(i)
    assert queue.dropped == 4 and len(counted) == 4
    assert drain(queue) == [0, 1, 2]


def test_nothing_is_dropped_while_there_is_room():
    queue, _, counted = drops(3, "oldest")
    queue.put(0)
    assert queue.get() == 0
    for i in range(1, 4):
        queue.put(i)
    assert queue.dropped == 0 and counted == []
    assert drain(queue) == [1, 2, 3]


def test_none_policy_blocks_until_there_is_room():
    queue, _, counted = drops(2, "none")
    queue.put(0)
    queue.put(1)
    done = threading.Event()

    def put():
        queue.put(2)
        done.set()

    threading.Thread(target=put, daemon=True).start()
    assert not done.wait(0.3)  # blocked: the queue is full
    assert queue.get() == 0
    assert done.wait(2)
    assert drain(queue) == [1, 2]
    assert queue.dropped == 0 and counted == []


@pytest.mark.parametrize("policy", ["oldest", "newest"])
def test_an_undroppable_item_waits_for_room_instead(policy):
    queue, _, _ = drops(2, policy)
    queue.put(0)
    queue.put(1)
    done = threading.Event()

    def put_end():
        queue.put(END, droppable=False)
        done.set()

    threading.Thread(target=put_end, daemon=True).start()
    assert not done.wait(0.3)
    assert queue.get() == 0
    assert done.wait(2)
    assert drain(queue) == [1, END]
    assert queue.dropped == 0


def test_stop_releases_a_blocked_put_and_get():
    queue, stop, _ = drops(1, "none")
    queue.put(0)
    raised = []

    def put():
        try:
            queue.put(1)
        except Stopped:
            raised.append("put")

    thread = threading.Thread(target=put, daemon=True)
    thread.start()
    time.sleep(0.15)
    stop.set()
    thread.join(2)
    assert raised == ["put"]
    assert drain(queue) == [0]
    with pytest.raises(Stopped):
        queue.get()
    with pytest.raises(Stopped):
        queue.put(2)


def test_unknown_drop_policy_is_a_streamer_error():
    with pytest.raises(StreamerError, match="--drop"):
        DropQueue(2, "random", threading.Event())


def test_latency_is_measured_from_arrival_to_writing():
    latency = Latency()
    assert latency.percentile(50) is None
    now = time.monotonic()
    latency.arrived(0, now - 0.5)
    latency.arrived(1, now - 0.1)
    latency.written(0)
    latency.written(1)
    latency.written(7)  # never arrived: no sample
    assert latency.percentile(0) == pytest.approx(0.1, abs=0.05)
    assert latency.percentile(100) == pytest.approx(0.5, abs=0.05)


class Stamped:
    def __init__(self, index):
        self.index = index


def test_latency_parts_add_up_to_the_whole():
    latency = Latency()
    assert latency.parts() == {}
    for index in range(4):
        latency.arrived(index, time.monotonic())
        time.sleep(0.01)
        latency.mark([Stamped(index)], "inferring")
        time.sleep(0.03)
        latency.mark([Stamped(index)], "inferred")
        latency.mark([Stamped(index)], "rendered")
        time.sleep(0.02)
        latency.written(index)
    parts = latency.parts()
    assert set(parts) == {"total", "queue", "inference", "render", "encode"}
    assert parts["inference"]["p50"] == pytest.approx(0.03, abs=0.02)
    assert parts["queue"]["p50"] < parts["inference"]["p50"]
    assert parts["render"]["p95"] < 0.01
    assert parts["encode"]["p50"] == pytest.approx(0.02, abs=0.015)
    total = sum(parts[part]["p50"] for part in ("queue", "inference", "render", "encode"))
    assert parts["total"]["p50"] == pytest.approx(total, abs=0.02)


def test_latency_without_marks_has_only_the_whole():
    """A transport that marks nothing (Redis) still gives arrival → encoded."""
    latency = Latency()
    latency.arrived(0, time.monotonic() - 0.2)
    latency.written(0)
    assert set(latency.parts()) == {"total"}
