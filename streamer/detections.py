"""Per-frame detection records (`--detections out.jsonl`): boxes, classes, scores and RLE masks."""

from __future__ import annotations

import json
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from streamer.prediction import Prediction


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
    """One JSON line per frame, in frame order; written under a temporary name, renamed when complete.
    A bucket URL (s3://, gs://, …) is written locally and uploaded whole on close."""

    def __init__(self, path: str | os.PathLike, storage: dict | None = None):
        from streamer.storage import is_remote

        self.url = str(path) if is_remote(str(path)) else None
        self.storage = storage
        if self.url:
            handle, temp = tempfile.mkstemp(prefix="streamer-", suffix=".jsonl")
            os.close(handle)
            self.path, self._temp = self.url, Path(temp)
        else:
            self.path = Path(path)
            self._temp = self.path.with_name(f".{self.path.name}.part-{os.getpid()}")
        self._file = open(self._temp, "w")

    def write(self, index: int, pts: int, time_base: Fraction, detections: dict | None) -> None:
        line = {"frame": index, "pts": pts, "time": round(float(pts * time_base), 6), **(detections or {})}
        self._file.write(json.dumps(line, separators=(",", ":")) + "\n")

    def close(self) -> Path | str:
        self._file.close()
        if self.url is None:
            os.replace(self._temp, self.path)
            return self.path
        from streamer.storage import upload

        try:
            upload(str(self._temp), self.url, self.storage)
        finally:
            self._temp.unlink(missing_ok=True)
        return self.url

    def abort(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)
