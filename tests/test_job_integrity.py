"""What runs in the distributed paths is what was asked, and no part dies or waits without a word: a submitted job
runs on its own model file; runners take jobs again after Redis restarted empty; workers give the embedded
pipeline's masks on frames of any size; a frozen Redis ends a job within its grace period."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import av
import cv2
import numpy as np
from redis_fixtures import ROOT, environment
from test_redis import KEYS, wait_for
from unet_helpers import save_gray_model

from streamer.distributed.connection import RedisConfig, socket_timeout
from streamer.job import ProcessConfig
from streamer.models import ModelConfig


def textured_video(path, width: int, height: int, frames: int, seed: int) -> str:
    """Smooth random texture drifting across the frame: a real model is unsure over much of it, so any
    difference in the pixels it is given shows in its mask."""
    rng = np.random.default_rng(seed)
    canvas = cv2.GaussianBlur(rng.integers(0, 256, (height * 2, width * 2, 3), dtype=np.uint8), (0, 0), 5)
    canvas = cv2.normalize(canvas, None, 0, 255, cv2.NORM_MINMAX)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        for index in range(frames):
            image = np.ascontiguousarray(canvas[index * 3 : index * 3 + height, index * 2 : index * 2 + width])
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return str(path)


def decoded(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def submitted_and_done(redis_server, cwd, *args: str, timeout: float = 60.0) -> str:
    """`streamer submit ARGS` as a user runs it; waits for the job to end and checks it is done. Its id."""
    submitted = subprocess.run(
        [sys.executable, "-m", "streamer", "submit", *args, "--redis", redis_server.url],
        env=environment(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()
    client = redis_server.client()
    wait_for(lambda: client.hget(KEYS.job(job), "state") in (b"done", b"failed"), timeout, "the job to end")
    assert client.hget(KEYS.job(job), "state") == b"done", client.hget(KEYS.job(job), "reason")
    return job


def test_workers_give_the_embedded_masks_on_frames_of_any_size(tmp_path, redis_server, workers):
    """The demo U-Net with --effect mask through Redis and two workers, frame for frame the embedded output, on
    sizes that are not 16:9 (4:2:0 and, at odd sizes, 4:4:4). Both run as a user runs them, in processes of their
    own (TensorFlow's threads are set once per process, and a different count can move a probability by an ulp)."""
    # float32 on both sides: `--precision auto` may pick bfloat16 where it measures faster (masks agreeing on
    # 99.9 %), and two processes measuring at once could pick differently
    for _ in range(2):
        workers.start("--batch", "4", "--precision", "f32", model="unet")
    for width, height, seed in ((488, 200, 3), (331, 197, 4)):
        source = textured_video(tmp_path / f"in{width}.mp4", width, height, 12, seed)
        embedded, distributed = tmp_path / f"embedded{width}.mkv", tmp_path / f"redis{width}.mkv"
        for output, extra in ((embedded, []), (distributed, ["--redis", redis_server.url])):
            done = subprocess.run(
                [sys.executable, "-m", "streamer", "process", source, "-o", str(output), "--effect", "mask", "-q"]
                + ["--precision", "f32", *extra],
                env=environment(),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr
        here, there = decoded(embedded), decoded(distributed)
        assert len(here) == len(there) == 12
        masks = np.stack(here)[..., 0] > 127
        assert masks.any() and not masks.all(), "a texture the model is sure about shows nothing"
        for index, (one, other) in enumerate(zip(here, there)):
            assert np.array_equal(one, other), f"{width}x{height} frame {index} differs"


def test_a_submitted_job_runs_on_its_own_model_file(tmp_path, redis_server):
    """The job names a model file the runner's worker was not started with: its masks are that model's."""
    weights = save_gray_model(tmp_path / "gray.keras")
    image = np.zeros((96, 160, 3), np.uint8)
    image[:, :80] = 230  # bright left half: the grey model says yes there, and no on the dark right
    source = tmp_path / "in.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for index in range(6):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    allowed = ["--allow-input", str(tmp_path), "--allow-output", str(tmp_path)]
    worker = subprocess.Popen(
        [sys.executable, "-m", "streamer", "worker", "--model", "semantic", "--jobs", "1", *allowed],
        env=dict(environment(), STREAMER_REDIS=redis_server.url),
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    try:
        output = tmp_path / "out.mp4"
        job = [str(source), "-o", str(output), "--model", "semantic", "--weights", str(weights), "--effect", "mask"]
        submitted_and_done(redis_server, ROOT, *job, timeout=120)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    frames = decoded(output)
    assert len(frames) == 6
    for frame in frames:
        assert frame[:, 8:72].min() > 200 and frame[:, 88:152].max() < 50  # the grey model's mask, not the road's


def test_runners_take_jobs_again_after_redis_restarted_empty(tmp_path, redis_server, workers):
    from media import make_video

    worker = workers.start("--allow-input", str(tmp_path), "--allow-output", str(tmp_path), jobs=1)
    client = redis_server.client()
    wait_for(lambda: client.exists(KEYS.submitted), what="the runner's group")
    redis_server.stop()
    redis_server.start()  # the same port, nothing in it: the runners' group is gone
    source = make_video(tmp_path / "in.mp4", frames=10)
    output = tmp_path / "out.mp4"
    submitted_and_done(redis_server, tmp_path, str(source), "-o", str(output), "--model", "tests.models:left_half")
    assert len(decoded(output)) == 10 and worker.poll() is None


def test_a_frozen_redis_ends_the_job_within_its_grace(tmp_path, redis_server):
    """SIGSTOP on Redis while `process --redis --grace 5 --workers 1` sends frames: the command gives up within
    the grace plus one socket timeout (what a call that began just before the deadline may block) and a
    process's exit, local workers included, and leaves no output. (It used to count the grace from the first
    timeout, not from when Redis stopped answering: 10.8 to 11.0 s here, against 5.7 to 8.4 s now.)"""
    from media import make_video

    source = make_video(tmp_path / "in.mp4", frames=600, width=96, height=64)
    output = tmp_path / "out.mp4"
    grace = 5.0
    process = subprocess.Popen(
        [sys.executable, "-m", "streamer", "process", str(source), "-o", str(output), "--model", "tests.models:slow"]
        + ["--redis", redis_server.url, "--grace", str(grace), "--workers", "1", "--json"],
        env=environment(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = redis_server.client()
    try:

        def sending():
            return any(int(client.hget(key, "done") or 0) >= 5 for key in client.keys("streamer:job:*"))

        wait_for(sending, 60, "the job under way")
        redis_server.process.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        code = process.wait(timeout=60)
        took = time.monotonic() - frozen
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
        if process.poll() is None:
            process.kill()
    err = process.stderr.read()
    assert code != 0 and "lost Redis" in err, err
    assert took < grace + socket_timeout(grace) + 2, f"exited {took:.1f} s after Redis froze, with --grace {grace:g}"
    assert not output.exists() and not process.stdout.read().strip()  # no summary of a job that failed


def test_a_jobs_own_model_files_are_read_only_where_its_runner_may_read(tmp_path, redis_server):
    """A submitted job and a queued batch video whose weights point at this machine's loopback (or a folder the
    runner was not given) fail with the runner's refusal, before anything is fetched or opened."""
    import threading
    from dataclasses import replace

    from media import make_video

    from streamer.batch import BatchConfig, make_task, run_queued
    from streamer.distributed.confine import Confinement
    from streamer.distributed.jobs import JobSpec, JobStore, submit
    from streamer.service.runner import Runner
    from streamer.storage import expand

    (tmp_path / "in").mkdir()
    source = make_video(tmp_path / "in" / "x.mp4", frames=2)
    client, config = redis_server.client(), RedisConfig(url=redis_server.url)
    allowed = Confinement(inputs=[str(tmp_path / "in")], outputs=[str(tmp_path / "out")])
    jobs = JobStore(client, KEYS)
    for job, weights in (("loopback", "http://127.0.0.1:9/w.keras"), ("elsewhere", "/etc/w.keras")):
        model = ModelConfig(name="semantic", weights=weights)
        spec = JobSpec.of(ProcessConfig(input=str(source), output=str(tmp_path / "out" / f"{job}.mp4"), model=model))
        submit(client, config, job, spec)
    runner = Runner(client, config, "r1")
    runner.confinement = allowed
    stop = threading.Event()
    thread = threading.Thread(target=runner.serve, args=(stop,), daemon=True)
    thread.start()
    wait_for(lambda: all(jobs.state(job) == "failed" for job in ("loopback", "elsewhere")), 20, "both refused")
    stop.set()
    thread.join(10)
    for job in ("loopback", "elsewhere"):
        assert "is not allowed on this worker" in jobs.get(job)["reason"]

    batch = BatchConfig(inputs=[str(tmp_path / "in" / "*.mp4")], dest=str(tmp_path / "out"))
    batch.job = replace(batch.job, model=ModelConfig(name="semantic", weights="http://127.0.0.1:9/w.keras"))
    [entry] = expand(batch.inputs)
    JobStore(client, KEYS).create("video", JobSpec.of(batch.job), state="queued")
    report = run_queued(client, config, "video", make_task(batch, entry, 0).to_json(), "r1", None, allowed)
    assert report.state == "failed" and "is not allowed on this worker" in report.reason
    assert not (tmp_path / "out").exists()
