"""`streamer batch` shared by many runners: Redis-queued videos, claims, sharding, changed inputs.

On a real redis-server and the S3 test server (moto's server mode, with bucket versioning on, so an
output published twice would show two versions).
"""

import json
import os
import signal
import subprocess
import sys
import time

import boto3
import pytest
from media import make_video, probe
from redis_fixtures import ROOT, environment
from s3_fixtures import S3Server
from test_batch import batch, finish, probe_remote, state_of

from streamer.batch import shard_of
from streamer.distributed.connection import Keys
from streamer.job import ProcessConfig

SLOW = "tests.models:slow"
KEYS = Keys("streamer")


@pytest.fixture
def s3():
    with S3Server() as fs:
        client = boto3.client(
            "s3",
            endpoint_url=fs.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        client.put_bucket_versioning(Bucket="videos", VersioningConfiguration={"Status": "Enabled"})
        fs.client = client
        yield fs


def versions(fs, key):
    listed = fs.client.list_object_versions(Bucket="videos", Prefix=key).get("Versions", [])
    return [version for version in listed if version["Key"] == key]


def upload(fs, tmp_path, frames: dict[str, int]):
    sources = {}
    for name, count in frames.items():
        sources[name] = make_video(tmp_path / name, frames=count)
        fs.put_file(str(sources[name]), f"videos/in/{name}")
    return sources


def claims(fs):
    fs.invalidate_cache()
    return sorted(path.rsplit("/", 1)[1] for path in fs.ls("videos/out/.streamer", detail=False) if "claim" in path)


def test_two_batch_commands_over_the_same_inputs_process_each_video_once(s3, tmp_path, redis_server, run_cli):
    frames = {"a.mp4": 12, "b.mp4": 20, "c.mp4": 16, "d.mp4": 8}
    sources = upload(s3, tmp_path, frames)
    first = batch(s3, "--redis", redis_server.url, "--workers", "1", model=SLOW)
    second = batch(s3, "--redis", redis_server.url, "--workers", "1", model=SLOW)
    (code1, report1, err1), (code2, report2, err2) = finish(first), finish(second)
    assert code1 == 0 and code2 == 0, err1 + err2
    for report in (report1, report2):  # each command reports every video, done once by someone
        assert sorted((v["input"].rsplit("/", 1)[1], v["state"], v["frames"]) for v in report["videos"]) == sorted(
            (name, "done", count) for name, count in frames.items()
        )
    assert claims(s3) == sorted(f"{name}.1.claim" for name in frames)  # one claim each: no second attempt
    for name in frames:
        assert len(versions(s3, f"out/{name}")) == 1, name  # published once
        assert probe_remote(s3, tmp_path, name) == probe(sources[name])["frames"]
        assert state_of(s3, name)["state"] == "done" and state_of(s3, name)["attempt"] == 1
    client = redis_server.client()
    assert client.zcard(KEYS.jobs) == len(frames)  # one job per video between the two commands
    runners = {client.hget(KEYS.job(job.decode()), "runner") for job in client.zrange(KEYS.jobs, 0, -1)}
    assert len(runners) == 2  # both commands' runners took videos
    manifest = json.loads(s3.cat_file("videos/out/manifest.json"))
    assert manifest["summary"]["done"] == 4 and manifest["summary"]["frames"] == sum(frames.values())
    code, out, err = run_cli("status", "--redis", redis_server.url, "--json")
    assert code == 0, err
    [progress] = json.loads(out)["batches"]
    assert progress["dest"] == "s3://videos/out" and (progress["done"], progress["failed"], progress["left"]) == (
        4,
        0,
        0,
    )
    assert progress["frames"] == sum(frames.values()) and progress["fps"] > 0 and progress["eta"] is None
    code, out, err = run_cli("status", "--redis", redis_server.url)
    assert code == 0 and "batches" in out and "s3://videos/out" in out


def test_two_batch_commands_without_redis_claim_each_video_once_on_s3(s3, tmp_path):
    frames = {"a.mp4": 16, "b.mp4": 12, "c.mp4": 20, "d.mp4": 8}
    upload(s3, tmp_path, frames)
    first = batch(s3, "--workers", "2", model=SLOW)
    second = batch(s3, "--workers", "2", model=SLOW)
    (code1, report1, err1), (code2, report2, err2) = finish(first), finish(second)
    assert code1 == 0 and code2 == 0, err1 + err2
    for name, count in frames.items():  # one command processed it, the other waited and skipped it
        outcomes = sorted(
            (v["state"], v["frames"]) for v in report1["videos"] + report2["videos"] if v["input"].endswith(name)
        )
        assert outcomes == [("done", count), ("skipped", count)], name
        assert len(versions(s3, f"out/{name}")) == 1, name
    assert claims(s3) == sorted(f"{name}.1.claim" for name in frames)  # conditional creates: one winner each


def test_a_killed_runners_video_is_redone_by_another_and_published_once(s3, tmp_path, redis_server):
    sources = upload(s3, tmp_path, {"long.mp4": 160})
    env = dict(environment(), AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    worker = subprocess.Popen(
        [sys.executable, "-m", "streamer", "worker", "--model", SLOW, "--redis", redis_server.url, "--jobs", "1"]
        + ["--allow-input", "s3://videos/in/", "--allow-output", "s3://videos/out/"],
        env=env,
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    # the command only queues (--workers 0): the worker's runner takes the video
    queued = batch(s3, "--redis", redis_server.url, "--workers", "0", "--stale", "2", model=SLOW)
    try:
        deadline = time.time() + 60
        while (state_of(s3, "long.mp4") or {}).get("frames", 0) < 8:  # mid-video (heartbeats carry progress)
            assert time.time() < deadline and worker.poll() is None and queued.poll() is None
            time.sleep(0.1)
        assert "runner0" in state_of(s3, "long.mp4")["runner"]
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        another = subprocess.run(
            [
                sys.executable,
                "-m",
                "streamer",
                "batch",
                "--join",
                "--redis",
                redis_server.url,
                "--stale",
                "2",
                "--idle",
                "1",
                "--allow-input",
                "s3://videos/in/",
                "--allow-output",
                "s3://videos/out/",
                "--storage-option",
                "key=test",
                "--storage-option",
                "secret=test",
            ],
            env=environment(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert another.returncode == 0, another.stderr
        code, report, err = finish(queued)
    finally:
        for process in (worker, queued):
            if process.poll() is None:
                process.kill()
    assert code == 0, err
    assert [(v["state"], v["frames"]) for v in report["videos"]] == [("done", 160)]
    state = state_of(s3, "long.mp4")
    assert state["state"] == "done" and state["attempt"] == 2 and "runner0" not in state["runner"]
    assert claims(s3) == ["long.mp4.1.claim", "long.mp4.2.claim"]
    assert len(versions(s3, "out/long.mp4")) == 1  # the killed runner published nothing
    assert probe_remote(s3, tmp_path, "long.mp4") == probe(sources["long.mp4"])["frames"]
    assert not [path for path in s3.ls("videos/out", detail=False) if ".part" in path]


def test_a_changed_input_is_redone_and_the_others_skipped(s3, tmp_path):
    upload(s3, tmp_path, {"a.mp4": 12, "b.mp4": 10})
    code, report, err = finish(batch(s3))
    assert code == 0, err
    changed = make_video(tmp_path / "b2.mp4", frames=22)
    s3.put_file(str(changed), "videos/in/b.mp4")  # same name, new content (new size and etag)
    code, report, err = finish(batch(s3))
    assert code == 0, err
    states = {v["input"].rsplit("/", 1)[1]: (v["state"], v["frames"]) for v in report["videos"]}
    assert states == {"a.mp4": ("skipped", 12), "b.mp4": ("done", 22)}
    assert probe_remote(s3, tmp_path, "b.mp4") == 22
    assert len(versions(s3, "out/a.mp4")) == 1 and len(versions(s3, "out/b.mp4")) == 2
    assert state_of(s3, "b.mp4")["attempt"] == 2


def test_shards_are_disjoint_and_cover_the_inputs(tmp_path, run_cli):
    folder = tmp_path / "in"
    folder.mkdir()
    names = [f"clip{i}.mp4" for i in range(7)]
    for name in names:
        make_video(folder / name, frames=4, width=32, height=32)
    processed = []
    for index in range(3):
        code, out, err = run_cli(
            "batch", str(folder / "*.mp4"), "-o", tmp_path / "out", "--model", "tests.models:left_half",
            "--shard", f"{index}/3", "--json",
        )  # fmt: skip
        assert code == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert all(line["state"] == "done" for line in lines)
        shard = [line["input"].rsplit("/", 1)[1] for line in lines]
        assert shard == sorted(name for name in names if shard_of(name, 3) == index)  # stable by name
        processed += shard
    assert sorted(processed) == sorted(names)  # disjoint and covering
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == sorted(names)
    code, out, err = run_cli("batch", str(folder / "*.mp4"), "-o", tmp_path / "out", "--shard", "3/3")
    assert code == 2 and "--shard 3/3" in err
    code, out, err = run_cli("batch", "-o", tmp_path / "out", "--report", "--json")
    assert code == 0 and json.loads(out)["done"] == 7


def test_a_runner_refuses_a_queued_video_outside_what_it_may_read_and_write(tmp_path, redis_server):
    from streamer.batch import BatchConfig, make_task, run_queued
    from streamer.distributed.confine import Confinement
    from streamer.distributed.connection import RedisConfig
    from streamer.distributed.jobs import JobSpec, JobStore
    from streamer.storage import expand

    (tmp_path / "in").mkdir()
    make_video(tmp_path / "in" / "x.mp4", frames=4)
    config = BatchConfig(inputs=[str(tmp_path / "in" / "*.mp4")], dest=str(tmp_path / "out"))
    [entry] = expand(config.inputs)
    client, redis = redis_server.client(), RedisConfig(url=redis_server.url)
    JobStore(client, KEYS).create("j1", JobSpec(job=ProcessConfig(input="x.mp4")), state="queued")
    allowed = Confinement(inputs=[str(tmp_path / "in")], outputs=[str(tmp_path / "elsewhere")])
    report = run_queued(client, redis, "j1", make_task(config, entry, 0).to_json(), "r1", None, allowed)
    assert report.state == "failed" and "not allowed" in report.reason
    assert JobStore(client, KEYS).state("j1") == "failed"
    assert not (tmp_path / "out").exists()  # nothing written, not even the video's state


def test_claims_on_a_store_without_a_conditional_create_go_through_a_redis_lock(redis_server, monkeypatch):
    import streamer.batch as batch_module

    monkeypatch.setattr(batch_module.state, "_conditional", lambda fs: False)  # as gcsfs/adlfs would be
    client = redis_server.client()
    one = batch_module.StateStore("memory://locks/out", locks=client, namespace="streamer")
    other = batch_module.StateStore("memory://locks/out", locks=client, namespace="streamer")
    assert one.create("x.mp4.1.claim", {"runner": "a", "time": 1.0})
    assert not other.create("x.mp4.1.claim", {"runner": "b", "time": 2.0})  # the lock, not the store, decided
    assert other.claim_time("x.mp4", 1) == 1.0 and other.create("x.mp4.2.claim", {"runner": "b", "time": 3.0})


def test_a_queued_video_without_a_job_record_is_dead_lettered_not_run(tmp_path, redis_server):
    import threading

    from streamer.distributed.connection import RUNNER_GROUP, RedisConfig, ensure_group
    from streamer.service.runner import Runner

    client = redis_server.client()
    ensure_group(client, KEYS.submitted, RUNNER_GROUP)
    forged = {"input": str(tmp_path / "x.mp4"), "dest": str(tmp_path / "out")}
    client.xadd(KEYS.submitted, {"job": "forged", "task": json.dumps(forged)})
    runner = Runner(client, RedisConfig(url=redis_server.url), "r1")
    stop = threading.Event()
    thread = threading.Thread(target=runner.serve, args=(stop,), daemon=True)
    thread.start()
    deadline = time.time() + 10
    while client.xlen(KEYS.submitted) and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=10)
    [(_, dead)] = client.xrange(KEYS.dead)
    assert dead[b"reason"] == b"batch video without a job record" and dead[b"job"] == b"forged"
    assert client.xlen(KEYS.submitted) == 0 and not client.exists(KEYS.job("forged"))
    assert not (tmp_path / "out").exists()


def test_a_queued_video_leaves_the_cpu_threads_to_the_runner_that_takes_it(tmp_path):
    from dataclasses import replace

    from streamer.batch import BatchConfig, VideoTask, make_task
    from streamer.storage import expand

    (tmp_path / "in").mkdir()
    make_video(tmp_path / "in" / "x.mp4", frames=2)
    config = BatchConfig(inputs=[str(tmp_path / "in" / "*.mp4")], dest=str(tmp_path / "out"))
    config.job = replace(config.job, model=replace(config.job.model, threads=3, batch_size=2))
    [entry] = expand(config.inputs)
    task = VideoTask.from_json(make_task(config, entry, 0).to_json())
    assert task.job.model.threads is None and task.job.model.batch_size == 2
