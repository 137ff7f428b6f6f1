"""The I/O ceiling against the ffmpeg CLI: `streamer process CLIP --model identity` (overlay effect, so every
frame passes unchanged) versus `ffmpeg -i CLIP -c:v libx264 -preset veryfast -crf 23 -pix_fmt yuv420p -c:a copy`
(streamer's default encoder settings for an .mp4) on a 720p clip with AAC audio.

  python benchmarks/io.py [--quick] [--seconds 30] [--repeats 3] [--before DIR]

Each command runs as a whole process, started by a small launcher that forks it and reads its resource usage
(wait4): wall time, CPU time (user + system) and peak RSS of that process alone (a child forked straight from
this script would inherit this script's peak in its ru_maxrss). The commands alternate in every repeat; each
ratio is taken within a repeat and the median of those is printed, so the ratios hold on a busy machine.
Printed: streamer speed ÷ ffmpeg speed (whole-process wall time), streamer CPU ÷ ffmpeg CPU, peak RSS of both;
with --before DIR (an earlier checkout of this repository, e.g. made with `git archive HEAD | tar -x -C DIR`)
the same figures for that tree too, and after ÷ before.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# fork the command, wait for it alone: its own wall time, CPU time and peak RSS (ru_maxrss, KiB on Linux)
LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.chdir(sys.argv[1])
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
print(json.dumps({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "user": usage.ru_utime,
                  "sys": usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024, "code": os.waitstatus_to_exitcode(status)}))
"""


def make_clip(path: Path, seconds: float, width=1280, height=720, fps=30, unique=60) -> Path:
    """A road drive (the synthetic scenes the demo model knows), looped back and forth, with a stereo AAC track."""
    from workers.unet.synthetic import road_frames

    frames = [image for image, _ in road_frames(7, width, height, float(fps), unique)]
    frames += frames[-2:0:-1]
    total = int(seconds * fps)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "20", "preset": "veryfast"}
        sound = container.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        for index in range(total):
            frame = av.VideoFrame.from_ndarray(frames[index % len(frames)], format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = int(48000 * seconds)
        rng = np.random.default_rng(3)
        t = np.arange(samples) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(samples)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = tone[start : start + 1024]
            frame = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, start
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    return path


def settings() -> dict:
    """streamer's defaults for an .mp4 output, which the ffmpeg command copies."""
    from streamer.options import EncodeConfig
    from streamer.sink import CONTAINER_CODECS

    encode = EncodeConfig()
    return {
        "codec": encode.codec or CONTAINER_CODECS["mp4"],
        "preset": encode.preset,
        "crf": encode.crf,
        "pix_fmt": encode.pix_fmt or "yuv420p",
    }


def measure(command: list[str], cwd: Path, env: dict | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(cwd), *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    lines = result.stdout.strip().splitlines()
    if not lines:
        raise SystemExit(f"{' '.join(command)}: the launcher failed: {result.stderr.strip()[-800:]}")
    figures = json.loads(lines[-1])
    if figures["code"] != 0:
        raise SystemExit(f"{' '.join(command)} exited {figures['code']}: {result.stderr.strip()[-800:]}")
    return figures


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.demux(video=0) if _.size)


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def paired(top: list[dict], bottom: list[dict], key: str) -> float:
    """The median over repeats of top[key] ÷ bottom[key], each ratio taken within one repeat."""
    return statistics.median(a[key] / b[key] for a, b in zip(top, bottom))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 6 s clip and one repeat, for a smoke run")
    parser.add_argument("--seconds", type=float, default=30, help="length of the 720p clip")
    parser.add_argument("--repeats", type=int, default=3, help="alternated runs of each command (medians taken)")
    parser.add_argument("--before", type=Path, help="an earlier checkout to measure beside this one")
    options = parser.parse_args()
    seconds = 6 if options.quick else options.seconds
    repeats = 1 if options.quick else options.repeats
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print("skipped: no ffmpeg command on PATH (apt-get install ffmpeg) to compare with")
        return
    encode = settings()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        clip = make_clip(folder / "clip.mp4", seconds)
        frames = frame_count(clip)
        out = str(folder / "out.mp4")
        commands = {
            "ffmpeg": (
                [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(clip)]
                + ["-c:v", encode["codec"], "-preset", encode["preset"], "-crf", str(encode["crf"])]
                + ["-pix_fmt", encode["pix_fmt"], "-c:a", "copy", out],
                ROOT,
                None,
            ),
            "streamer": (
                [sys.executable, "-m", "streamer", "process", str(clip), "-o", out, "--model", "identity", "-y", "-q"],
                ROOT,
                {**os.environ, "PYTHONPATH": str(ROOT)},
            ),
        }
        if options.before:
            before = options.before.resolve()
            commands["before"] = (commands["streamer"][0], before, {**os.environ, "PYTHONPATH": str(before)})
        print(
            f"clip: {seconds:g} s 1280×720 30 fps H.264 + AAC ({frames} frames); encoder {encode['codec']} "
            f"preset {encode['preset']} crf {encode['crf']} {encode['pix_fmt']}, audio copied; "
            f"{repeats} alternated repeats, medians"
        )
        runs: dict[str, list[dict]] = {name: [] for name in commands}
        for repeat in range(repeats):
            for name, (command, cwd, env) in commands.items():
                run = measure(command, cwd, env)
                runs[name].append(run)
                written = frame_count(Path(out))
                if written != frames:
                    raise SystemExit(f"{name}: wrote {written} frames of {frames}")
                print(
                    f"  run {repeat + 1} {name}: {run['wall']:.2f} s wall, {run['cpu']:.2f} s CPU, "
                    f"{run['rss_mb']:.0f} MB",
                    flush=True,
                )
        print(f"{'':10} {'fps':>7} {'wall s':>7} {'CPU s':>7} {'user':>6} {'sys':>6} {'RSS MB':>7}")
        for name, measured in runs.items():
            wall = median(measured, "wall")
            print(
                f"{name:10} {frames / wall:7.1f} {wall:7.2f} {median(measured, 'cpu'):7.2f} "
                f"{median(measured, 'user'):6.2f} {median(measured, 'sys'):6.2f} {median(measured, 'rss_mb'):7.0f}"
            )
        print("ratios: medians of the ratios within each repeat (runs next to each other see the same load)")
        pairs = [(name, "ffmpeg") for name in runs if name != "ffmpeg"]
        if "before" in runs:
            pairs.append(("streamer", "before"))
        for name, other in pairs:
            speed = paired(runs[other], runs[name], "wall")  # speed: the other's time ÷ this one's
            cpu = paired(runs[name], runs[other], "cpu")
            rss = paired(runs[name], runs[other], "rss_mb")
            print(f"  {name} ÷ {other}: speed {speed:.2f}×, CPU {cpu:.2f}×, peak RSS {rss:.2f}×")


if __name__ == "__main__":
    main()
