"""Mask R-CNN ResNet-50 FPN: our detect against torchvision's maskrcnn_resnet50_fpn, side by side.

    python benchmarks/maskrcnn_torchvision.py [--dims 512,1024] [--repeats 7] [--threads 2] [--quick]

Both models see the same frame: a seeded 1280×720 RGB frame letterboxed (our IMAGE_RESIZE_MODE square) to
DIM×DIM, given to both as uint8 so that neither resizes it again. Both run float32 on the CPU with
`--threads` threads (TensorFlow intra- and inter-op pools; torch.set_num_threads and
set_num_interop_threads), untrained weights from a fixed seed (speed does not depend on them), 81
classes, 1000 proposals per image after the RPN's NMS (POST_NMS_ROIS_INFERENCE; torchvision's default
rpn_post_nms_top_n_test) and 100 detections with masks: no score threshold on either side
(DETECTION_MIN_CONFIDENCE 0, box_score_thresh 0), so both fill every detection slot and the mask
head runs on 100 boxes. A call is the whole of what a user calls: ours `MaskRCNN.detect([frame])`,
torchvision's `model([tensor])` in eval mode under torch.inference_mode, from the uint8 frame to masks
pasted at the frame's size. Our model's weights are fixed as the predictor fixes them (BatchNorms folded
once); `--keras` also times ours on the Keras layers' graph (what detect ran before the folded graph).

Each side runs in its own process (ours in this interpreter's environment, torchvision in a virtual
environment of its own, ~/.cache/streamer-bench/torchvision, made on first use with
`pip install torch==2.14.1 torchvision==0.29.1`; on aarch64 2.9.1/0.24.1), both models built and
warmed up before timing. Calls alternate between the two processes, so that both see the same machine
load; the figures are medians, and the ratio is torchvision's median time ÷ ours (> 1: ours is faster).
When torchvision cannot be installed the benchmark prints "skipped: <reason>" and exits 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("STREAMER_BENCH_TORCH_VENV", Path.home() / ".cache" / "streamer-bench" / "torchvision"))
PINS = {"x86_64": ["torch==2.14.1", "torchvision==0.29.1"], "aarch64": ["torch==2.9.1", "torchvision==0.24.1"]}
MARK = "@@ "  # prefix of the children's answers (anything else they print is ignored)
TIMEOUT = 600.0  # seconds for one answer of a child (building a model at 1024² on a busy machine included)

OURS = r"""
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, sys.argv[1])
threads = int(sys.argv[2])
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)
import keras
from workers.maskrcnn.config import Config
from workers.maskrcnn.model import MaskRCNN

models, frames = {}, {}
for line in sys.stdin:
    cmd, dim, path = line.split()
    if dim in models:
        models[dim].fused = cmd != "keras"
    if cmd == "build":
        keras.utils.set_random_seed(0)
        models[dim] = MaskRCNN(Config(NAME="coco", NUM_CLASSES=81, BACKBONE="resnet50", IMAGE_MIN_DIM=int(dim),
                                      IMAGE_MAX_DIM=int(dim), IMAGES_PER_GPU=1, DETECTION_MIN_CONFIDENCE=0.0))
        models[dim].fix_weights()  # as the predictor serves a loaded model: BatchNorms folded once
        frames[dim] = np.load(path)
    t0 = time.perf_counter()
    found = models[dim].detect([frames[dim]])[0]
    print("@@", (time.perf_counter() - t0) * 1000, len(found["class_ids"]), flush=True)
"""

TORCHVISION = r"""
import sys, time
threads = int(sys.argv[1])
import numpy as np
import torch
import torchvision
torch.set_num_threads(threads)
torch.set_num_interop_threads(threads)
torch.manual_seed(0)

models, frames = {}, {}
for line in sys.stdin:
    cmd, dim, path = line.split()
    if cmd == "build":
        model = torchvision.models.detection.maskrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=81, min_size=int(dim), max_size=int(dim),
            box_score_thresh=0.0, box_detections_per_img=100, rpn_post_nms_top_n_test=1000)
        models[dim] = model.eval()
        frames[dim] = np.load(path)
    t0 = time.perf_counter()
    with torch.inference_mode():
        image = torch.from_numpy(frames[dim]).permute(2, 0, 1).float().div_(255.0)
        found = models[dim]([image])[0]
        masks = (found["masks"] > 0.5).numpy()
    print("@@", (time.perf_counter() - t0) * 1000, len(found["labels"]), flush=True)
