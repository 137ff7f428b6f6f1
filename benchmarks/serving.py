"""The U-Net served from an exported file (ONNX Runtime, OpenVINO; f32 and INT8) beside TensorFlow and the ffmpeg
CLI: speed, time to the first frame, CPU and peak memory of the whole command.

  python benchmarks/serving.py [--quick] [--seconds 30] [--repeats 3] [--calibrate]

On a 720p road clip with audio (benchmarks/io.py's) and on a one-frame clip, each command runs as a whole
process, forked by a small launcher that reads its own resource usage (wall time, CPU, peak RSS) and the
wall-clock time it started; the first frame is the command's own log event ("first frame encoded", JSON logs)
minus that start. Commands alternate in every repeat (the order turning round each repeat) and medians are
printed, with each one's ratios to ffmpeg (`ffmpeg -i CLIP` re-encoding with streamer's encoder settings) and
to TensorFlow f32, taken within each repeat.

  tf f32         streamer process CLIP --model unet --precision f32 (the bundled .keras demo, TensorFlow)
  onnx f32       ... --weights road.onnx (ONNX Runtime; `streamer export unet --format onnx`)
  openvino f32   ... --weights road.xml --precision f32 (OpenVINO; `--format openvino`)
  onnx int8      ... --weights road-int8.onnx (`--format onnx --int8 --calibrate CLIP`; with --calibrate)
  openvino int8  ... --weights road-int8.xml (the same INT8 model on OpenVINO; with --calibrate)

Every variant is run once untimed first, so a `--precision auto` measurement is cached and not counted.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.io import frame_count, make_clip, settings  # noqa: E402

# fork the command, wait for it alone: its wall time, CPU time, peak RSS and the epoch time it started at
LAUNCHER = """
import json, os, sys, time
started, epoch = time.perf_counter(), time.time()
pid = os.fork()
if pid == 0:
    try:
        os.chdir(sys.argv[1])
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"wall": time.perf_counter() - started, "epoch": epoch, "cpu": usage.ru_utime + usage.ru_stime,
                  "rss_mb": usage.ru_maxrss / 1024, "code": os.waitstatus_to_exitcode(status)}))
"""


def measure(command: list[str], env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(ROOT), *command], capture_output=True, text=True, env=env, timeout=1800
    )
    lines = result.stdout.strip().splitlines()
    if not lines or json.loads(lines[-1])["code"] != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr.strip()[-800:]}")
    figures = json.loads(lines[-1])
    figures["first"] = None
    for line in result.stderr.splitlines():
        if line.startswith("{") and json.loads(line).get("message", "").startswith("first frame"):
            figures["first"] = json.loads(line)["time"] - figures["epoch"]
            break
    return figures


def exported(folder: Path, calibrate: Path | None, env: dict) -> dict[str, Path]:
    streamer = [sys.executable, "-m", "streamer", "export", "unet", "-y"]
    files = {"onnx f32": folder / "road.onnx", "openvino f32": folder / "road.xml"}
    for path in files.values():
        fmt = "onnx" if path.suffix == ".onnx" else "openvino"
        subprocess.run([*streamer, "--format", fmt, "-o", str(path)], check=True, env=env, capture_output=True)
    if calibrate is not None:
        for fmt, name in (("onnx", "road-int8.onnx"), ("openvino", "road-int8.xml")):
            done = subprocess.run(
                [*streamer, "--format", fmt, "--int8", "--calibrate", str(calibrate), "-o", str(folder / name)],
                env=env,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise SystemExit(f"INT8 export failed: {done.stderr.strip()[-800:]}")
            print(f"  {fmt} int8 export: {done.stdout.strip()}")
            files[f"{fmt} int8"] = folder / name
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 4 s clip, one repeat")
    parser.add_argument("--seconds", type=float, default=30, help="length of the 720p clip (default: 30)")
    parser.add_argument("--repeats", type=int, default=3, help="alternated runs of each command (default: 3)")
    parser.add_argument("--calibrate", action="store_true", help="also export and run INT8 models")
    options = parser.parse_args()
    seconds, repeats = (4, 1) if options.quick else (options.seconds, options.repeats)
    ffmpeg = shutil.which("ffmpeg")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        clip, single, held_out = folder / "clip.mp4", folder / "one.mp4", folder / "calibrate.mp4"
        make_clip(clip, seconds)
        make_clip(single, 1 / 30)
        if options.calibrate:
            subprocess.run(
                [sys.executable, "-m", "streamer", "sample", "road", "-o", str(held_out), "--seconds", "4", "-q"],
                check=True,
                env=env,
            )
        files = exported(folder, held_out if options.calibrate else None, env)
        encode = settings()
        for video in (clip, single):
            frames = frame_count(video)
            out = str(folder / "out.mp4")
            base = [sys.executable, "-m", "streamer", "--log-format", "json", "--log-level", "info", "process"]
            base += [str(video), "-o", out, "-y", "-q"]
            commands = {"tf f32": [*base, "--model", "unet", "--precision", "f32"]}
            for label, path in files.items():
                commands[label] = [*base, "--weights", str(path)] + (["--precision", "f32"] if "f32" in label else [])
            if ffmpeg:
                commands["ffmpeg"] = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(video)]
                commands["ffmpeg"] += ["-c:v", encode["codec"], "-preset", encode["preset"], "-crf", str(encode["crf"])]
                commands["ffmpeg"] += ["-pix_fmt", encode["pix_fmt"], "-c:a", "copy", out]
            for command in commands.values():  # untimed: precision probes cached, files in the page cache
                measure(command, env)
            runs: dict[str, list[dict]] = {label: [] for label in commands}
            for repeat in range(repeats):
                order = list(commands) if repeat % 2 == 0 else list(commands)[::-1]
                for label in order:
                    runs[label].append(measure(commands[label], env))
            print(f"\n{video.name}: {frames} frames 1280×720, {repeats} alternated repeats, medians")
            print(f"{'':14} {'fps':>7} {'wall s':>7} {'first s':>8} {'CPU s':>7} {'RSS MB':>7}  ratios")
            for label, measured in runs.items():
                wall = statistics.median(r["wall"] for r in measured)
                firsts = [r["first"] for r in measured if r["first"] is not None]
                first = f"{statistics.median(firsts):8.2f}" if firsts else f"{'-':>8}"
                ratios = []
                for other in ("ffmpeg", "tf f32"):
                    if other in runs and other != label:
                        pairs = list(zip(measured, runs[other]))
                        speed = statistics.median(b["wall"] / a["wall"] for a, b in pairs)
                        rss = statistics.median(a["rss_mb"] / b["rss_mb"] for a, b in pairs)
                        ratios.append(f"÷ {other}: speed {speed:.2f}×, RSS {rss:.2f}×")
                print(
                    f"{label:14} {frames / wall:7.1f} {wall:7.2f} {first} "
                    f"{statistics.median(r['cpu'] for r in measured):7.2f} "
                    f"{statistics.median(r['rss_mb'] for r in measured):7.0f}  " + "; ".join(ratios)
                )


if __name__ == "__main__":
    main()
