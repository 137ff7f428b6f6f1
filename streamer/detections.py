"""Per-frame detection records (`--detections out.jsonl`): boxes, classes, scores and RLE masks."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from streamer.prediction import Prediction
from streamer.publish import AtomicFile


def record(prediction: Prediction, class_names=None) -> dict:
    """JSON-ready detections of one frame; masks as COCO run-length encodings."""
    result: dict = {}
    if prediction.boxes is not None:
        result["boxes"] = np.asarray(prediction.boxes).tolist()
    if prediction.class_ids is not None:
        ids = np.asarray(prediction.class_ids).tolist()
        result["class_ids"] = ids
        if class_names is not None:
            result["classes"] = [class_names[i] if 0 <= i < len(class_names) else str(i) for i in ids]
    if prediction.scores is not None:
        result["scores"] = [round(float(score), 4) for score in prediction.scores]
    if prediction.masks is not None and prediction.masks.shape[-1]:
        from pycocotools import mask as rle

        encoded = rle.encode(np.asfortranarray(prediction.masks.astype(np.uint8)))
        result["masks"] = [{"size": item["size"], "counts": item["counts"].decode()} for item in encoded]
    elif prediction.masks is not None:
        result["masks"] = []
    return result


class DetectionsWriter:
    """One JSON line per frame, in frame order; published whole on close (streamer.publish): a local file
    is renamed into place, a bucket URL (s3://, gs://, …) is uploaded in one piece."""

    def __init__(self, path: str | os.PathLike, storage: dict | None = None):
        self._output = AtomicFile(path, storage)
        self.path = self._output.target if self._output.remote else Path(path)
        try:
            self._file = open(self._output.path, "w")
        except BaseException:
            self._output.abort()
            raise

    def write(self, index: int, pts: int, time_base: Fraction, detections: dict | None) -> None:
        line = {"frame": index, "pts": pts, "time": round(float(pts * time_base), 6), **(detections or {})}
        self._file.write(json.dumps(line, separators=(",", ":")) + "\n")

    def close(self) -> Path | str:
        try:
            self._file.close()
        except BaseException:
            self._output.abort()
            raise
        return self._output.publish()

    def abort(self) -> None:
        try:
            self._file.close()
        finally:
            self._output.abort()
