"""Figures for the distributed pipeline, measured side by side in one run on a private redis-server.

  python benchmarks/redis_pipeline.py [--quick]

1. Transport ceiling: identity model through Redis, fps ÷ bare PyAV decode+encode fps (720p).
2. Scaling: a model that sleeps 50 ms per batch, 1/2/4/8 workers, fps ÷ (N × one worker's fps).
3. Flat memory: frames in flight and Redis used_memory sampled over a long job.
4. Recovery: seconds from a worker's SIGKILL until every frame it held is done by another.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from redis_fixtures import RedisServer  # noqa: E402

from benchmarks.pipeline import bare_transcode, make_video  # noqa: E402
from streamer.distributed.connection import WORKER_GROUP, Keys, RedisConfig  # noqa: E402
from streamer.models import ModelConfig  # noqa: E402
from streamer.pipeline import Pipeline, ProcessConfig  # noqa: E402
from streamer.prediction import Prediction  # noqa: E402

SLEEPY = "benchmarks.redis_pipeline:sleepy"
KEYS = Keys("streamer")


class Sleepy:
    """A fixed-latency model: 50 ms per batch, whatever its size; finds nothing."""

    name = "sleepy"

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        time.sleep(0.05)
        empty = np.zeros(frames.shape[1:3], np.uint8)
        return [Prediction(semantic=empty) for _ in frames]


def sleepy(config) -> Sleepy:
    return Sleepy()


def start_workers(url: str, model: str, count: int, batch: int, *extra: str) -> list[subprocess.Popen]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    command = [
        sys.executable,
        "-m",
        "streamer",
        "worker",
        "--model",
        model,
        "--redis",
        url,
        "--batch",
        str(batch),
        "--jobs",
        "0",
        *extra,
    ]
    return [subprocess.Popen(command, env=env, cwd=ROOT) for _ in range(count)]


def stop_workers(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait()


def run_job(source: Path, output: Path, url: str, model: str, batch: int, job: str | None = None) -> float:
    config = ProcessConfig(
        input=str(source),
        output=str(output),
        overwrite=True,
        model=ModelConfig(name=model, batch_size=batch),
        redis=RedisConfig(url=url),
        job=job,
    )
    return Pipeline(config).run().fps


def wait_for_workers(client, model: str, count: int) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        alive = [
            name
            for name in client.smembers(KEYS.workers)
            if client.hget(KEYS.worker(name.decode()), "model") == model.encode()
        ]
        if len(alive) >= count:
            return
        time.sleep(0.1)
    raise SystemExit(f"{count} workers for {model} did not start")


def transport_ceiling(server: RedisServer, clip: Path, folder: Path) -> None:
    workers = start_workers(server.url, "identity", 1, 4)
    try:
        wait_for_workers(server.client(), "identity", 1)
        bare = bare_transcode(clip, folder / "bare.mp4")
        redis_fps = run_job(clip, folder / "redis.mp4", server.url, "identity", 4)
    finally:
        stop_workers(workers)
    print(
        f"  identity through Redis {redis_fps:.1f} fps / bare PyAV decode+encode {bare:.1f} fps = "
        f"{redis_fps / bare:.2f}"
    )


def scaling(server: RedisServer, small: Path, folder: Path, counts: list[int]) -> None:
    rates = {}
    for count in counts:
        workers = start_workers(server.url, SLEEPY, count, 1)
        try:
            wait_for_workers(server.client(), SLEEPY, count)
            rates[count] = run_job(small, folder / "scaled.mp4", server.url, SLEEPY, 1)
        finally:
            stop_workers(workers)
        ideal = count * rates[counts[0]] / counts[0]
        print(f"  {count} worker(s): {rates[count]:.1f} fps = {rates[count] / ideal:.2f} × (N × one worker)")


def flat_memory(server: RedisServer, long: Path, folder: Path) -> None:
    client = server.client()
    workers = start_workers(server.url, "identity", 2, 4)
    samples = []
    finished = threading.Event()

    def sample():
        while not finished.wait(2.0):
            pending = sum(group["pending"] for group in client.xinfo_groups(KEYS.work("identity")))
            length = client.xlen(KEYS.work("identity"))
            samples.append((client.info("memory")["used_memory"] / 2**20, length, pending))

    try:
        wait_for_workers(client, "identity", 2)
        watcher = threading.Thread(target=sample)
        watcher.start()
        started = time.time()
        fps = run_job(long, folder / "long-out.mp4", server.url, "identity", 4)
    finally:
        finished.set()
        stop_workers(workers)
    watcher.join()
    memory = [m for m, _, _ in samples]
    waiting = [n for _, n, _ in samples]
    quarter = max(1, len(samples) // 4)
    print(f"  {time.time() - started:.0f} s job at {fps:.1f} fps, {len(samples)} samples")
    print(
        f"  Redis used_memory MB: first quarter mean {statistics.mean(memory[:quarter]):.1f}, "
        f"last quarter mean {statistics.mean(memory[-quarter:]):.1f}, max {max(memory):.1f}"
    )
    print(f"  frames in the work stream: max {max(waiting)}, mean {statistics.mean(waiting):.1f} (in-flight bound 64)")


def recovery(server: RedisServer, clip: Path, folder: Path, claim_idle: float) -> None:
    client = server.client()
    victim, survivor = (
        start_workers(server.url, SLEEPY, 1, 4, "--claim-idle", str(claim_idle), "--name", name)[0]
        for name in ("victim", "survivor")
    )
    try:
        wait_for_workers(client, SLEEPY, 2)
        job = threading.Thread(
            target=run_job,
            args=(clip, folder / "recovered.mp4", server.url, SLEEPY, 4),
            kwargs={"job": f"recovery-{claim_idle:g}"},
        )
        job.start()
        stream = KEYS.work(SLEEPY)
        while not (held := client.xpending_range(stream, WORKER_GROUP, "-", "+", 100, consumername="victim")):
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        killed = time.time()
        ids = {entry["message_id"] for entry in held}
        while True:
            pending = {entry["message_id"] for entry in client.xpending_range(stream, WORKER_GROUP, "-", "+", 1000)}
            if not ids & pending:
                break
            time.sleep(0.01)
        recovered = time.time() - killed
        job.join()
    finally:
        stop_workers([victim, survivor])
    print(f"  claim-idle {claim_idle:g} s: {len(ids)} held frames done elsewhere {recovered:.2f} s after SIGKILL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short videos, for a smoke run")
    parser.add_argument("--long-seconds", type=float, default=300, help="length of the flat-memory job's video")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        server = RedisServer(folder).start()
        try:
            clip = make_video(folder / "clip.mp4", 4 if options.quick else 20)
            small = make_video(folder / "small.mp4", 4 if options.quick else 20, width=160, height=96)
            print("1. Transport ceiling (720p, identity model, raw frames)")
            transport_ceiling(server, clip, folder)
            print("2. Scaling (model sleeps 50 ms per batch, batch 1, 160×96 frames)")
            scaling(server, small, folder, [1, 2] if options.quick else [1, 2, 4, 8])
            print("3. Redis memory and frames in flight over a long 720p job (identity model, 2 workers)")
            flat_memory(server, make_video(folder / "long.mp4", 20 if options.quick else options.long_seconds), folder)
            print("4. Recovery after SIGKILL (model sleeps 50 ms per batch of 4)")
            for claim_idle in (2.0, 10.0):
                recovery(server, small, folder, claim_idle)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
