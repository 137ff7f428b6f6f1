"""`streamer batch` against a real S3-protocol server (moto's server mode) on loopback, through s3fs."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from media import make_video, probe
from pycocotools import mask as rle
from redis_fixtures import ROOT, environment
from s3_fixtures import S3Server

from streamer.distributed.connection import Keys
from streamer.models import ModelConfig
from streamer.pipeline import Pipeline, ProcessConfig

LEFT_HALF = "tests.models:left_half"
KEYS = Keys("streamer")


@pytest.fixture
def s3():
    with S3Server() as fs:
        yield fs


def upload_inputs(fs, tmp_path):
    sources = {}
    for name, frames in (("a.mp4", 12), ("b.mp4", 18)):
        sources[name] = make_video(tmp_path / name, frames=frames, width=64 + 16 * len(sources))
        fs.put_file(str(sources[name]), f"videos/in/{name}")
    fs.pipe_file("videos/in/c.mp4", b"\x00\x00\x00\x18ftypmp42 this is not a video" * 20)
    return sources


def batch(fs, *extra, model=LEFT_HALF):
    command = [
        sys.executable,
        "-m",
        "streamer",
        "batch",
        "s3://videos/in/*.mp4",
        "-o",
        "s3://videos/out",
        "--endpoint-url",
        fs.endpoint,
        "--storage-option",
        "key=test",
        "--storage-option",
        "secret=test",
        "--model",
        model,
        "--json",
        *extra,
    ]
    return subprocess.Popen(
        command, env=environment(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process):
    """(exit code, the report: one JSON line per video, stderr)."""
    out, err = process.communicate(timeout=120)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return process.returncode, {"videos": lines, "frames": sum(video["frames"] for video in lines)}, err


def same_as_embedded(fs, tmp_path, name, source):
    local = tmp_path / f"down-{name}"
    fs.get_file(f"videos/out/{name}", str(local))
    expected = tmp_path / f"embedded-{name}"
    Pipeline(ProcessConfig(input=str(source), output=str(expected), model=ModelConfig(name=LEFT_HALF))).run()
    got, want = probe(local), probe(expected)
    assert got["frames"] == want["frames"] and got["times"] == pytest.approx(want["times"])
    assert all(np.array_equal(a, b) for a, b in zip(got["images"], want["images"]))


def test_batch_with_a_corrupt_video_then_a_rerun(s3, tmp_path):
    sources = upload_inputs(s3, tmp_path)
    code, report, err = finish(batch(s3))
    assert code == 1, err  # some failed
    states = {video["input"].rsplit("/", 1)[1]: video["state"] for video in report["videos"]}
    assert states == {"a.mp4": "done", "b.mp4": "done", "c.mp4": "failed"}
    assert report["frames"] == 30
    for name in ("a.mp4", "b.mp4"):
        same_as_embedded(s3, tmp_path, name, sources[name])
    assert sorted(s3.ls("videos/out", detail=False)) == [
        "videos/out/.streamer",
        "videos/out/a.mp4",
        "videos/out/b.mp4",
        "videos/out/manifest.json",
    ]
    manifest = json.loads(s3.cat_file("videos/out/manifest.json"))["videos"]
    assert "not a readable video" in manifest["s3://videos/in/c.mp4"]["reason"]

    code, report, err = finish(batch(s3))
    states = {video["input"].rsplit("/", 1)[1]: video["state"] for video in report["videos"]}
    assert code == 1 and states == {"a.mp4": "skipped", "b.mp4": "skipped", "c.mp4": "failed"}


def test_a_killed_batch_finishes_on_rerun(s3, tmp_path):
    sources = upload_inputs(s3, tmp_path)
    s3.rm("videos/in/c.mp4")
    for name in ("d.mp4", "e.mp4"):
        sources[name] = make_video(tmp_path / name, frames=40)
        s3.put_file(str(sources[name]), f"videos/in/{name}")
    first = batch(s3, "--stale", "2", model="tests.models:slow")
    deadline = time.time() + 60
    while not recorded_done(s3, "a.mp4"):
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    s3.invalidate_cache()
    done_before = {path.rsplit("/", 1)[1] for path in s3.ls("videos/out", detail=False)} - {".streamer"}
    assert "a.mp4" in done_before and "e.mp4" not in done_before
    assert not [path for path in s3.ls("videos/out", detail=False) if ".part" in path]

    code, report, err = finish(batch(s3, "--stale", "2", model="tests.models:slow"))
    assert code == 0, err
    states = {video["input"].rsplit("/", 1)[1]: video["state"] for video in report["videos"]}
    assert states["a.mp4"] == "skipped" and states["e.mp4"] == "done"
    s3.invalidate_cache()
    for name in ("a.mp4", "b.mp4", "d.mp4", "e.mp4"):
        assert probe_remote(s3, tmp_path, name) == probe(sources[name])["frames"]


def test_batch_writes_each_videos_detections_beside_it_in_the_bucket(s3, tmp_path):
    upload_inputs(s3, tmp_path)
    s3.rm("videos/in/c.mp4")
    code, report, err = finish(
        batch(s3, "--effect", "splash", "--classes", "square", "--detections", model="tests.models:two_instances")
    )
    assert code == 0, err
    assert sorted(s3.ls("videos/out", detail=False)) == [
        "videos/out/.streamer",
        "videos/out/a.jsonl",
        "videos/out/a.mp4",
        "videos/out/b.jsonl",
        "videos/out/b.mp4",
        "videos/out/manifest.json",
    ]
    for name, frames, width in (("a", 12, 64), ("b", 18, 80)):
        records = [json.loads(line) for line in s3.cat_file(f"videos/out/{name}.jsonl").decode().splitlines()]
        assert [record["frame"] for record in records] == list(range(frames))
        assert all(record["classes"] == ["square"] for record in records)  # --classes applies to the records
        square = rle.decode(records[0]["masks"][0])
        assert square.shape == (48, width) and square[:24, : width // 2].all() and square.sum() == 24 * (width // 2)


def state_of(fs, name):
    """The per-video state object a runner keeps in DEST/.streamer (None before the video starts)."""
    fs.invalidate_cache()
    try:
        return json.loads(fs.cat_file(f"videos/out/.streamer/{name}.json"))
    except FileNotFoundError:
        return None


def recorded_done(fs, name):
    return (state_of(fs, name) or {}).get("state") == "done"


def probe_remote(fs, tmp_path, name):
    local = tmp_path / f"check-{name}"
    fs.get_file(f"videos/out/{name}", str(local))
    return probe(local)["frames"]


def test_local_folders_in_parallel_and_on_a_workers_runner(tmp_path, redis_server, workers, run_cli):
    folder = tmp_path / "in"
    folder.mkdir()
    sources = {name: make_video(folder / name, frames=10 + 5 * i) for i, name in enumerate(("x.mp4", "y.mkv"))}
    code, out, err = run_cli(
        "batch", str(folder / "*"), "-o", tmp_path / "out", "--model", LEFT_HALF, "--runners", "2", "--json"
    )
    assert code == 0, err
    assert [json.loads(line)["state"] for line in out.splitlines()] == ["done", "done"]
    # a `streamer worker` whose runner takes the queued videos (allowed to read and write there)
    workers.start("--allow-input", str(folder), "--allow-output", str(tmp_path / "out-redis"), jobs=1)
    code, out, err = run_cli(
        "batch",
        str(folder / "*"),
        "-o",
        tmp_path / "out-redis",
        "--model",
        LEFT_HALF,
        "--redis",
        redis_server.url,
        "--workers",
        "0",
        "--json",
    )
    assert code == 0, err
    for name, source in sources.items():
        local, distributed = probe(tmp_path / "out" / name), probe(tmp_path / "out-redis" / name)
        assert local["frames"] == distributed["frames"] == probe(source)["frames"]
        assert all(np.array_equal(a, b) for a, b in zip(local["images"], distributed["images"]))
    client = redis_server.client()  # one done job per video, run by the worker's runner
    jobs = client.zrange(KEYS.jobs, 0, -1)
    records = [client.hgetall(KEYS.job(job.decode())) for job in jobs]
    assert len(jobs) == 2 and {record[b"state"] for record in records} == {b"done"}
    assert all(b"-runner0" in record[b"runner"] for record in records)
