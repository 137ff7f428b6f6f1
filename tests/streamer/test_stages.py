"""Stages: threads joined by bounded queues; the first error stops them all."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from streamer.stages import END, Stages, Stopped

pytestmark = pytest.mark.timeout(20)


def wait_until(condition, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_first_error_stops_stages_blocked_on_put_and_on_get():
    stages = Stages()
    full = queue.Queue(maxsize=1)
    full.put("occupied")
    empty = queue.Queue()
    seen: dict[str, BaseException] = {}
    started = threading.Barrier(3)

    def blocked_on_put():
        started.wait()
        try:
            stages.put(full, "more")
        except Stopped as stop:
            seen["put"] = stop
            raise

    def blocked_on_get():
        started.wait()
        try:
            stages.get(empty)
        except Stopped as stop:
            seen["get"] = stop
            raise

    def failing():
        started.wait()
        time.sleep(0.2)  # the others are blocked by now
        raise ValueError("decoder broke")

    threads = [stages.spawn("put", blocked_on_put), stages.spawn("get", blocked_on_get), stages.spawn("fail", failing)]
    for thread in threads:
        thread.join(3)
    assert not any(thread.is_alive() for thread in threads)
    assert set(seen) == {"put", "get"}
    assert stages.stop.is_set()
    assert len(stages.errors) == 1
    assert isinstance(stages.errors[0], ValueError) and str(stages.errors[0]) == "decoder broke"
    assert full.qsize() == 1  # the blocked put never went through


def test_errors_start_with_the_first_error():
    stages = Stages()
    first = RuntimeError("first")

    def fails_first():
        raise first

    def fails_when_stopped():
        while True:
            try:
                stages.get(queue.Queue())
            except Stopped:
                raise OSError("cleanup failed after the stop") from None

    stages.spawn("second", fails_when_stopped)
    time.sleep(0.15)
    stages.spawn("first", fails_first)
    for thread in stages.threads:
        thread.join(3)
    assert stages.errors[0] is first
    assert all(not thread.is_alive() for thread in stages.threads)


def test_a_clean_finish_records_no_error_and_does_not_stop_others():
    stages = Stages()
    items = queue.Queue()

    def produce():
        for i in range(3):
            stages.put(items, i)
        stages.put(items, END)

    got = []

    def consume():
        while (item := stages.get(items)) is not END:
            got.append(item)

    stages.spawn("produce", produce)
    stages.spawn("consume", consume)
    for thread in stages.threads:
        thread.join(3)
    assert got == [0, 1, 2]
    assert stages.errors == []
    assert not stages.stop.is_set()


def test_shutdown_joins_every_thread_promptly():
    stages = Stages()
    full = queue.Queue(maxsize=1)
    full.put(0)
    for i in range(3):
        stages.spawn(f"get{i}", lambda: stages.get(queue.Queue()))
        stages.spawn(f"put{i}", lambda: stages.put(full, 1))
    time.sleep(0.2)
    assert all(thread.is_alive() for thread in stages.threads)

    started = time.monotonic()
    stages.shutdown()
    assert time.monotonic() - started < 1.5
    assert stages.stop.is_set()
    assert not any(thread.is_alive() for thread in stages.threads)
    assert stages.errors == []  # being stopped is not an error


def test_put_and_get_raise_stopped_once_stopped():
    stages = Stages()
    stages.stop.set()
    with pytest.raises(Stopped):
        stages.put(queue.Queue(), 1)
    with pytest.raises(Stopped):
        stages.get(queue.Queue())


def test_take_returns_full_batches_and_a_short_one_only_at_end():
    stages = Stages()
    items = queue.Queue()
    for i in range(5):
        items.put(i)
    items.put(END)
    assert stages.take(items, 2) == [0, 1]
    assert stages.take(items, 2) == [2, 3]
    assert stages.take(items, 2) == [4]  # END is not returned
    items.put(END)
    assert stages.take(items, 2) == []


def test_take_waits_for_a_full_batch_rather_than_returning_what_is_there():
    stages = Stages()
    items = queue.Queue()
    items.put("a")

    def late():
        time.sleep(0.3)
        items.put("b")

    threading.Thread(target=late, daemon=True).start()
    started = time.monotonic()
    assert stages.take(items, 2) == ["a", "b"]
    assert time.monotonic() - started >= 0.25


def test_take_raises_stopped_while_waiting():
    stages = Stages()
    items = queue.Queue()
    items.put("a")
    threading.Timer(0.2, stages.stop.set).start()
    with pytest.raises(Stopped):
        stages.take(items, 3)
