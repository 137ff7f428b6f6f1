"""Start-up: how long commands take to start, and which heavy modules they import.

  python benchmarks/startup.py [--quick] [--runs N] [--against DIR]

1. Wall time (median of N runs) of commands that need no model: `streamer --version`, `status --help`,
   `submit --help`, `serve --help`, `sample road -o x.mp4 --seconds 1`, next to a bare `python -c pass`
   and `python -c "import tensorflow"`.
2. `streamer process CLIP --model unet`: time to the first frame encoded, from the process start, split
   into interpreter + imports (to the model load starting, the input and outputs opened), model load
   (`import tensorflow`, build, weights) and first frame (decode, the first model call, render, encode),
   from the command's own log events (--log-format json --log-level info), and the peak RSS by then; for the
   bundled Keras model on TensorFlow and for it exported (`--weights road.onnx`, ONNX Runtime; `road.xml`,
   OpenVINO), which never imports TensorFlow.
4. Where the memory goes: the peak RSS of `python -c "import X"` for the runtimes (TensorFlow, ONNX Runtime,
   OpenVINO) and of the frame stack (NumPy, OpenCV, PyAV) beside a bare interpreter.
3. The heavy modules (tensorflow, keras, torch, cv2, av, numpy, redis, rich …) each light command imports.

With --against DIR (another checkout, e.g. before a change) every figure is measured for both trees,
alternating run by run, and printed with the ratio this tree / DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "keras", "torch", "cv2", "av", "numpy", "PIL", "redis", "rich", "prometheus_client", "fsspec")
MODULES = """
import sys, runpy
sys.argv = ["streamer"] + sys.argv[1:]
try:
    runpy.run_module("streamer", run_name="__main__")
except SystemExit:
    pass
print("MODULES", " ".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def environment(root: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(root), TF_CPP_MIN_LOG_LEVEL="2")


def timed(argv: list[str], root: Path, cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=environment(root), capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {root}: {done.stderr.strip()[-500:]}")
    return elapsed


def first_frame(root: Path, cwd: Path, clip: Path, weights: list[str] = ()) -> dict[str, float]:
    """Seconds from the process start to its log events: model load starting, model loaded, first frame
    encoded, and the peak RSS (MB) by then; the job is interrupted once the first frame is out."""
    argv = [sys.executable, "-m", "streamer", "--log-format", "json", "--log-level", "info", "process", str(clip)]
    argv += ["-o", str(cwd / "out.mp4"), "-y", "-q", "--model", "unet", *weights]
    started = time.time()
    process = subprocess.Popen(argv, cwd=cwd, env=environment(root), stderr=subprocess.PIPE, text=True)
    events: dict[str, float] = {}
    try:
        for line in process.stderr:
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            message = entry.get("message", "")
            for key, start in (("load", "loading model"), ("loaded", "model unet loaded"), ("first", "first frame")):
                if message.startswith(start) and key not in events:
                    events[key] = entry["time"] - started
            if "first" in events:
                events["rss"] = peak_rss(process.pid)
                process.send_signal(signal.SIGINT)
                break
    finally:
        process.communicate(timeout=120)
    if len(events) != 4:
        raise SystemExit(f"no first-frame events from {root} (exit {process.returncode}): {events}")
    return {
        "interpreter + imports": events["load"],
        "model load": events["loaded"] - events["load"],
        "first frame": events["first"] - events["loaded"],
        "total": events["first"],
        "peak RSS MB": events["rss"],
    }


def peak_rss(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), MB."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


IMPORT_RSS = """
import resource, sys
sys.modules["openvino_telemetry"] = None  # no usage report (a forked process)
for name in sys.argv[1:]:
    __import__(name)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def modules(argv: list[str], root: Path, cwd: Path) -> list[str]:
    script = MODULES.format(heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], cwd=cwd, env=environment(root), capture_output=True, text=True
    )
    line = next((line for line in done.stderr.splitlines() if line.startswith("MODULES")), "MODULES ?")
    return line.split()[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each figure, medians printed (default: 5)")
    parser.add_argument("--quick", action="store_true", help="2 runs")
    parser.add_argument("--against", type=Path, help="another checkout, measured alternately")
    options = parser.parse_args()
    runs = 2 if options.quick else options.runs
    trees = [("this tree", ROOT)] + ([(str(options.against), options.against.resolve())] if options.against else [])
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        clip = work / "clip.mp4"
        timed([sys.executable, "-m", "streamer", "sample", "road", "-o", str(clip), "--seconds", "2", "-q"], ROOT, work)
        streamer = [sys.executable, "-m", "streamer"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import tensorflow'": [sys.executable, "-c", "import tensorflow"],
            "streamer --version": [*streamer, "--version"],
            "streamer status --help": [*streamer, "status", "--help"],
            "streamer submit --help": [*streamer, "submit", "--help"],
            "streamer serve --help": [*streamer, "serve", "--help"],
            "streamer sample road --seconds 1": [*streamer, "sample", "road", "-o", "x.mp4", "--seconds", "1", "-y"],
        }
        print(
            f"1. Wall time, median of {runs} (s)"
            + (f"; ratio this tree / {options.against}" if options.against else "")
        )
        for name, argv in commands.items():
            times: dict[str, list[float]] = {tree: [] for tree, _ in trees}
            for run in range(runs):
                for tree, root in trees if run % 2 == 0 else trees[::-1]:
                    times[tree].append(timed(argv, root, work))
            print(f"  {name:36s} " + figures({tree: statistics.median(values) for tree, values in times.items()}))

        exported = {"onnx": work / "road.onnx", "openvino": work / "road.xml"}
        for path in exported.values():
            timed([sys.executable, "-m", "streamer", "export", "unet", "-o", str(path), "-y"], ROOT, work)
        variants = {"keras (TensorFlow)": []}
        variants |= {f"{name} export": ["--weights", str(path)] for name, path in exported.items()}
        for label, weights in variants.items():
            first_frame(ROOT, work, clip, weights)  # untimed: a --precision auto measurement is cached
            print(f"2. process CLIP --model unet, {label} (1280x720): seconds from the process start, median of {runs}")
            splits: dict[str, list[dict[str, float]]] = {tree: [] for tree, _ in trees}
            for run in range(runs):
                for tree, root in trees if run % 2 == 0 else trees[::-1]:
                    splits[tree].append(first_frame(root, work, clip, weights))
            for part in ("interpreter + imports", "model load", "first frame", "total", "peak RSS MB"):
                medians = {tree: statistics.median(split[part] for split in splits[tree]) for tree in splits}
                print(f"  {part:36s} " + figures(medians))

        print("4. Peak RSS of importing (MB)")
        for names in ([], ["numpy", "cv2", "av"], ["tensorflow"], ["onnxruntime"], ["openvino"]):
            done = subprocess.run(
                [sys.executable, "-c", IMPORT_RSS, *names], capture_output=True, text=True, env=environment(ROOT)
            )
            rss = float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else float("nan")
            print(f"  {'import ' + ', '.join(names) if names else 'python -c pass':36s} {rss:6.0f}")

        print("3. Heavy modules imported")
        for name, argv in list(commands.items())[2:]:  # without python -m streamer
            for tree, root in trees:
                print(f"  {name:36s} {tree}: {' '.join(modules(argv[3:], root, work)) or '(none)'}")


def figures(medians: dict[str, float]) -> str:
    values = list(medians.values())
    text = "   ".join(f"{value:6.2f}" for value in values)
    return text + (f"   {values[0] / values[1]:.2f}×" if len(values) == 2 else "")


if __name__ == "__main__":
    main()
