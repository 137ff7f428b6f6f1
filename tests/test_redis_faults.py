"""Redis itself failing under a running job (real redis-server, real worker processes): restarted
empty, frozen, stopped; a producer killed; an oversized payload."""

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from media import make_video, probe
from redis_fixtures import ROOT, environment
from test_redis import KEYS, LEFT_HALF, SLOW, distributed, embedded, job_done, same_video, wait_for
from test_redis_poison import frame_fields, rejected

from streamer.errors import StreamerError


def run_in_thread(call):
    errors, results = [], []

    def run():
        try:
            results.append(call())
        except StreamerError as error:
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors, results


def test_redis_restarted_empty_mid_job(tmp_path, redis_server, workers):
    """Redis loses everything mid-job: workers make their group again, the producer sends the frames it
    lost again and makes its job record again; every frame comes out exactly once."""
    source = make_video(tmp_path / "in.mp4", frames=90)
    first = workers.start("--batch", "2", model=SLOW)
    client = redis_server.client()
    output = tmp_path / "out.mp4"
    thread, errors, results = run_in_thread(
        lambda: distributed(source, output, redis_server.url, SLOW, batch=2, job="restart")
    )
    wait_for(lambda: job_done(client, "restart") >= 10, what="10 frames done")
    redis_server.stop()  # no persistence: it comes back empty, on the same port
    redis_server.start()
    fresh = workers.start("--batch", "2", model=SLOW)  # and a worker that attaches afterwards
    thread.join(60)
    assert not thread.is_alive(), "the job did not complete after Redis restarted empty"
    assert not errors, errors
    assert results[0].frames == 90
    same_video(probe(output), embedded(tmp_path, source))  # each frame once, in order, rendered
    assert client.hget(KEYS.job("restart"), "state") == b"done"
    assert first.poll() is None and fresh.poll() is None


@pytest.mark.parametrize("fault", ["frozen", "stopped"])
def test_grace_is_kept_when_redis_freezes_or_stops(tmp_path, redis_server, workers, fault):
    source = make_video(tmp_path / "in.mp4", frames=300)
    workers.start("--batch", "2", "--grace", "2", model=SLOW)
    client = redis_server.client()
    thread, errors, _ = run_in_thread(
        lambda: distributed(source, tmp_path / "out.mp4", redis_server.url, SLOW, batch=2, grace=3.0, job="cut")
    )
    wait_for(lambda: job_done(client, "cut") >= 6, what="6 frames done")
    started = time.monotonic()
    if fault == "frozen":
        redis_server.process.send_signal(signal.SIGSTOP)
    else:
        redis_server.stop()
    try:
        thread.join(30)
        took = time.monotonic() - started
    finally:
        if fault == "frozen":
            redis_server.process.send_signal(signal.SIGCONT)
    assert not thread.is_alive()
    assert took < 3 + 5, f"exited {took:.1f} s after Redis was {fault}, with --grace 3"
    assert errors and "lost Redis" in str(errors[0]) and "gave up after 3 s" in str(errors[0])
    assert not (tmp_path / "out.mp4").exists()


PRODUCER = textwrap.dedent(
    """
    import sys
    from streamer.distributed.connection import RedisConfig
    from streamer.models import ModelConfig
    from streamer.pipeline import Pipeline, ProcessConfig

    url, source, output = sys.argv[1:4]
    redis = RedisConfig(url=url, lease=4.0, job_ttl=4.0, in_flight=16)
    model = ModelConfig(name="tests.models:slow", batch_size=2)
    Pipeline(ProcessConfig(input=source, output=output, model=model, redis=redis, job="killed")).run()
    """
)


