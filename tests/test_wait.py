"""`submit --wait` and `status JOB --watch`: they follow a job in Redis until it ends, and exit with its outcome
(0 done, 1 failed or gone, 130 cancelled, 124 after --wait-timeout)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from streamer.distributed.connection import Keys, RedisConfig, connect
from streamer.distributed.jobs import CANCELLED, DONE, FAILED, JobStore
from streamer.job import ProcessConfig

KEYS = Keys("streamer")
MODEL = "tests.models:left_half"


def play(redis_url: str, ending: str | None, job: str | None = None, steps: float = 0.3) -> threading.Thread:
    """In the background: wait for a job (`job`, or the first one submitted), mark it running with some
    progress, then end it as `ending` (None: delete its record, as expiry does)."""
    jobs = JobStore(connect(RedisConfig(url=redis_url)), KEYS)

    def run():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = job or next((name for name, _ in jobs.all()), None)
            if found and jobs.get(found):
                break
            time.sleep(0.05)
        else:
            return
        time.sleep(steps)
        jobs.update(found, state="running", done=5, total=10)
        time.sleep(steps)
        if ending is None:
            jobs.client.delete(KEYS.job(found))
        else:
            jobs.finish(found, ending, 60, "it broke" if ending == FAILED else "", done=10 if ending == DONE else 5)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(("ending", "code"), [(DONE, 0), (FAILED, 1), (CANCELLED, 130), (None, 1)])
def test_submit_wait_exits_with_the_outcome(redis_server, run_cli, ending, code):
    thread = play(redis_server.url, ending)
    started = time.monotonic()
    result, out, err = run_cli(
        "submit", "in.mp4", "-o", "out.mp4", "--model", MODEL, "--redis", redis_server.url, "--wait"
    )
    thread.join()
    assert result == code, err
    [job] = out.split()  # the id still comes first, alone on stdout
    assert f"job {job} running" in err
    if ending == FAILED:
        assert f"job {job} failed (5 frames): it broke" in err
    elif ending == DONE:
        assert f"job {job} done (10 frames)" in err
    elif ending is None:
        assert "record is gone" in err
    assert time.monotonic() - started < 10


def test_submit_wait_timeout(redis_server, run_cli):
    started = time.monotonic()
    code, out, err = run_cli(
        "submit",
        "in.mp4",
        "-o",
        "o.mp4",
        "--model",
        MODEL,
        "--redis",
        redis_server.url,
        "--wait",
        "--wait-timeout",
        "0.7",
    )
    assert code == 124 and "still queued after 0.7 s" in err and "goes on" in err
    assert 0.7 <= time.monotonic() - started < 5
    assert JobStore(redis_server.client(), KEYS).state(out.strip()) == "queued", "the job is left queued"
    for bad in (["--wait-timeout", "0", "--wait"], ["--wait-timeout", "5"]):
        code, _, err = run_cli("submit", "in.mp4", "-o", "o.mp4", "--model", MODEL, "--redis", redis_server.url, *bad)
        assert code == 2 and "--wait-timeout" in err


@pytest.mark.parametrize(("ending", "code"), [(DONE, 0), (CANCELLED, 130)])
def test_status_watch_follows_a_job_to_its_end(redis_server, run_cli, ending, code):
    jobs = JobStore(redis_server.client(), KEYS)
    from streamer.distributed.jobs import JobSpec

    jobs.create("watched", JobSpec(job=ProcessConfig(input="in.mp4")), total=10, input="in.mp4", output="out.mp4")
    thread = play(redis_server.url, ending, job="watched", steps=0.5)
    result, out, err = run_cli(
        "status", "watched", "--watch", "--json", "--interval", "0.2", "--redis", redis_server.url
    )
    thread.join()
    assert result == code, err
    states = [json.loads(line)["jobs"][0]["state"] for line in out.splitlines()]
    assert len(states) >= 3 and states[-1] == ending and "running" in states
    assert states == sorted(states, key=["running", ending].index), "one line per refresh, in order"

    jobs.create("watched2", JobSpec(job=ProcessConfig(input="in.mp4")), total=10, input="in.mp4", output="out.mp4")
    thread = play(redis_server.url, FAILED, job="watched2", steps=0.3)
    result, out, err = run_cli("status", "watched2", "--watch", "--interval", "0.2", "--redis", redis_server.url)
    thread.join()
    assert result == 1 and "failed" in out and "workers" in out
    code, _, err = run_cli("status", "nope", "--watch", "--redis", redis_server.url)
    assert code == 2 and "no job 'nope'" in err


def test_status_watch_rides_out_redis_going_away(redis_server):
    """Without JOB, --watch goes on until Ctrl-C (exit 130); while Redis is away it says so and keeps trying."""
    import signal
    import subprocess
    import sys

    from redis_fixtures import ROOT, environment

    watch = subprocess.Popen(
        [sys.executable, "-m", "streamer", "status", "--watch", "--json", "--interval", "0.2",
         "--grace", "1", "--redis", redis_server.url],
        env=environment(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert json.loads(watch.stdout.readline())["jobs"] == []
        redis_server.stop()
        for _ in range(50):
            line = json.loads(watch.stdout.readline())
            if "error" in line:
                break
        assert line["error"].startswith("Redis does not answer") and line["jobs"] == []
        redis_server.start()
        for _ in range(50):
            line = json.loads(watch.stdout.readline())
            if "error" not in line:
                break
        assert line["workers"] == [] and "error" not in line, "back once Redis is"
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=10) == 130
    finally:
        watch.kill()
        watch.wait()
