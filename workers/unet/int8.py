"""`streamer export unet --int8 --calibrate VIDEO`: the exported U-Net quantized to INT8, checked against float32.

Frames spread over VIDEO are split in two: every other one calibrates the quantizer (ONNX Runtime's static
quantization, workers/runtimes/quantize.py), the others are held out to compare the INT8 model's masks with
the float32 model's, through the predictor that serves them: the fraction of pixels that agree, the road IoU
of each against the other, and both models' predict time. The report is printed and written beside the model
(`OUT.int8.json`); a model agreeing on less than `min_agreement` of the pixels is refused unless forced.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamer.errors import StreamerError
from streamer.models import ModelConfig
from streamer.publish import atomic_path

FRAMES = 48  # read from the calibration video: half calibrate, half are held out
MIN_AGREEMENT = 0.99


@dataclass(frozen=True)
class Int8:
    calibrate: str  # the video whose frames calibrate the quantizer (and check it, on other frames)
    min_agreement: float = MIN_AGREEMENT  # the least fraction of held-out mask pixels equal to float32's
    force: bool = False  # write it even below min_agreement


def quantized(f32: bytes, options: Int8, target: Path) -> bytes:
    """INT8 ONNX bytes of the float32 model `f32`, after its report (printed, and written to target.int8.json)."""
    if not 0.0 <= options.min_agreement <= 1.0:
        raise StreamerError(f"--min-agreement {options.min_agreement}: give a fraction between 0 and 1")
    from workers.runtimes.quantize import quantize, video_frames

    frames = video_frames(options.calibrate, FRAMES)
    calibration, held_out = frames[0::2], frames[1::2]
    with tempfile.TemporaryDirectory() as folder:
        plain = Served(Path(folder) / "f32.onnx", f32)
        name = plain.semantic_input
        batches = [{name: plain.model_input(calibration[i : i + 4])} for i in range(0, len(calibration), 4)]
        int8 = quantize(f32, batches)
        small = Served(Path(folder) / "int8.onnx", int8)
        report = compare(plain.predictor, small.predictor, held_out)
    report.update(calibrate=str(options.calibrate), calibration_frames=len(calibration), bound=options.min_agreement)
    print(
        f"int8: masks agree with f32 on {report['agreement'] * 100:.3f}% of {report['held_out_frames']} held-out "
        f"frames' pixels (bound {options.min_agreement * 100:.1f}%), road IoU {report['road_iou']:.4f}; "
        f"predict {report['f32_ms']:.1f} ms f32, {report['int8_ms']:.1f} ms int8 ({report['speedup']:.2f}x)"
    )
    if report["agreement"] < options.min_agreement and not options.force:
        raise StreamerError(
            f"--int8: the INT8 masks agree with float32's on {report['agreement'] * 100:.2f}% of the held-out "
            f"pixels, below --min-agreement {options.min_agreement:g}; nothing written (pass --force to write it)"
        )
    with atomic_path(target.with_name(target.name + ".int8.json")) as partial:
        Path(partial).write_text(json.dumps(report, indent=2))
    return int8


class Served:
    """An ONNX model (bytes) written to `path` and loaded as `process` serves it (float32, ONNX Runtime)."""

    def __init__(self, path: Path, data: bytes) -> None:
        from workers.unet.predictor import UNetPredictor

        path.write_bytes(data)
        self.predictor = UNetPredictor(ModelConfig(name="unet", weights=str(path), precision="f32", batch_size=4))
        self.semantic_input = _input_name(data)

    def model_input(self, frames: np.ndarray) -> np.ndarray:
        """Frames → what the model takes (resized to its size, scaled to [0, 1]), as the predictor makes it."""
        return self.predictor._to_input(self.predictor.shrink(frames))


def _input_name(data: bytes) -> str:
    import onnx

    graph = onnx.load_from_string(data).graph
    constants = {item.name for item in graph.initializer}
    return next(item.name for item in graph.input if item.name not in constants)


def compare(f32, int8, frames: np.ndarray) -> dict:
    """Masks of both predictors on `frames`: pixel agreement, road (class 1) IoU, median predict time."""
    masks, times = {}, {"f32": [], "int8": []}
    for label, model in (("f32", f32), ("int8", int8)):
        masks[label] = np.stack([p.semantic for p in model.predict(frames)])
    for _ in range(5):  # alternated, medians
        for label, model in (("f32", f32), ("int8", int8)):
            started = time.perf_counter()
            model.predict(frames[:4])
            times[label].append(time.perf_counter() - started)
    a, b = masks["f32"] == 1, masks["int8"] == 1
    union = np.logical_or(a, b).sum()
    f32_ms, int8_ms = (statistics.median(times[label]) * 1000 for label in ("f32", "int8"))
    return {
        "agreement": float((masks["f32"] == masks["int8"]).mean()),
        "road_iou": float(np.logical_and(a, b).sum() / union) if union else 1.0,
        "held_out_frames": len(frames),
        "f32_ms": f32_ms,
        "int8_ms": int8_ms,
        "speedup": f32_ms / int8_ms,
    }
