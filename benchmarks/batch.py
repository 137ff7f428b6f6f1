"""Figures for `streamer batch`, measured side by side in one run.

  python benchmarks/batch.py [--quick]

1. State cost: bytes written to the destination per video (state objects, claims, the summary
   manifest.json; not the videos) for N = 10, 100, 1000 on fsspec's memory file system. Real batches
   (identity model, tiny clips) for N = 10 and 100; the state writes alone, the same calls a runner
   makes, for N = 10, 100, 1000; and the earlier scheme (manifest.json rewritten whole on each of a
   video's three state changes) for comparison. Flat in N: per-video bytes at N ÷ at N = 10.
2. Throughput: 16 short clips through 1, 2 and 4 local runners (identity model); fps ÷ (N × one
   runner's fps), against the 0.8 the figure asks for where cores allow, with the cores kept busy:
   once with x264's own threading (one runner already fills the cores) and once with x264 on one
   thread per video (a runner uses about one core, so runners scale until the cores run out); as
   separate `--shard` processes; and with a model that waits instead of computing (the batch
   machinery's own scaling, cores aside).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fsspec
import numpy as np
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from media import make_video  # noqa: E402

from streamer.batch import (  # noqa: E402
    DONE,
    RUNNING,
    BatchConfig,
    StateStore,
    run_batch,
    write_manifest,
)
from streamer.models import ModelConfig  # noqa: E402
from streamer.pipeline import ProcessConfig  # noqa: E402
from streamer.prediction import Prediction  # noqa: E402
from streamer.sink import EncodeConfig  # noqa: E402

IDENTITY = "benchmarks.batch:identity"


class Identity:
    """Finds nothing: frames pass unchanged (the cost measured is the batch machinery's)."""

    name = "identity"

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        empty = np.zeros(frames.shape[1:3], np.uint8)
        return [Prediction(semantic=empty) for _ in frames]


def identity(config) -> Identity:
    return Identity()


class Sleepy(Identity):
    """50 ms per model call whatever the frames: inference that waits (a remote or busy GPU), not the CPU."""

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        time.sleep(0.05)
        return super().predict(frames)


def sleepy(config) -> Sleepy:
    return Sleepy()


class Written:
    """Counts bytes written to the memory file system under a prefix (excluding the videos)."""

    def __init__(self, prefix: str):
        self.prefix, self.bytes = prefix, 0
        self._init, self._write = MemoryFile.__init__, MemoryFile.write

    def _counts(self, path) -> bool:
        return bool(path) and path.startswith(self.prefix) and not path.endswith((".mp4", ".jsonl"))

    def __enter__(self):
        counter = self

        def init(file, fs=None, path=None, data=None):
            if data and counter._counts(path):
                counter.bytes += len(data)
            counter._init(file, fs, path, data)

        def write(file, data):
            if counter._counts(getattr(file, "path", None)):
                counter.bytes += len(data)
            return counter._write(file, data)

        MemoryFile.__init__, MemoryFile.write = init, write
        return self

    def __exit__(self, *error):
        MemoryFile.__init__, MemoryFile.write = self._init, self._write


def real_batch(count: int, clip: bytes) -> float:
    """Bytes of state per video for a real batch of `count` tiny clips on memory://."""
    fs = fsspec.filesystem("memory")
    for index in range(count):
        fs.pipe_file(f"/real{count}/in/clip{index:05d}.mp4", clip)
    config = BatchConfig(
        inputs=[f"memory://real{count}/in/*.mp4"],
        dest=f"memory://real{count}/out",
        job=ProcessConfig(input="", model=ModelConfig(name=IDENTITY, batch_size=4)),
        workers=2,
    )
    with Written(f"/real{count}/out") as written:
        reports = run_batch(config)
    assert all(report.state == DONE for report in reports), reports[:3]
    return written.bytes / count


def simulated(count: int) -> float:
    """The state writes of `count` videos alone: claim, start, done, then the summary manifest."""
    dest = f"memory://sim{count}/out"
    store = StateStore(dest)
    with Written(f"/sim{count}/out") as written:
        for index in range(count):
            name = f"clip{index:05d}.mp4"
            base = {
                "input": f"memory://sim{count}/in/{name}",
                "size": 1919,
                "version": "1795986308.2897644",
                "output": f"{dest}/{name}",
                "attempt": 1,
                "started": time.time(),
            }
            store.create(f"{name}.1.claim", {"runner": "host-1234-56789", "time": time.time()})
            store.write(name, {**base, "state": RUNNING, "runner": "host-1234-56789", "heartbeat": time.time()})
            store.write(
                name,
                {
                    **base,
                    "state": DONE,
                    "runner": "host-1234-56789",
                    "frames": 4,
                    "seconds": 0.03,
                    "updated": time.time(),
                },
            )
        write_manifest(dest)
    return written.bytes / count


def earlier_scheme(count: int) -> float:
    """The earlier manifest: rewritten whole (indent=1) on each of three state changes per video."""
    videos, total = {}, 0
    for index in range(count):
        url = f"memory://old/in/clip{index:05d}.mp4"
        for state in (RUNNING, DONE):
            fields = {"state": state, "output": f"memory://old/out/clip{index:05d}.mp4"}
            if state == DONE:
                fields.update(frames=4, seconds=0.03, warning=None)
            videos[url] = {"size": 1919, "version": "1795986308.2897644", "updated": time.time(), **fields}
            total += len(json.dumps({"version": 1, "videos": videos}, indent=1).encode())
    return total * 1.5 / count  # running, done: two of the three writes; a failed video has a third


def throughput(
    clips: list[str], workers: int, folder: Path, threads: int, model: str = IDENTITY
) -> tuple[float, float, float]:
    """fps over all clips with `workers` local runners, x264 on `threads` threads (0: FFmpeg picks);
    (fps, seconds, cores busy on average)."""
    config = BatchConfig(
        inputs=clips,
        dest=str(folder / f"out{workers}-{threads}-{model.rsplit(':', 1)[1]}"),
        job=ProcessConfig(
            input="",
            model=ModelConfig(name=model, batch_size=4),
            encode=EncodeConfig(threads=threads),
            parallel_batches=1 if threads else 2,
        ),
        workers=workers,
    )
    cpu, started = _cpu(), time.perf_counter()
    reports = run_batch(config)
    seconds = time.perf_counter() - started
    assert all(report.state == DONE for report in reports)
    return sum(report.frames for report in reports) / seconds, seconds, (_cpu() - cpu) / seconds


def sharded(clips: list[str], processes: int, folder: Path) -> tuple[float, float]:
    """fps with `processes` separate `streamer batch --shard I/N` processes (no shared interpreter lock),
    timed from the first video's start to the last one's end (process start-up left out); (fps, seconds)."""
    dest = folder / f"shards{processes}"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    command = [sys.executable, "-m", "streamer", "batch", *clips, "-o", str(dest), "--model", IDENTITY, "--batch", "4"]
    running = [
        subprocess.Popen([*command, "--shard", f"{index}/{processes}"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
        for index in range(processes)
    ]
    for process in running:
        assert process.wait(timeout=600) == 0
    records = StateStore(str(dest)).read_all().values()
    assert len(records) == len(clips) and all(record["state"] == DONE for record in records)
    seconds = max(record["updated"] for record in records) - min(record["started"] for record in records)
    return sum(record["frames"] for record in records) / seconds, seconds


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer and shorter clips")
    parser.add_argument("--part", choices=("all", "state", "throughput"), default="all", help="which figures")
    args = parser.parse_args()
    MemoryFileSystem.store.clear()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = make_video(folder / "tiny.mp4", frames=4, width=32, height=32).read_bytes()

        if args.part in ("all", "state"):
            state_cost(args.quick, clip)
        if args.part in ("all", "throughput"):
            scaling(args.quick, folder)


def state_cost(quick: bool, clip: bytes) -> None:
    print("1. state cost: bytes written to DEST per video (not counting the videos)")
    real = {count: real_batch(count, clip) for count in ((10,) if quick else (10, 100))}
    counts = (10, 100) if quick else (10, 100, 1000)
    sim = {count: simulated(count) for count in counts}
    old = {count: earlier_scheme(count) for count in counts}
    print(f"   {'N':>6} {'real batch':>11} {'state writes':>13} {'earlier manifest':>17}")
    for count in counts:
        got = f"{real[count]:>11.0f}" if count in real else f"{'':>11}"
        print(f"   {count:>6} {got} {sim[count]:>13.0f} {old[count]:>17.0f}")
    top = counts[-1]
    print(
        f"   per-video bytes at N={top} ÷ at N=10: state writes {sim[top] / sim[10]:.2f} (flat), "
        f"earlier manifest {old[top] / old[10]:.0f}×"
    )
    if 100 in real:
        print(f"   real batch N=100 ÷ N=10: {real[100] / real[10]:.2f}")


def scaling(quick: bool, folder: Path) -> None:
    frames, width, height = (30, 160, 120) if quick else (90, 320, 240)
    clips = [str(make_video(folder / f"clip{i:02d}.mp4", frames=frames, width=width, height=height)) for i in range(16)]
    print(f"2. throughput: 16 clips of {frames} frames at {width}x{height}, identity model, {os.cpu_count()} cores")
    for threads, label in ((0, "x264 threads: FFmpeg's choice"), (1, "x264 on 1 thread, 1 model call at once")):
        print(f"   {label}")
        base = None
        for workers in (1, 2, 4):
            fps, seconds, busy = throughput(clips, workers, folder, threads)
            base = base or fps
            ratio = fps / (workers * base)
            print(
                f"     {workers} runner(s): {fps:7.1f} fps in {seconds:5.2f} s, {busy:4.2f} cores busy; "
                f"÷ ({workers} × one runner) = {ratio:.2f} (≥ 0.80: {'yes' if ratio >= 0.8 else 'no'})"
            )
    print("   separate processes, `streamer batch --shard I/N` (x264 threads: FFmpeg's choice)")
    base = None
    for processes in (1, 2, 4):
        fps, seconds = sharded(clips, processes, folder)
        base = base or fps
        ratio = fps / (processes * base)
        print(
            f"     {processes} process(es): {fps:7.1f} fps in {seconds:5.2f} s; "
            f"÷ ({processes} × one) = {ratio:.2f} (≥ 0.80: {'yes' if ratio >= 0.8 else 'no'})"
        )
    short = [str(make_video(folder / f"short{i:02d}.mp4", frames=30, width=160, height=120)) for i in range(16)]
    print("   16 clips of 30 frames at 160x120, a model that waits 50 ms per call of 4 frames (CPU nearly idle)")
    base = None
    for workers in (1, 2, 4):
        fps, seconds, busy = throughput(short, workers, folder, 1, "benchmarks.batch:sleepy")
        base = base or fps
        ratio = fps / (workers * base)
        print(
            f"     {workers} runner(s): {fps:7.1f} fps in {seconds:5.2f} s, {busy:4.2f} cores busy; "
            f"÷ ({workers} × one runner) = {ratio:.2f} (≥ 0.80: {'yes' if ratio >= 0.8 else 'no'})"
        )
    print(f"   load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