def test_killed_producer_shows_lost_and_its_keys_expire(tmp_path, redis_server, workers, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=600)
    workers.start("--batch", "2", model=SLOW)
    client = redis_server.client()
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, redis_server.url, str(source), str(tmp_path / "out.mp4")],
        env=environment(),
        cwd=ROOT,
    )
    try:
        wait_for(lambda: job_done(client, "killed") >= 8, what="8 frames done")
        assert client.exists(KEYS.results("killed")) or client.exists(KEYS.job("killed"))
        producer.send_signal(signal.SIGKILL)
        producer.wait(10)
    finally:
        producer.kill()
    killed = time.monotonic()

    def state():
        code, out, err = run_cli("status", "--redis", redis_server.url, "--json")
        assert code == 0, err
        jobs = {job["job"]: job for job in json.loads(out)["jobs"]}
        return jobs.get("killed", {}).get("state")

    wait_for(lambda: state() in ("lost", None), timeout=10, what="the job shown lost")
    assert time.monotonic() - killed < 2 + 3  # half the lease, plus a heartbeat
    job_keys = [KEYS.job("killed"), KEYS.results("killed"), KEYS.preview("killed")]
    wait_for(lambda: not client.exists(*job_keys), timeout=15, what="the job's keys expired")
    wait_for(lambda: client.xlen(KEYS.work(SLOW)) == 0, timeout=15, what="its queued frames gone")
    assert state() is None  # dropped from the list with its record


def test_cancelled_job_takes_its_frames_back(tmp_path, redis_server, workers, run_cli):
    """A cancelled job's queued frames leave the work stream, its results and preview are deleted."""
    source = make_video(tmp_path / "in.mp4", frames=300)
    client = redis_server.client()
    thread, errors, _ = run_in_thread(
        lambda: distributed(source, tmp_path / "out.mp4", redis_server.url, SLOW, job="cancelled")
    )
    wait_for(lambda: client.xlen(KEYS.work(SLOW)) >= 32, what="frames queued with no worker")
    code, _, err = run_cli("cancel", "cancelled", "--redis", redis_server.url)
    assert code == 0, err
    thread.join(20)
    assert not thread.is_alive() and errors and "cancelled" in str(errors[0])
    assert client.xlen(KEYS.work(SLOW)) == 0
    assert not client.exists(KEYS.results("cancelled"), KEYS.preview("cancelled"))
    assert 0 < client.ttl(KEYS.job("cancelled")) <= 24 * 3600


def test_dead_workers_leave_the_group(tmp_path, redis_server, workers):
    """A consumer that has been idle long with nothing pending (a worker that died) is removed."""
    client = redis_server.client()
    live = workers.start("--claim-idle", "0.5", "--name", "live")
    stream = KEYS.work(LEFT_HALF)
    wait_for(lambda: client.exists(stream), what="the worker's group")
    client.xgroup_createconsumer(stream, "workers", "dead")
    source = make_video(tmp_path / "in.mp4", frames=4)
    assert distributed(source, tmp_path / "out.mp4", redis_server.url).frames == 4

    def consumers():
        return {consumer["name"].decode() for consumer in client.xinfo_consumers(stream, "workers")}

    assert "dead" in consumers()
    wait_for(lambda: "dead" not in consumers(), timeout=15, what="the dead worker removed from the group")
    assert live.poll() is None


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_oversized_payload_is_refused_without_reading_it(tmp_path, redis_server, workers):
    client = redis_server.client()
    worker = workers.start()
    wait_for(lambda: client.exists(KEYS.work(LEFT_HALF)), what="the worker's group")
    time.sleep(1.0)  # settled after start-up
    before = status_kb(worker.pid, "VmRSS")
    payload = 130 * 1024 * 1024
    client.xadd(KEYS.work(LEFT_HALF), {**frame_fields(), b"data": bytes(payload)})
    wait_for(lambda: rejected(client) >= 1 and client.xlen(KEYS.dead) >= 1, what="the oversized message rejected")
    grew = status_kb(worker.pid, "VmHWM") * 1024 - before * 1024
    assert grew < 2 * payload, f"the worker's peak memory grew by {grew / 2**20:.0f} MB for a 130 MB payload"
    (_, entry), *_ = client.xrange(KEYS.dead)
    assert b"over the" in entry[b"reason"] and entry[b"job"] == b"ghost"
    assert client.xlen(KEYS.work(LEFT_HALF)) == 0
    assert worker.poll() is None
