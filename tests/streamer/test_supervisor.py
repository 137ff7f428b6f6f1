"""No long-lived thread dies without a word: a failure is logged once with its reason, the part is down (and
readiness says so) until it restarts; a fatal part stops the process with a reason instead."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from streamer.models import ModelConfig
from streamer.service.supervisor import Supervisor
from streamer.service.worker import Worker, WorkerConfig

pytestmark = pytest.mark.timeout(30)


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_failing_part_is_logged_once_reported_down_and_restarted(caplog):
    stop = threading.Event()
    supervisor = Supervisor(stop, backoff=0.3)
    runs, release = [], threading.Event()

    def part(stop):
        runs.append(time.monotonic())
        if len(runs) == 1:
            raise ConnectionError("Redis went away")
        release.wait()  # the second run stays up
        stop.wait()

    with caplog.at_level(logging.ERROR, logger="streamer.service.supervisor"):
        supervisor.start("runner0", part)
        wait_for(lambda: not supervisor.ready())
        assert supervisor.down() == ["runner0: ConnectionError: Redis went away"]
        wait_for(lambda: len(runs) == 2)
        assert supervisor.ready() and supervisor.parts[0].restarts == 1
        assert runs[1] - runs[0] >= 0.25  # after its backoff, not in a tight loop
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1 and "runner0 stopped: ConnectionError: Redis went away; restarting" in lines[0]
    release.set()
    stop.set()
    supervisor.join(5)
    assert not supervisor.parts[0].thread.is_alive()


def test_a_part_that_returns_before_it_is_stopped_counts_as_failed():
    stop = threading.Event()
    supervisor = Supervisor(stop, backoff=5.0)
    supervisor.start("preview", lambda stop: None)
    wait_for(lambda: not supervisor.ready())
    assert "returned before it was stopped" in supervisor.down()[0]
    stop.set()
    supervisor.join(5)


def test_a_fatal_part_stops_the_process_with_its_reason():
    stop = threading.Event()
    supervisor = Supervisor(stop)

    def part(stop):
        raise RuntimeError("boom")

    supervisor.start("work", part, fatal=True)
    assert stop.wait(5)
    assert supervisor.failed == "work: RuntimeError: boom" and not supervisor.ready()


class BrokenHeartbeatQueue:
    """A work queue whose heartbeat fails the first `failures` times."""

    def __init__(self, failures: int):
        self.failures, self.announced = failures, 0

    def join(self):
        pass

    def take(self, count):
        time.sleep(0.01)
        return []

    def announce(self, fields, ttl):
        if self.failures:
            self.failures -= 1
            raise ValueError("unexpected reply")
        self.announced += 1

    def reachable(self):
        return True

    def leave(self):
        pass


def test_the_workers_heartbeat_restarts_after_an_unexpected_error_and_readiness_says_so():
    queue = BrokenHeartbeatQueue(failures=1)
    stop = threading.Event()
    supervisor = Supervisor(stop, backoff=0.5)
    worker = Worker(
        WorkerConfig(model=ModelConfig(name="identity"), heartbeat=0.05),
        queue=queue,
        supervisor=supervisor,
        load=lambda config: object(),
    )
    serving = threading.Thread(target=worker.serve, args=(stop,))
    serving.start()
    try:
        wait_for(lambda: supervisor.parts and not supervisor.ready())
        assert not worker.ready()  # /readyz answers 503 while the heartbeat is down
        wait_for(lambda: queue.announced > 0)
        assert worker.ready()
    finally:
        stop.set()
        serving.join(10)
