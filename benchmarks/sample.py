"""`streamer sample road` speed: drawing the frames, and the whole command, at 1280×720.

  python benchmarks/sample.py [--runs N] [--frames N] [--against DIR]

1. Drawing: `road_frames` at 1280×720 (what the command uses: 288 lines drawn and scaled up) next to drawing
   each frame at its full 720 lines (`RoadScene.render`), alternated in one process; medians and the ratio.
2. With --against DIR (another checkout, e.g. before a change): the whole `streamer sample road --seconds S`
   command (drawing, encoding, start-up) for this tree and DIR, alternated run by run; medians and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def drawing(frames: int, runs: int) -> None:
    import numpy as np

    from workers.unet.synthetic import RoadScene, road_frames

    scene = RoadScene.random(np.random.default_rng(0))
    full, scaled = [], []
    for _ in range(runs):
        started = time.perf_counter()
        for index in range(frames):
            scene.render(720, 1280, t=index / 30)
        full.append(time.perf_counter() - started)
        started = time.perf_counter()
        for _ in road_frames(0, 1280, 720, 30.0, frames):
            pass
        scaled.append(time.perf_counter() - started)
    a, b = statistics.median(full), statistics.median(scaled)
    rates = f"full size {frames / a:.1f} fps, road_frames {frames / b:.1f} fps"
    print(f"drawing {frames} frames 1280x720: {rates}: {a / b:.2f}x")


def command(tree: Path, seconds: float, folder: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = os.path.join(folder, "road.mp4")
    args = [sys.executable, "-m", "streamer", "sample", "road", "-o", out, "--seconds", str(seconds), "-y", "-q"]
    started = time.perf_counter()
    subprocess.run(args, env=env, check=True, cwd=folder)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--against", type=Path, help="another checkout to compare the whole command with")
    args = parser.parse_args()
    drawing(args.frames, args.runs)
    if args.against:
        times: dict[str, list[float]] = {"this": [], "other": []}
        with tempfile.TemporaryDirectory() as folder:
            for _ in range(args.runs):
                times["this"].append(command(ROOT, args.seconds, folder))
                times["other"].append(command(args.against.resolve(), args.seconds, folder))
        this, other = statistics.median(times["this"]), statistics.median(times["other"])
        print(
            f"streamer sample road --seconds {args.seconds:g} (1280x720): this tree {this:.1f} s, "
            f"{args.against} {other:.1f} s: {other / this:.2f}x faster"
        )


if __name__ == "__main__":
    main()
