"""`streamer export MODEL --int8 --calibrate VIDEO`: an exported model quantized to INT8, checked against
float32 and against the ground truth before it is written.

Frames spread over VIDEO calibrate ONNX Runtime's static quantizer (quantize.py), prepared as the model's
serving path prepares its input. A held-out sample clip with ground truth (the model's `streamer sample`
kind, rendered here from HELD_OUT's seed at the calibration video's size) is then run through both models by
the model's own `evaluate`, with the predictor `process` serves them with: the report holds each model's
score against the truth and its change (int8 − f32), how far INT8 agrees with float32 on the same frames,
and both models' time (alternated, medians) with the speed-up: of predict (frames in, predictions out, as
`process` calls it) and of the ONNX graph alone on its input batch. It is printed on one line and written
beside the model (`OUT.int8.json`). A model agreeing less than `min_agreement`, or whose score drops by more
than `max_drop`, is refused (nothing written) unless forced.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np

from streamer.errors import StreamerError
from streamer.publish import atomic_path
from workers.samples import Sample, write_sample

FRAMES = 48  # read from the calibration video
MAX_DROP = 0.01  # the most the score against the truth may drop by default


@dataclass(frozen=True)
class HeldOut:
    """The clip both models are scored on: a sample of its own seed (no calibration video is rendered with it)."""

    seed: int = 90_417
    seconds: float = 3.0
    fps: int = 10


HELD_OUT = HeldOut()


@dataclass(frozen=True)
class Int8:
    calibrate: str  # the video whose frames calibrate the quantizer
    min_agreement: float | None = None  # the least agreement with float32 (None: the model's default)
    max_drop: float = MAX_DROP  # the most the score against the ground truth may drop (f32 − int8)
    force: bool = False  # write it even outside the bounds

    def __post_init__(self) -> None:
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise StreamerError(f"--min-agreement {self.min_agreement}: give a fraction between 0 and 1")
        if not 0.0 <= self.max_drop <= 1.0:
            raise StreamerError(f"--max-drop {self.max_drop}: give a score difference between 0 and 1")


class Subject(Protocol):
    """What a model package tells the INT8 export about its model."""

    sample: Sample  # the held-out clip's kind
    score: str  # the report's name of the score against the truth ("road_iou", "mAP")
    min_agreement: float  # the default bound on `agreement`
    agreement_unit: str  # what agreement counts, for messages ("mask pixels", "detections")
    ops: tuple[str, ...]  # the op types quantized (quantize.py)

    def load(self, path: Path):
        """The predictor `process` serves the ONNX file at `path` with (float32, no TensorFlow)."""

    def calibration(self, predictor, frames: np.ndarray) -> list[dict[str, np.ndarray]]:
        """The model's inputs for `frames` (input name → array), in batches, as `predictor` prepares them."""

    def evaluate(self, predictor, video: Path, annotations: Path) -> dict:
        """The model's `evaluate` of `predictor` on the annotated video: a dict holding `score` among others."""

    def agreement(self, f32: list, int8: list) -> dict:
        """How far the two models' predictions of the same frames agree: {"agreement": fraction, ...}."""

    def describe(self, report: dict) -> str:
        """The agreement part of the summary line."""


class Recorder:
    """A predictor whose predictions are kept (in order) as an evaluation asks for them."""

    def __init__(self, predictor) -> None:
        self.predictor = predictor
        self.predictions: list = []

    def predict(self, frames: np.ndarray) -> list:
        found = self.predictor.predict(frames)
        self.predictions.extend(found)
        return found


