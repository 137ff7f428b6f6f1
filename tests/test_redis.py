"""The distributed pipeline against a real redis-server and real worker processes."""

import json
import signal
import threading
import time
from fractions import Fraction

import numpy as np
import pytest
import redis
from media import make_video, probe
from redis_fixtures import RedisServer

from streamer.distributed.connection import Keys, RedisConfig
from streamer.distributed.messages import Message, encode
from streamer.errors import StreamerError
from streamer.frames import Frame
from streamer.models import ModelConfig
from streamer.pipeline import Pipeline, ProcessConfig

LEFT_HALF = "tests.models:left_half"
SLOW = "tests.models:slow"
KEYS = Keys("streamer")


def embedded(tmp_path, source, model=LEFT_HALF):
    output = tmp_path / f"embedded-{source.stem}.mp4"
    Pipeline(ProcessConfig(input=str(source), output=str(output), model=ModelConfig(name=model))).run()
    return probe(output)


def distributed(source, output, url, model=LEFT_HALF, batch=4, grace=10.0, job=None):
    config = ProcessConfig(
        input=str(source),
        output=str(output),
        model=ModelConfig(name=model, batch_size=batch),
        redis=RedisConfig(url=url, grace=grace),
        job=job,
    )
    return Pipeline(config).run()


def same_video(a, b):
    assert a["frames"] == b["frames"]
    assert a["times"] == pytest.approx(b["times"], abs=1e-9)
    for left, right in zip(a["images"], b["images"]):
        assert np.array_equal(left, right)


def wait_for(condition, timeout=30.0, what="condition"):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def job_done(client, job):
    return int(client.hget(KEYS.job(job), "done") or 0)


