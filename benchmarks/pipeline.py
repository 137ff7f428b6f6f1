"""Figures for `streamer process`, each a ratio of two runs measured side by side.

  python benchmarks/pipeline.py [--quick]

1. I/O ceiling: process fps with the identity model ÷ bare PyAV decode+encode fps (720p); against the
   ffmpeg CLI, with CPU time and peak RSS: benchmarks/io.py.
2. Pipeline efficiency: process fps ÷ bare `predict` fps on the same frames and batch
   (demo U-Net, and the full-width U-Net where inference dominates).
3. Speed-up over the per-frame loop (read a frame, predict it alone, blend, write).
4. Peak RSS of `streamer process` on a short and a long 720p video.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamer.models import ModelConfig, load_model  # noqa: E402
from streamer.pipeline import Pipeline, ProcessConfig  # noqa: E402
from streamer.sink import EncodeConfig  # noqa: E402

WARM = {}  # benchmark-only: models already compiled, handed to the pipeline by `warm_model`
sys.modules.setdefault(
    "benchmarks.pipeline", sys.modules[__name__]
)  # so the registry finds this WARM when run as a script


def warm_model(config: ModelConfig):
    """Factory for `--model benchmarks.pipeline:warm_model`: the same compiled predictor as the bare run."""
    return WARM[config.weights]


def make_video(path: Path, seconds: float, width=1280, height=720, fps=30, unique=60) -> Path:
    """A road drive at 720p: `unique` rendered frames, looped to the requested length."""
    from workers.unet.synthetic import road_frames

    frames = [image for image, _ in road_frames(7, width, height, float(fps), unique)]
    frames += frames[-2:0:-1]  # play back and forth so the loop has no jump
    total = int(seconds * fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for index in range(total):
            frame = av.VideoFrame.from_ndarray(frames[index % len(frames)], format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        container.streams.video[0].thread_type = "AUTO"
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def bare_transcode(path: Path, out: Path) -> float:
    """fps of PyAV alone: decode → RGB array → encode with the same encoder settings."""
    encode = EncodeConfig()
    started = time.perf_counter()
    count = 0
    with av.open(str(path)) as source, av.open(str(out), "w") as sink:
        video = source.streams.video[0]
        video.thread_type = "AUTO"
        stream = sink.add_stream(encode.codec or "libx264", rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, encode.pix_fmt or "yuv420p"
        stream.codec_context.time_base = video.time_base
        stream.options = {"crf": str(encode.crf), "preset": encode.preset}
        for frame in source.decode(video):
            image = frame.to_ndarray(format="rgb24")
            encoded = av.VideoFrame.from_ndarray(image, format="rgb24")
            encoded.pts, encoded.time_base = frame.pts, frame.time_base
            sink.mux(stream.encode(encoded))
            count += 1
        sink.mux(stream.encode(None))
    return count / (time.perf_counter() - started)


def process_fps(path: Path, out: Path, model: ModelConfig) -> float:
    result = Pipeline(ProcessConfig(input=str(path), output=str(out), model=model, overwrite=True)).run()
    return result.fps


def bare_predict_fps(model, frames: list[np.ndarray], batch: int) -> float:
    model.predict(np.stack(frames[:batch]))  # compile outside the timing
    started = time.perf_counter()
    for start in range(0, len(frames), batch):
        model.predict(np.stack(frames[start : start + batch]))
    return len(frames) / (time.perf_counter() - started)


def efficiency(label: str, weights: str, path: Path, out: Path, batch: int) -> None:
    config = ModelConfig(name="unet", weights=weights, batch_size=batch)
    model = WARM[weights] = load_model(config)
    frames = decode_all(path)
    bare = bare_predict_fps(model, frames, batch)
    warm = ModelConfig(name="benchmarks.pipeline:warm_model", weights=weights, batch_size=batch)
    piped = process_fps(path, out, warm)
    print(f"  {label}: process {piped:.2f} fps / bare predict {bare:.2f} fps = {piped / bare:.2f}")


def seed_loop_fps(weights: str, path: Path, out: Path, threshold=0.5) -> float:
    """The notebook's way, one frame at a time: read, resize, model(x), threshold, PIL blend, write."""
    import cv2
    import keras
    from PIL import Image

    model = keras.saving.load_model(weights, compile=False)
    height, width = model.input_shape[1:3]
    started = time.perf_counter()
    count = 0
    with av.open(str(path)) as source, av.open(str(out), "w") as sink:
        video = source.streams.video[0]
        stream = sink.add_stream("libx264", rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in source.decode(video):
            image = frame.to_ndarray(format="rgb24")
            small = cv2.resize(image, (width, height)) / 255
            output = model(np.expand_dims(small, axis=0))
            mask = (np.asarray(output[0]) > threshold).astype(np.uint8).squeeze(-1) * 255
            background = Image.fromarray(image).convert("RGBA")
            overlay = Image.fromarray(mask).resize((image.shape[1], image.shape[0])).convert("RGBA")
            blended = np.asarray(Image.blend(background, overlay, alpha=0.5).convert("RGB"))
            sink.mux(stream.encode(av.VideoFrame.from_ndarray(blended, format="rgb24")))
            count += 1
        sink.mux(stream.encode(None))
    return count / (time.perf_counter() - started)


# A child's ru_maxrss starts at its parent's RSS when forked (before exec), so the peak of a command is
# measured from a small launcher process instead of from this one, which may hold decoded clips.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def peak_rss_mb(args: list[str]) -> float:
    """Peak resident memory of `streamer ARGS`, in MB, measured from a small launcher."""
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, "-m", "streamer", *args], cwd=ROOT, capture_output=True, text=True
    )
    kilobytes, code = (int(part) for part in result.stdout.split()[-2:])
    if code != 0:
        raise SystemExit(f"streamer {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return kilobytes / 1024


def full_unet_weights(folder: Path, height: int, width: int) -> str:
    """The seed's full-width U-Net (64→1024), untrained: its speed is what is measured."""
    from workers.unet.models import unet

    path = folder / "unet-full.keras"
    unet((height, width, 3), width=1.0).save(path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short videos, for a smoke run")
    parser.add_argument("--seconds", type=float, default=30, help="length of the 720p clip")
    parser.add_argument("--long-seconds", type=float, default=300, help="length of the long RSS video")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--skip-full", action="store_true", help="skip the full-width U-Net")
    options = parser.parse_args()
    seconds = 4 if options.quick else options.seconds
    long_seconds = 40 if options.quick else options.long_seconds
    demo = str(ROOT / "workers/unet/weights/road-demo.keras")

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        clip = make_video(folder / "clip.mp4", seconds)
        out = folder / "out.mp4"
        print(f"720p clip: {seconds:g} s, {int(seconds * 30)} frames, batch {options.batch}")

        print("1. I/O ceiling (identity model)")
        bare = bare_transcode(clip, out)
        piped = process_fps(clip, out, ModelConfig(name="identity", batch_size=options.batch))
        print(f"  process {piped:.1f} fps / bare PyAV decode+encode {bare:.1f} fps = {piped / bare:.2f}")

        print("2. Pipeline efficiency (process fps / bare predict fps)")
        efficiency("demo U-Net", demo, clip, out, options.batch)
        if not options.skip_full:
            from workers.unet.predictor import load

            size = load(ModelConfig(weights=demo)).input_size
            short = make_video(folder / "short.mp4", 1.0 if options.quick else 2.0)
            efficiency(
                f"full U-Net 64→1024 at {size[0]}×{size[1]}",
                full_unet_weights(folder, *size),
                short,
                out,
                options.batch,
            )

        print("3. Speed-up over the per-frame loop (demo U-Net)")
        loop = seed_loop_fps(demo, clip, out)
        piped = process_fps(clip, out, ModelConfig(name="unet", weights=demo, batch_size=options.batch))
        print(f"  process {piped:.2f} fps / per-frame loop {loop:.2f} fps = {piped / loop:.2f}×")

        print("4. Peak RSS of `streamer process` (demo U-Net)")
        long = make_video(folder / "long.mp4", long_seconds)
        rss = {}
        for label, video in ((f"{seconds:g} s", clip), (f"{long_seconds:g} s", long)):
            rss[label] = peak_rss_mb(["process", str(video), "-o", str(out), "-y", "-q"])
            print(f"  {label}: {rss[label]:.0f} MB")
        short_rss, long_rss = rss.values()
        print(f"  long / short = {long_rss / short_rss:.2f}")


if __name__ == "__main__":
    main()
