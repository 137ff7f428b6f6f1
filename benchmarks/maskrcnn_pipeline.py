"""Mask R-CNN in the pipeline: efficiency and speed-up over the per-frame loop, in alternating rounds.

  python benchmarks/maskrcnn_pipeline.py [--seconds 10] [--batch 4] [--rounds 3]

Demo weights (light backbone, 128² input) on a generated 640×360 shapes clip, splash effect. Each
round runs these one after another on the same clip, so machine noise hits them alike:

  bare detect   `predict` on batches of already decoded frames (no decode, effect or encode)
  process       `streamer process --model maskrcnn --effect splash`, the same compiled model
  seed loop     the seeds' video loop: read a frame, `model.detect([frame])`, `color_splash`
                (skimage grey, `np.sum(mask) >= 1`, `np.where`), write
  strict loop   that loop with our fastest single-frame parts: compiled detect and the OpenCV splash

Both loops read and write with PyAV and the pipeline's encoder settings. Then the efficiency once
more where inference dominates: the same architecture at IMAGE_MAX_DIM 512 (untrained weights; speed
does not depend on them). Figures are medians over the rounds; ratios are ratios of medians.
`pip install -e ".[bench]"` brings scikit-image.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.pipeline import WARM, bare_predict_fps, decode_all
from streamer.effects import EffectConfig, splash
from streamer.models import ModelConfig, load_model
from streamer.options import EncodeConfig
from streamer.pipeline import Pipeline, ProcessConfig


def make_clip(path: Path, frames: int, width=640, height=360) -> Path:
    from workers.maskrcnn.shapes import shapes_frames

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, (image, _) in enumerate(shapes_frames(3, width, height, 30.0, frames)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 30)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def seed_color_splash(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The balloon sample's `color_splash`: grey everywhere, colour where any instance is."""
    import skimage.color

    gray = skimage.color.gray2rgb(skimage.color.rgb2gray(image)) * 255
    if mask.shape[-1] > 0:
        return np.where(np.sum(mask, -1, keepdims=True) >= 1, image, gray).astype(np.uint8)
    return gray.astype(np.uint8)


def loop_fps(clip: Path, out: Path, step) -> float:
    """Read a frame, `step(image) -> rendered image`, write it; one frame at a time."""
    encode = EncodeConfig()
    started, count = time.perf_counter(), 0
    with av.open(str(clip)) as source, av.open(str(out), "w") as sink:
        video = source.streams.video[0]
        stream = sink.add_stream(encode.codec or "libx264", rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, encode.pix_fmt or "yuv420p"
        stream.options = {"crf": str(encode.crf), "preset": encode.preset}
        for frame in source.decode(video):
            rendered = step(frame.to_ndarray(format="rgb24"))
            sink.mux(stream.encode(av.VideoFrame.from_ndarray(rendered, format="rgb24")))
            count += 1
        sink.mux(stream.encode(None))
    return count / (time.perf_counter() - started)


def heavy_weights(folder: Path) -> str:
    """The demo architecture at 512² input, untrained, saved with its config."""
    from workers.maskrcnn.config import shapes_config
    from workers.maskrcnn.model import MaskRCNN

    path = folder / "light-512.weights.h5"
    config = shapes_config(IMAGE_MIN_DIM=512, IMAGE_MAX_DIM=512, RPN_ANCHOR_SCALES=(32, 64, 128, 256, 512))
    MaskRCNN(config).save_weights(str(path))
    return str(path)


def efficiency(weights: str, clip: Path, out: Path, batch: int, rounds: int) -> tuple[float, float]:
    """Medians of (process fps, bare detect fps) for one weights file, measured in alternating rounds."""
    frames = decode_all(clip)
    model = WARM[weights] = load_model(ModelConfig(name="maskrcnn", weights=weights, batch_size=batch))
    warm = ModelConfig(name="benchmarks.pipeline:warm_model", weights=weights, batch_size=batch)
    splash_effect = EffectConfig(name="splash")
    process = ProcessConfig(input=str(clip), output=str(out), model=warm, effect=splash_effect, overwrite=True)
    piped, bare = [], []
    for _ in range(rounds):
        bare.append(bare_predict_fps(model, frames, batch))
        piped.append(Pipeline(process).run().fps)
    return statistics.median(piped), statistics.median(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of the 30 fps clip")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    from workers.maskrcnn.predictor import DEMO_WEIGHTS

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        clip = make_clip(folder / "shapes.mp4", int(options.seconds * 30))
        frames = decode_all(clip)
        batched = WARM[DEMO_WEIGHTS] = load_model(ModelConfig(name="maskrcnn", batch_size=options.batch))
        single = load_model(ModelConfig(name="maskrcnn", batch_size=1))
        single.predict(frames[0][None])  # compile outside the timing (bare_predict_fps warms the batched one)
        warm = ModelConfig(name="benchmarks.pipeline:warm_model", weights=DEMO_WEIGHTS, batch_size=options.batch)
        process = ProcessConfig(
            input=str(clip),
            output=str(folder / "out.mp4"),
            model=warm,
            effect=EffectConfig(name="splash"),
            overwrite=True,
        )

        def seed_frame(image):
            return seed_color_splash(image, single.model.detect([image])[0]["masks"])

        def strict_frame(image):
            return splash(image, single.predict(image[None])[0], EffectConfig())

        runs = {
            "bare detect": lambda: bare_predict_fps(batched, frames, options.batch),
            "process": lambda: Pipeline(process).run().fps,
            "seed loop": lambda: loop_fps(clip, folder / "loop.mp4", seed_frame),
            "strict loop": lambda: loop_fps(clip, folder / "loop.mp4", strict_frame),
        }
        print(
            f"Mask R-CNN demo (light backbone, 128²), 640×360 shapes clip, {len(frames)} frames, batch {options.batch}"
        )
        fps = {name: [] for name in runs}
        for round_ in range(1, options.rounds + 1):
            for name, run in runs.items():
                fps[name].append(run())
            print(
                f"  round {round_}: " + ", ".join(f"{name} {values[-1]:.1f}" for name, values in fps.items()) + " fps"
            )
        median = {name: statistics.median(values) for name, values in fps.items()}
        print(
            f"  efficiency: process {median['process']:.1f} fps / bare detect {median['bare detect']:.1f} fps = "
            f"{median['process'] / median['bare detect']:.2f}"
        )
        for loop in ("seed loop", "strict loop"):
            print(
                f"  speed-up over the {loop}: process {median['process']:.1f} fps / {median[loop]:.1f} fps = "
                f"{median['process'] / median[loop]:.2f}×"
            )
        short = make_clip(folder / "short.mp4", 90)
        piped, bare = efficiency(heavy_weights(folder), short, folder / "out.mp4", options.batch, options.rounds)
        print(
            f"  efficiency at 512² (light backbone, untrained): process {piped:.2f} fps / bare detect {bare:.2f} fps = "
            f"{piped / bare:.2f}"
        )


if __name__ == "__main__":
    main()