def quantized(f32: bytes, options: Int8, target: Path, subject: Subject) -> bytes:
    """INT8 ONNX bytes of the float32 ONNX model `f32`, after its report (printed, written to
    target.int8.json); a StreamerError, nothing written, when outside the bounds and not forced."""
    least = subject.min_agreement if options.min_agreement is None else options.min_agreement
    from workers.runtimes.quantize import quantize, video_frames

    frames = video_frames(options.calibrate, FRAMES)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "f32.onnx").write_bytes(f32)
        models = {"f32": subject.load(Path(folder) / "f32.onnx")}
        batches = subject.calibration(models["f32"], frames)
        int8 = quantize(f32, batches, subject.ops)
        (Path(folder) / "int8.onnx").write_bytes(int8)
        models["int8"] = subject.load(Path(folder) / "int8.onnx")
        video, annotations = held_out_clip(Path(folder), subject.sample, frames.shape[2], frames.shape[1])
        scores, predictions = {}, {}
        for label, model in models.items():
            recorder = Recorder(model)
            scores[label] = subject.evaluate(recorder, video, annotations)
            predictions[label] = recorder.predictions
        graphs = {label: _session(data) for label, data in (("f32", f32), ("int8", int8))}
        calls = {label: partial(model.predict, frames[:4]) for label, model in models.items()}
        calls.update({f"graph_{label}": partial(session.run, None, batches[0]) for label, session in graphs.items()})
        seconds = timed(calls)
    report = {
        "calibrate": str(options.calibrate),
        "calibration_frames": len(frames),
        "held_out": {"sample": subject.sample.name, "size": f"{frames.shape[2]}x{frames.shape[1]}", **asdict(HELD_OUT)},
        "held_out_frames": len(predictions["f32"]),
        "score": subject.score,
        "f32": scores["f32"],
        "int8": scores["int8"],
        "change": scores["int8"][subject.score] - scores["f32"][subject.score],
        **subject.agreement(predictions["f32"], predictions["int8"]),
        "bounds": {"min_agreement": least, "max_drop": options.max_drop},
        "f32_ms": seconds["f32"] * 1000,  # predict, as `process` calls it: frames in, predictions out
        "int8_ms": seconds["int8"] * 1000,
        "speedup": seconds["f32"] / seconds["int8"],
        "graph_f32_ms": seconds["graph_f32"] * 1000,  # the ONNX graph alone on ONNX Runtime, on its input batch
        "graph_int8_ms": seconds["graph_int8"] * 1000,
        "graph_speedup": seconds["graph_f32"] / seconds["graph_int8"],
    }
    print(summary(report, subject))
    refusal = outside_bounds(report, subject)
    if refusal and not options.force:
        raise StreamerError(f"--int8: {refusal}; nothing written (pass --force to write it)")
    with atomic_path(target.with_name(target.name + ".int8.json")) as written:
        Path(written).write_text(json.dumps(report, indent=2))
    return int8


def timed(calls: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Each call's median seconds, all calls alternated round after round (after one untimed call each)."""
    from workers.precision import median_seconds

    for call in calls.values():
        call()  # untimed: warms the session
    probed = {name: (lambda _, call=call: call()) for name, call in calls.items()}
    return median_seconds(probed, None, budget=4.0, rounds=(5, 10))


def _session(data: bytes):
    """An ONNX Runtime session on the model, with the options the predictors' sessions have."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def held_out_clip(folder: Path, sample: Sample, width: int, height: int) -> tuple[Path, Path]:
    """HELD_OUT's clip of `sample` at width×height with its ground truth, written in `folder`."""
    video, annotations = folder / f"held-out-{sample.name}.mp4", folder / f"held-out-{sample.name}.json"
    count = max(2, round(HELD_OUT.seconds * HELD_OUT.fps))
    write_sample(sample, video, width, height, Fraction(HELD_OUT.fps), count, HELD_OUT.seed, annotations)
    return video, annotations


def summary(report: dict, subject: Subject) -> str:
    """The report on one line."""
    score, f32, int8 = report["score"], report["f32"][report["score"]], report["int8"][report["score"]]
    frames = f"{report['held_out_frames']} held-out {report['held_out']['sample']} frames"
    return (
        f"int8: {subject.describe(report)}; {score} {f32:.4f} f32, {int8:.4f} int8 (change {report['change']:+.4f}, "
        f"bound -{report['bounds']['max_drop']:g}) on {frames}; predict {report['f32_ms']:.1f} ms f32, "
        f"{report['int8_ms']:.1f} ms int8 ({report['speedup']:.2f}x; the graph alone {report['graph_speedup']:.2f}x)"
    )


def outside_bounds(report: dict, subject: Subject) -> str | None:
    """Why the INT8 model falls outside the report's bounds, or None."""
    bounds = report["bounds"]
    if report["agreement"] < bounds["min_agreement"]:
        return (
            f"the INT8 model agrees with float32 on {report['agreement'] * 100:.2f}% of the held-out "
            f"{subject.agreement_unit}, below --min-agreement {bounds['min_agreement']:g}"
        )
    if -report["change"] > bounds["max_drop"]:
        score = report["score"]
        return (
            f"its {score} on the held-out clip drops by {-report['change']:.4f} ({report['f32'][score]:.4f} f32, "
            f"{report['int8'][score]:.4f} int8), more than --max-drop {bounds['max_drop']:g}"
        )
    return None
