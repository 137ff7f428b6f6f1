"""The demo U-Net's speed against an older version of this code, and bfloat16 against float32, on one clip.

  python benchmarks/unet.py [--quick] [--old DIR] [--pairs N]

On one generated 720p road clip (`streamer sample road`), with repeats alternated old/new and medians taken:

1. `streamer process CLIP --model unet`: fps (its own summary line) of this tree ÷ the old tree's; and the same
   for frames ÷ seconds of the whole command, start to exit (imports, model load and graph build included).
2. Predict only (the clip's frames through `predict`, batch 4): fps of this tree ÷ the old tree's, and the
   fraction of mask pixels on which the two trees' masks differ.
3. `--precision bf16` ÷ `--precision f32` predict speed and mask agreement (fraction of pixels equal), for
   TensorFlow and for OpenVINO (`--runtime openvino`, when it is installed).

The old tree is `git archive HEAD` of this repository (--old-commit REV: another commit) unless --old names a
folder, the new one this working tree unless --new names one; every run of either tree is a child process
started with PYTHONPATH set to its tree, from a scratch folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"(\d+) frames in ([\d.]+) s \(([\d.]+) fps\)")
EVERY = 5  # masks kept for comparison: every fifth frame

# Predict only, run in a child with PYTHONPATH at one tree: argv = clip, passes, masks file, JSON of ModelConfig
# fields (besides the model name). Prints {"fps": [one per pass], "module": where streamer came from}.
PREDICT = """
import json, sys, time
import av, numpy as np
import streamer
from streamer.models import ModelConfig, load_model
clip, passes, masks_file, fields = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
with av.open(clip) as container:
    frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
model = load_model(ModelConfig(name="unet", **fields))
batch = model.config.batch_size
model.predict(frames[:batch])  # compile outside the timing
fps, masks = [], []
for index in range(passes):
    started = time.perf_counter()
    found = [p.semantic for s in range(0, len(frames), batch) for p in model.predict(frames[s : s + batch])]
    fps.append(len(frames) / (time.perf_counter() - started))
    if index == 0:
        masks = [found[i] for i in range(0, len(found), EVERY)]
np.save(masks_file, np.packbits(np.stack(masks) > 0))
print(json.dumps({"fps": fps, "module": streamer.__file__}))
""".replace("EVERY", str(EVERY))

# Precision: in one child (this tree), each variant's predict fps per pass, alternated, and its masks.
PRECISION = """
import json, sys, time
import av, numpy as np
from streamer.models import ModelConfig, load_model
clip, passes, variants = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
with av.open(clip) as container:
    frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
models = {}
for label, fields in variants.items():
    try:
        models[label] = load_model(ModelConfig(name="unet", **fields))
    except Exception as error:
        print(f"  {label}: skipped ({error})", file=sys.stderr)
batch = 4
masks = {label: [] for label in models}
fps = {label: [] for label in models}
for label, model in models.items():
    model.predict(frames[:batch])
for index in range(passes):
    for label, model in models.items():
        started = time.perf_counter()
        found = [p.semantic for s in range(0, len(frames), batch) for p in model.predict(frames[s : s + batch])]
        fps[label].append(len(frames) / (time.perf_counter() - started))
        if index == 0:
            masks[label] = np.stack(found[::EVERY]) > 0