"""


# The same threading settings on both sides: OpenMP threads that sleep when idle (PyTorch's and oneDNN's OpenMP
# pools otherwise spin between calls, which on a shared machine takes CPU from the other side's process).
THREADING = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


class Child:
    """A child process answering one line per request on stdout (lines starting with MARK), with THREADING."""

    def __init__(self, name: str, argv: list[str], threads: int):
        self.name = name
        env = {**os.environ, **THREADING, "OMP_NUM_THREADS": str(threads)}
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL}
        self.proc = subprocess.Popen(argv, **pipes, text=True, bufsize=1, env=env)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith(MARK):
                self.lines.put(line[len(MARK) :].split())
        self.lines.put(None)

    def ask(self, cmd: str, dim: int, path: Path) -> tuple[float, int]:
        self.proc.stdin.write(f"{cmd} {dim} {path}\n")
        self.proc.stdin.flush()
        try:
            answer = self.lines.get(timeout=TIMEOUT)
        except queue.Empty:
            raise RuntimeError(f"{self.name}: no answer within {TIMEOUT:.0f} s") from None
        if answer is None:
            raise RuntimeError(f"{self.name} exited with {self.proc.wait(timeout=30)}")
        return float(answer[0]), int(answer[1])

    def close(self):
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def torch_python() -> tuple[Path | None, str]:
    """The virtual environment's python with torch and torchvision importable (made on first use), or None
    and why not."""
    python = VENV / "bin" / "python"
    check = [str(python), "-c", "import torch, torchvision; print(torch.__version__, torchvision.__version__)"]

    def works() -> str | None:
        try:
            done = subprocess.run(check, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    if python.exists() and works():
        return python, works()
    pins = PINS.get(platform.machine())
    if pins is None:
        return None, f"no torch/torchvision versions known to install on {platform.machine()}"
    print(f"installing {' '.join(pins)} into {VENV} (once) …", flush=True)
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=300)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *pins], capture_output=True, text=True, timeout=3600
        )
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"could not make {VENV}: {error}"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        return None, f"pip install {' '.join(pins)} failed: {last}"
    version = works()
    return (python, version) if version else (None, "torch/torchvision installed but do not import")


def letterboxed(dim: int, directory: Path) -> Path:
    import numpy as np

    from workers.maskrcnn.image import resize_image

    frame = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    image = resize_image(frame, min_dim=dim, max_dim=dim, mode="square")[0]
    path = directory / f"frame{dim}.npy"
    np.save(path, image)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="512,1024")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="512² only, 3 repeats")
    parser.add_argument(
        "--keras", action="store_true", help="also time ours on the Keras layers' graph (MaskRCNN(fused=False))"
    )
    args = parser.parse_args(argv)
    dims = [512] if args.quick else [int(d) for d in args.dims.split(",")]
    repeats = 3 if args.quick else args.repeats

    python, version = torch_python()
    if python is None:
        print(f"skipped: {version}")
        return 0
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="maskrcnn-torchvision-") as tmp:
        paths = {dim: letterboxed(dim, Path(tmp)) for dim in dims}
        ours = Child("ours", [sys.executable, "-c", OURS, str(ROOT), str(args.threads)], args.threads)
        theirs = Child("torchvision", [str(python), "-c", TORCHVISION, str(args.threads)], args.threads)
        try:
            counts = {}
            for dim in dims:  # build, then one more warm-up call each (graph compilation, allocator)
                counts[dim] = (ours.ask("build", dim, paths[dim])[1], theirs.ask("build", dim, paths[dim])[1])
                for cmd in ("run", "keras") if args.keras else ("run",):
                    ours.ask(cmd, dim, paths[dim])
                theirs.ask("run", dim, paths[dim])
            # (child, command, column): ours, torchvision[, ours on the Keras graph]
            runs = [(ours, "run", 0), (theirs, "run", 1)] + ([(ours, "keras", 2)] if args.keras else [])
            times = {dim: ([], [], []) for dim in dims}
            for repeat in range(repeats):
                for dim in dims:
                    for child, cmd, column in runs if repeat % 2 == 0 else runs[::-1]:
                        times[dim][column].append(child.ask(cmd, dim, paths[dim])[0])
        finally:
            ours.close()
            theirs.close()
    settings = " ".join(f"{key}={value}" for key, value in {**THREADING, "OMP_NUM_THREADS": args.threads}.items())
    print(f"torchvision {version}; {args.threads} threads each; both sides with {settings}")
    print(f"medians of {repeats} alternated calls")
    keras_head = f" {'Keras graph ms':>14} {'ratio':>6}" if args.keras else ""
    print(f"{'size':>9} {'ours ms':>9} {'torchvision ms':>14} {'ratio':>6}{keras_head} {'detections':>12}")
    for dim in dims:
        mine, tv = (statistics.median(t) for t in times[dim][:2])
        found = f"{counts[dim][0]}/{counts[dim][1]}"
        keras_row = ""
        if args.keras:
            graph = statistics.median(times[dim][2])
            keras_row = f" {graph:14.0f} {tv / graph:5.2f}×"
        print(f"{dim:4d}×{dim:<4d} {mine:9.0f} {tv:14.0f} {tv / mine:5.2f}×{keras_row} {found:>12}")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"({time.perf_counter() - start:.0f} s)")
    sys.exit(code)
