"""A Mask R-CNN exported by `streamer export maskrcnn --format onnx`, run on ONNX Runtime without TensorFlow.

The ONNX file holds the whole inference graph (backbone, proposals, heads, detection layer; see export.py)
and, in its metadata, the Config it was built with (class names included). Frames are molded and detections
unmolded in NumPy (molding.py), as MaskRCNN.detect does, so `detect(images)` gives the same dicts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from streamer.errors import StreamerError

from . import molding
from .config import Config

CONFIG_KEY = "maskrcnn_config"  # the ONNX metadata entry holding Config.to_json()
SUFFIXES = (".onnx",)


def is_exported(path) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def open_session(path: Path, threads: int | None = None):
    """An ONNX Runtime session on the file at `path` (threads: intra-op, None: every core)."""
    try:
        import onnxruntime
    except ImportError:
        raise StreamerError(
            f"weights {path}: an ONNX model needs onnxruntime; install it with pip install 'streamer[serve]'"
        ) from None
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting between calls
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # the runtime's own failures: not an ONNX file, an op it lacks
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise StreamerError(f"weights {path}: ONNX Runtime cannot load it ({reason})") from None


def saved_config(session, path: Path) -> dict:
    """The Config values the file was exported with."""
    raw = session.get_modelmeta().custom_metadata_map.get(CONFIG_KEY)
    names = sorted(item.name for item in session.get_inputs())
    if raw is None or names != ["images", "windows"]:
        raise StreamerError(
            f"weights {path}: not a Mask R-CNN exported by `streamer export maskrcnn --format onnx` (no "
            f"{CONFIG_KEY} metadata, or inputs {', '.join(names)}); export it again"
        )
    return json.loads(raw)


class ExportedMaskRCNN:
    """`detect(images)` as MaskRCNN's, on an exported graph; detections below `min_confidence` (at least the
    DETECTION_MIN_CONFIDENCE the graph was exported with) are dropped. ONNX Runtime's sessions may be called
    from several threads at once."""

    def __init__(self, config: Config, session, min_confidence: float) -> None:
        self.config = config
        self.session = session
        self.min_confidence = float(min_confidence)
        self.outputs = [output.name for output in session.get_outputs()]

    def run(self, molded: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = dict(
            zip(
                self.outputs,
                self.session.run(None, {"images": molded.astype(np.float32), "windows": windows}),
                strict=True,
            )
        )
        detections, masks = found["detections"], found["masks"]
        if self.min_confidence > float(self.config.DETECTION_MIN_CONFIDENCE):
            detections, masks = self._drop_below(detections, masks)
        return detections, masks

    def _drop_below(self, detections: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Only the detections of at least min_confidence, first in each image (in their order), then padding."""
        kept, kept_masks = np.zeros_like(detections), np.zeros_like(masks)
        for i, rows in enumerate(detections):
            good = np.flatnonzero((rows[:, 4] > 0) & (rows[:, 5] >= self.min_confidence))
            kept[i, : len(good)], kept_masks[i, : len(good)] = rows[good], masks[i, good]
        return kept, kept_masks

    def detect(self, images) -> list[dict]:
        return molding.detect(self.config, images, self.run)