reference = masks["tf f32"]
agreement = {label: float((m == reference).mean()) for label, m in masks.items()}
precision = {label: getattr(model, "precision", "?") for label, model in models.items()}
print(json.dumps({"fps": fps, "agreement": agreement, "precision": precision}))
""".replace("EVERY", str(EVERY))


def child(tree: Path, args: list[str], scratch: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(tree), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, *args], cwd=scratch, env=environment, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} in {tree} failed:\n{result.stderr[-2000:]}")
    return result


def process_fps(tree: Path, clip: Path, scratch: Path) -> tuple[float, float]:
    """(fps of its summary line, seconds from start to exit of the whole command)."""
    args = ["-m", "streamer", "process", str(clip), "-o", str(scratch / "out.mp4"), "-y", "--model", "unet"]
    started = time.perf_counter()
    result = child(tree, args, scratch)
    wall = time.perf_counter() - started
    found = SUMMARY.findall(result.stdout + result.stderr)
    if not found:
        raise SystemExit(f"no summary line from streamer process in {tree}:\n{result.stderr[-1000:]}")
    return float(found[-1][2]), wall


def predict_fps(tree: Path, clip: Path, scratch: Path, passes: int, masks: Path) -> float:
    result = child(tree, ["-c", PREDICT, str(clip), str(passes), str(masks), json.dumps({"batch_size": 4})], scratch)
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    if not answer["module"].startswith(str(tree)):
        raise SystemExit(f"the child imported {answer['module']}, not the tree {tree}")
    return statistics.median(answer["fps"])


def ratio_line(label: str, new: list[float], old: list[float]) -> str:
    pairs = [n / o for n, o in zip(new, old, strict=True)]
    return (
        f"  {label}: new {statistics.median(new):.2f} fps / old {statistics.median(old):.2f} fps = "
        f"{statistics.median(pairs):.2f}x (median of {len(pairs)} alternated pairs: "
        f"{', '.join(f'{r:.2f}' for r in pairs)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 3 s clip and two pairs, for a smoke run")
    parser.add_argument("--seconds", type=float, default=10, help="length of the 720p clip (default: 10)")
    parser.add_argument("--pairs", type=int, default=3, help="alternated old/new pairs (default: 3)")
    parser.add_argument("--old", type=Path, help="the old tree (default: git archive of --old-commit)")
    parser.add_argument("--old-commit", default="HEAD", help="the commit that is the old tree (default: HEAD)")
    parser.add_argument("--new", type=Path, default=ROOT, help="the new tree (default: this working tree)")
    parser.add_argument("--skip-precision", action="store_true", help="only figures 1 and 2")
    options = parser.parse_args()
    seconds, pairs = (3.0, 2) if options.quick else (options.seconds, options.pairs)

    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        old = options.old
        if old is None:
            old = scratch / "old"
            old.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", options.old_commit], capture_output=True, check=True
            )
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        old, new = old.resolve(), options.new.resolve()
        clip = scratch / "clip.mp4"
        child(
            new, ["-m", "streamer", "sample", "road", "-o", str(clip), "--seconds", f"{seconds:g}", "-y", "-q"], scratch
        )
        print(
            f"720p road clip: {seconds:g} s, {int(seconds * 30)} frames; old tree {old}, new tree {new}; "
            f"{pairs} alternated pairs"
        )

        print("1. streamer process --model unet (fps from its summary line)")
        fps, runs = {"old": [], "new": []}, {"old": [], "new": []}
        for _ in range(pairs):
            for label, tree in (("old", old), ("new", new)):
                speed, wall = process_fps(tree, clip, scratch)
                fps[label].append(speed)
                runs[label].append(int(seconds * 30) / wall)  # frames per second of the whole command
        print(ratio_line("process", fps["new"], fps["old"]))
        print(ratio_line("whole command, start to exit (model load included)", runs["new"], runs["old"]))

        print("2. predict only (batch 4)")
        fps = {"old": [], "new": []}
        for _ in range(pairs):
            for label, tree in (("old", old), ("new", new)):
                fps[label].append(predict_fps(tree, clip, scratch, 2, scratch / f"{label}.npy"))
        print(ratio_line("predict", fps["new"], fps["old"]))
        masks = {label: np.unpackbits(np.load(scratch / f"{label}.npy")) for label in ("old", "new")}
        differ = float((masks["old"] != masks["new"]).mean())
        print(f"  masks of every {EVERY}th frame: {differ:.5f} of pixels differ between new and old ({differ:.3%})")

        if options.skip_precision:
            return
        print("3. precision: bf16 / f32 predict speed and mask agreement with TensorFlow f32")
        variants = {
            "tf f32": {"precision": "f32"},
            "tf bf16": {"precision": "bf16"},
            "openvino f32": {"precision": "f32", "runtime": "openvino"},
            "openvino bf16": {"precision": "bf16", "runtime": "openvino"},
        }
        result = child(new, ["-c", PRECISION, str(clip), str(max(pairs, 3)), json.dumps(variants)], scratch)
        sys.stderr.write(result.stderr if "skipped" in result.stderr else "")
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        speeds, agreement = answer["fps"], answer["agreement"]
        for runtime in ("tf", "openvino"):
            plain, half = speeds.get(f"{runtime} f32"), speeds.get(f"{runtime} bf16")
            if not plain or not half:
                print(f"  {runtime}: skipped")
                continue
            pairs_ratio = statistics.median(h / p for h, p in zip(half, plain, strict=True))
            print(
                f"  {runtime}: bf16 {statistics.median(half):.2f} fps / f32 {statistics.median(plain):.2f} fps = "
                f"{pairs_ratio:.2f}x; bf16 masks agree with tf f32 on {agreement[f'{runtime} bf16']:.5f} of pixels"
                + (f" (openvino f32: {agreement['openvino f32']:.5f})" if runtime == "openvino" else "")
            )
        if speeds.get("openvino f32") and speeds.get("tf f32"):
            ov_tf = statistics.median(o / t for o, t in zip(speeds["openvino f32"], speeds["tf f32"], strict=True))
            print(f"  openvino f32 / tf f32 = {ov_tf:.2f}x")
        auto = child(new, ["-c", AUTO], scratch).stdout.strip().splitlines()[-1]
        print(f"  --precision auto chooses here: {auto}")


AUTO = """
from streamer.models import ModelConfig, load_model
from workers.predictor import bf16_cpu
model = load_model(ModelConfig(name="unet"))
print(f"{model.precision} (CPU bfloat16: {bf16_cpu() or 'none'})")
"""


if __name__ == "__main__":
    main()