def test_one_job_equals_the_embedded_pipeline(tmp_path, redis_server, workers, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=40, audio="aac")
    workers.start()
    workers.start()
    output = tmp_path / "out.mp4"
    code, out, err = run_cli(
        "process", source, "-o", output, "--model", LEFT_HALF, "--redis", redis_server.url, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["frames"] == 40
    result = probe(output)
    same_video(result, embedded(tmp_path, source))
    assert result["audio_codec"] == "aac"
    client = redis_server.client()
    assert client.xlen(KEYS.work(LEFT_HALF)) == 0  # acknowledged frames are deleted
    (job,) = [member.decode() for member in client.zrange(KEYS.jobs, 0, -1)]
    assert client.hget(KEYS.job(job), "state") == b"done"
    assert 0 < client.ttl(KEYS.job(job)) <= 24 * 3600


def test_several_jobs_share_the_workers(tmp_path, redis_server, workers):
    workers.start("--batch", "2")
    workers.start("--batch", "2")
    sources = [make_video(tmp_path / f"in{i}.mp4", frames=20 + 7 * i, width=64 + 16 * i) for i in range(3)]
    results = {}

    def run(source):
        results[source] = distributed(source, tmp_path / f"out-{source.stem}.mp4", redis_server.url)

    threads = [threading.Thread(target=run, args=(source,)) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for source in sources:
        assert results[source].frames == probe(source)["frames"]
        same_video(probe(tmp_path / f"out-{source.stem}.mp4"), embedded(tmp_path, source))


def test_sigkill_mid_job_loses_nothing(tmp_path, redis_server, workers):
    source = make_video(tmp_path / "in.mp4", frames=120)
    victim = workers.start("--batch", "2", "--claim-idle", "1", model=SLOW)
    workers.start("--batch", "2", "--claim-idle", "1", model=SLOW)
    client = redis_server.client()
    output = tmp_path / "out.mp4"
    job = "killtest"
    runner = threading.Thread(target=distributed, args=(source, output, redis_server.url, SLOW, 2), kwargs={"job": job})
    runner.start()
    wait_for(lambda: job_done(client, job) >= 20, what="20 frames done")
    victim.send_signal(signal.SIGKILL)
    runner.join(90)
    assert not runner.is_alive()
    same_video(probe(output), embedded(tmp_path, source))
    assert client.hget(KEYS.job(job), "state") == b"done"


def test_workers_restarted_mid_job(tmp_path, redis_server, workers):
    source = make_video(tmp_path / "in.mp4", frames=80)
    first = workers.start("--batch", "2", "--claim-idle", "1", model=SLOW)
    client = redis_server.client()
    output = tmp_path / "out.mp4"
    runner = threading.Thread(
        target=distributed, args=(source, output, redis_server.url, SLOW, 2), kwargs={"job": "restart"}
    )
    runner.start()
    wait_for(lambda: job_done(client, "restart") >= 10, what="10 frames done")
    first.send_signal(signal.SIGKILL)
    first.wait()
    workers.start("--batch", "2", "--claim-idle", "1", model=SLOW)
    runner.join(90)
    assert not runner.is_alive(), "the job did not finish after its worker was replaced"
    assert client.hget(KEYS.job("restart"), "state") == b"done"
    same_video(probe(output), embedded(tmp_path, source))


def test_submit_status_and_cancel(tmp_path, redis_server, workers, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=300)
    output = tmp_path / "out.mp4"
    workers.start("--batch", "1", "--allow-input", tmp_path, "--allow-output", tmp_path, model=SLOW, jobs=1)
    code, out, err = run_cli(
        "submit", source, "-o", output, "--model", SLOW, "--batch", "1", "--redis", redis_server.url
    )
    assert code == 0, err
    job = out.strip()
    client = redis_server.client()
    wait_for(lambda: job_done(client, job) >= 5, what="the submitted job to run")
    code, out, err = run_cli("status", job, "--redis", redis_server.url, "--json")
    assert code == 0, err
    status = json.loads(out)
    (listed,) = status["jobs"]
    assert listed["state"] == "running" and listed["total"] == 300 and listed["done"] >= 5
    assert [worker["model"] for worker in status["workers"]] == [SLOW]
    code, out, err = run_cli("status", job, "--redis", redis_server.url)  # a job's status: its table alone
    assert code == 0 and "jobs" in out and "running" in out
    assert "workers" not in out and "backlogs" not in out
    code, out, err = run_cli("cancel", job, "--redis", redis_server.url)
    assert code == 0 and f"cancelled {job}" in out
    wait_for(lambda: not any(".part" in path.name for path in tmp_path.iterdir()), what="the partial file removed")
    assert not output.exists()
    assert client.hget(KEYS.job(job), "state") == b"cancelled"
    code, _, err = run_cli("cancel", job, "--redis", redis_server.url)
    assert code == 2 and "already ended" in err


def test_password_protected_redis(tmp_path, workers, run_cli):
    server = RedisServer(tmp_path, password="s3cret").start()
    try:
        source = make_video(tmp_path / "in.mp4", frames=10)
        workers.url = server.url
        workers.start()
        code, _, err = run_cli(
            "process", source, "-o", tmp_path / "out.mp4", "--model", LEFT_HALF, "--redis", server.url, "-q"
        )
        assert code == 0, err
        assert probe(tmp_path / "out.mp4")["frames"] == 10
        wrong = server.url.replace("s3cret", "nope")
        code, _, err = run_cli("status", "--redis", wrong)
        assert code == 2 and "refused the credentials" in err and "nope" not in err
        code, _, err = run_cli("status", "--redis", server.url.replace(":s3cret@", ""))
        assert code == 2 and "needs a password" in err
    finally:
        server.stop()


def test_malformed_messages_are_rejected_and_counted(tmp_path, redis_server, workers):
    client = redis_server.client()
    worker = workers.start()
    stream = KEYS.work(LEFT_HALF)
    good = encode(Message("ghost", Frame(0, 0, Fraction(1, 30), np.zeros((4, 4, 3), np.uint8))))
    wait_for(lambda: client.exists(stream), what="the worker's group")
    client.xadd(stream, {"v": "1", "data": b"\x80\x04\x95pickle"})  # no header at all
    client.xadd(stream, {**good, b"v": b"2"})  # unknown version
    client.xadd(stream, {**good, b"shape": b"4,4,4"})  # not RGB
    client.xadd(stream, {**good, b"data": b"short"})  # payload does not fit its shape
    wait_for(lambda: int(client.hget(KEYS.stats, "rejected") or 0) == 4, what="4 rejections")
    assert client.xlen(KEYS.dead) == 4
    assert client.xlen(stream) == 0
    source = make_video(tmp_path / "in.mp4", frames=12)
    assert distributed(source, tmp_path / "out.mp4", redis_server.url).frames == 12
    assert worker.poll() is None


def test_frame_failing_every_delivery_fails_the_job(tmp_path, redis_server, workers):
    crash = "tests.models:crash_on_bright"
    source = make_video(tmp_path / "in.mp4", frames=12)  # frame 5 is bright
    workers.start("--batch", "1", "--claim-idle", "0.5", "--max-deliveries", "2", model=crash)
    with pytest.raises(StreamerError, match="frame 5 not processed after 2 deliveries"):
        distributed(source, tmp_path / "out.mp4", redis_server.url, crash, batch=1)
    assert not (tmp_path / "out.mp4").exists()
    dead = redis_server.client().xrange(KEYS.dead)
    assert [entry[b"index"] for _, entry in dead] == [b"5"]


def test_classes_the_model_lacks_fail_the_job_not_the_worker(tmp_path, redis_server, workers, run_cli):
    instances = "tests.models:two_instances"
    worker = workers.start(model=instances)
    source = make_video(tmp_path / "in.mp4", frames=6)
    code, _, err = run_cli(
        "process",
        source,
        "-o",
        tmp_path / "out.mp4",
        "--model",
        instances,
        "--redis",
        redis_server.url,
        "--effect",
        "splash",
        "--classes",
        "balloon",
    )
    assert code == 2 and "--classes balloon: not classes of this model" in err
    assert not (tmp_path / "out.mp4").exists()
    assert worker.poll() is None  # still serving
    code, _, err = run_cli(
        "process",
        source,
        "-o",
        tmp_path / "out.mp4",
        "--model",
        instances,
        "--redis",
        redis_server.url,
        "--effect",
        "splash",
        "--classes",
        "square",
        "-q",
    )
    assert code == 0, err


def test_redis_lost_mid_job_fails_clearly(tmp_path, redis_server, workers):
    source = make_video(tmp_path / "in.mp4", frames=200)
    workers.start("--batch", "2", model=SLOW)
    client = redis_server.client()
    errors = []

    def run():
        try:
            distributed(source, tmp_path / "out.mp4", redis_server.url, SLOW, batch=2, grace=2.0, job="lost")
        except StreamerError as error:
            errors.append(error)

    runner = threading.Thread(target=run)
    runner.start()
    wait_for(lambda: job_done(client, "lost") >= 10, what="10 frames done")
    stopped = time.time()
    redis_server.stop()
    runner.join(30)
    assert not runner.is_alive()
    assert time.time() - stopped < 15
    assert errors and "lost Redis" in str(errors[0]) and "gave up after 2 s" in str(errors[0])
    assert not (tmp_path / "out.mp4").exists()
    assert not any(".part" in path.name for path in tmp_path.iterdir())


def test_acl_user_database_and_namespace(tmp_path, redis_server, workers, run_cli):
    admin = redis_server.client()
    admin.acl_setuser("alice", enabled=True, passwords=["+wonder"], keys=["team:*"], commands=["+@all"], channels=["*"])
    url = f"redis://alice:wonder@127.0.0.1:{redis_server.port}/1"
    workers.url = url
    workers.start("--namespace", "team:a")
    source = make_video(tmp_path / "in.mp4", frames=9)
    code, _, err = run_cli(
        "process",
        source,
        "-o",
        tmp_path / "out.mp4",
        "--model",
        LEFT_HALF,
        "--redis",
        url,
        "--namespace",
        "team:a",
        "-q",
    )
    assert code == 0, err
    same_video(probe(tmp_path / "out.mp4"), embedded(tmp_path, source))
    database1 = redis.Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/1")
    keys = [key.decode() for key in database1.keys("*")]
    assert keys and all(key.startswith("team:a:") for key in keys)
    assert admin.keys("*") == []  # database 0 untouched


def test_frames_in_flight_stay_bounded(tmp_path, redis_server, workers, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=60)
    workers.start("--batch", "2", model=SLOW)
    client = redis_server.client()
    seen = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            streams = [KEYS.work(SLOW), *client.scan_iter(match=KEYS.results("*"))]
            snapshot = client.pipeline(transaction=True)  # one atomic look at all streams
            for stream in streams:
                snapshot.xlen(stream)
            seen.append(sum(snapshot.execute()))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    code, _, err = run_cli(
        "process",
        source,
        "-o",
        tmp_path / "out.mp4",
        "--model",
        SLOW,
        "--batch",
        "2",
        "--redis",
        redis_server.url,
        "--in-flight",
        "6",
        "-q",
    )
    done.set()
    watcher.join()
    assert code == 0, err
    assert max(seen) <= 6 and max(seen) >= 4


def test_jpeg_frames_over_redis(tmp_path, redis_server, workers, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=10, width=96, height=64)
    workers.start()
    code, _, err = run_cli(
        "process",
        source,
        "-o",
        tmp_path / "out.mp4",
        "--model",
        LEFT_HALF,
        "--redis",
        redis_server.url,
        "--frame-codec",
        "jpeg",
        "--quality",
        "95",
        "-q",
    )
    assert code == 0, err
    lossy, exact = probe(tmp_path / "out.mp4"), embedded(tmp_path, source)
    assert lossy["frames"] == 10
    for left, right in zip(lossy["images"], exact["images"]):
        assert np.abs(left.astype(int) - right).mean() < 3
