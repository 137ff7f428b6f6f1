"""Per-frame detection records (`--detections out.jsonl`): boxes, classes, scores and RLE masks.

Boxes are `[y1, x1, y2, x2]` in pixels, end exclusive (matterport's order); masks are COCO run-length
encodings of the whole frame. An instance model's record has one entry per instance; a semantic model's
(U-Net) one entry per class present in the frame, with its pixel count (`pixels`) and no scores.
`--detections-format coco` writes a COCO results file instead (`[x, y, w, h]` boxes, `image_id` = frame
index), which pycocotools' `COCO.loadRes` reads."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from streamer.errors import StreamerError
from streamer.prediction import Prediction
from streamer.publish import AtomicFile

FORMATS = ("jsonl", "coco")


def _rle(masks: np.ndarray) -> list[dict]:
    from pycocotools import mask as rle

    encoded = rle.encode(np.asfortranarray(masks.astype(np.uint8)))
    return [{"size": item["size"], "counts": item["counts"].decode()} for item in encoded]


def _name(class_names, class_id: int) -> str:
    return class_names[class_id] if class_names is not None and 0 <= class_id < len(class_names) else str(class_id)


def record(prediction: Prediction) -> dict:
    """JSON-ready detections of one frame, its classes named by `prediction.class_names`; masks as COCO
    run-length encodings (the only place a frame's result becomes bytes: this file and the Redis wire)."""
    class_names = prediction.class_names
    if prediction.masks is None and prediction.boxes is None and prediction.semantic is not None:
        return semantic_record(prediction.semantic, class_names)
    result: dict = {}
    if prediction.boxes is not None:
        result["boxes"] = np.asarray(prediction.boxes).tolist()
    if prediction.class_ids is not None:
        ids = np.asarray(prediction.class_ids).tolist()
        result["class_ids"] = ids
        if class_names is not None:
            result["classes"] = [_name(class_names, i) for i in ids]
    if prediction.scores is not None:
        # the shortest decimal that reads back as the same float32: a frame's result is the same after the Redis
        # wire as before it, and a file shows 0.9, not 0.8999999761581421
        result["scores"] = [float(str(score)) for score in np.asarray(prediction.scores, np.float32)]
    if prediction.masks is not None and prediction.masks.shape[-1]:
        result["masks"] = _rle(prediction.masks)
    elif prediction.masks is not None:
        result["masks"] = []
    if prediction.track_ids is not None:
        result["track_ids"] = np.asarray(prediction.track_ids).tolist()
    return result


def semantic_record(semantic: np.ndarray, class_names=None) -> dict:
    """One entry per class present other than background (0): class id and name, pixel count, RLE mask."""
    counts = np.bincount(semantic.ravel(), minlength=1)
    present = [int(c) for c in np.flatnonzero(counts) if c != 0]
    masks = np.stack([semantic == c for c in present], axis=-1) if present else None
    return {
        "class_ids": present,
        "classes": [_name(class_names, c) for c in present],
        "pixels": [int(counts[c]) for c in present],
        "masks": _rle(masks) if masks is not None else [],
    }


def prediction_of(record: dict, height: int, width: int) -> Prediction:
    """A detection record (from the Redis wire) back as a Prediction: a semantic record (with `pixels`) as the
    class map, an instance record as masks, class ids, scores, boxes and track ids; its class names by id.
    Anything that does not fit a frame of `height` × `width` raises ValueError before a mask is decoded."""
    from pycocotools import mask as rle

    masks = record.get("masks")
    class_ids = [int(v) for v in record.get("class_ids", [])]
    if masks is not None:
        if not isinstance(masks, list) or any(
            not isinstance(m, dict) or m.get("size") != [height, width] or not isinstance(m.get("counts"), str)
            for m in masks
        ):
            raise ValueError(f"masks that are not {width}x{height} run-length encodings")
        if len(masks) != len(class_ids) and class_ids:
            raise ValueError(f"{len(masks)} masks for {len(class_ids)} classes")
    if any(not 0 <= class_id < 65536 for class_id in class_ids):
        raise ValueError("class ids out of range")
    names = _names(class_ids, record.get("classes"))

    def decoded(masks) -> np.ndarray:
        if not masks:
            return np.zeros((height, width, 0), bool)
        return rle.decode([{"size": m["size"], "counts": m["counts"].encode()} for m in masks]).astype(bool)

    if "pixels" in record:
        semantic = np.zeros((height, width), np.uint8)
        for class_id, mask in zip(class_ids, np.moveaxis(decoded(masks), -1, 0)):
            semantic[mask] = class_id
        return Prediction(semantic=semantic, class_names=names)
    count = len(class_ids or record.get("boxes", ()))
    tracks = record.get("track_ids")
    return Prediction(
        masks=None if masks is None else decoded(masks if count else []),
        class_ids=np.asarray(class_ids or [0] * count, np.int32),
        scores=None if "scores" not in record else np.asarray(record["scores"], np.float32).reshape(count),
        boxes=None if "boxes" not in record else np.asarray(record["boxes"], np.int32).reshape(count, 4),
        track_ids=None if tracks is None else np.asarray(tracks, np.int32).reshape(count),
        class_names=names,
    )


def _names(class_ids: list[int], classes) -> tuple[str, ...] | None:
    """Class names indexed by class id, from a record's `classes` (enough to name its instances)."""
    if not isinstance(classes, list) or len(classes) != len(class_ids):
        return None
    names = ["?"] * (max(class_ids, default=-1) + 1)
    for class_id, name in zip(class_ids, classes):
        names[class_id] = str(name)
    return tuple(names)


def coco_results(index: int, detections: dict | None) -> list[dict]:
    """A frame's record as COCO results: `image_id` = frame index, `bbox` = [x, y, width, height]."""
    detections = detections or {}
    class_ids = detections.get("class_ids", [])
    boxes = detections.get("boxes")
    masks = detections.get("masks")
    scores = detections.get("scores")
    tracks = detections.get("track_ids")
    results = []
    for i, class_id in enumerate(class_ids):
        result: dict = {"image_id": index, "category_id": int(class_id)}
        if boxes is not None:
            y1, x1, y2, x2 = boxes[i]
            result["bbox"] = [x1, y1, x2 - x1, y2 - y1]
        if masks:
            result["segmentation"] = masks[i]
        result["score"] = scores[i] if scores is not None else 1.0
        if tracks is not None:
            result["track_id"] = tracks[i]
        if "classes" in detections:
            result["category_name"] = detections["classes"][i]
        results.append(result)
    return results


class DetectionsWriter:
    """One JSON line per frame, in frame order (`jsonl`), or a COCO results file, a JSON list of every
    frame's instances (`coco`); published whole on close (streamer.publish): a local file is renamed into
    place, a bucket URL (s3://, gs://, …) is uploaded in one piece."""

    def __init__(self, path: str | os.PathLike, storage: dict | None = None, format: str = "jsonl"):
        if format not in FORMATS:
            raise StreamerError(f"--detections-format {format}: choose one of {', '.join(FORMATS)}")
        self.format = format
        self._written = 0
        self._output = AtomicFile(path, storage)
        self.path = self._output.target if self._output.remote else Path(path)
        try:
            self._file = open(self._output.path, "w")
            if format == "coco":
                self._file.write("[")
        except BaseException:
            self._output.abort()
            raise

    def write(self, index: int, pts: int, time_base: Fraction, prediction: Prediction | None) -> None:
        detections = None if prediction is None else record(prediction)
        if self.format == "coco":
            for result in coco_results(index, detections):
                self._file.write(("," if self._written else "") + "\n" + json.dumps(result, separators=(",", ":")))
                self._written += 1
            return
        line = {"frame": index, "pts": pts, "time": round(float(pts * time_base), 6), **(detections or {})}
        self._file.write(json.dumps(line, separators=(",", ":")) + "\n")

    def close(self) -> Path | str:
        try:
            if self.format == "coco":
                self._file.write("\n]\n")
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
