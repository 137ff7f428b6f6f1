"""Tracking (`--track`): instance ids that persist across frames, and the in-order step that uses them.

`Tracker` associates each frame's instances with the tracks of earlier frames, ByteTrack-style:
confident detections are matched first (Hungarian matching on a similarity of boxes and masks, with
each track's box moved by its last velocity), then the less confident ones take the tracks still
unmatched; a track survives `max_missed` frames without a match, so a short occlusion keeps its id.

Tracking needs the frames in order, while the render stage runs out of order (parallel batches,
Redis workers). So with tracking the render stage leaves the instances undrawn and returns the
frame with its prediction; `TrackedRender`, called by the muxer in frame order on the side that
writes the outputs, assigns the track ids and draws the instances in their track's colour.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from streamer.effects import EffectConfig, effect_function
from streamer.effects.instances import track_colors
from streamer.frames import Rendered
from streamer.prediction import Prediction

#: effects whose drawing depends on the track ids: with tracking they are drawn in frame order
TRACK_COLOURED = ("instances",)


@dataclass
class TrackerConfig:
    """Thresholds of the association."""

    high_score: float = 0.5  # detections at least this confident are matched first and may start tracks
    match_similarity: float = 0.3  # least similarity of a confident detection to its track
    low_match_similarity: float = 0.5  # least similarity of a less confident detection to its track
    max_missed: int = 30  # frames a track is kept without a match (occlusion memory)
    same_class: bool = False  # match only detections of the track's class (off: a detector's class flicker keeps ids)


@dataclass
class _Track:
    id: int
    class_id: int
    box: np.ndarray  # float [y1, x1, y2, x2]
    mask: np.ndarray | None  # bool crop of the last mask, inside `box`
    velocity: np.ndarray  # box shift per frame
    missed: int = 0

    def predicted(self) -> np.ndarray:
        return self.box + self.velocity * (self.missed + 1)


class Tracker:
    """Gives each instance of each frame a track id; call `update` once per frame, in frame order."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self._tracks: list[_Track] = []
        self._next_id = 1

    def update(self, prediction: Prediction) -> np.ndarray:
        """int32[N]: the track id of each instance of `prediction` (-1 for an unconfident one left unmatched)."""
        masks, boxes = prediction.masks, prediction.boxes
        if boxes is None and masks is not None:
            boxes = _boxes_of(masks)
        count = 0 if boxes is None else len(boxes)
        ids = np.full(count, -1, np.int32)
        boxes = np.zeros((0, 4)) if boxes is None else np.asarray(boxes, np.float64).reshape(-1, 4)
        class_ids = (
            np.zeros(count, np.int32) if prediction.class_ids is None else np.asarray(prediction.class_ids, np.int32)
        )
        scores = np.ones(count, np.float32) if prediction.scores is None else np.asarray(prediction.scores, np.float32)
        crops = [None if masks is None else _crop(masks[:, :, i], boxes[i]) for i in range(count)]

        high = [i for i in range(count) if scores[i] >= self.config.high_score]
        low = [i for i in range(count) if scores[i] < self.config.high_score]
        unmatched = list(range(len(self._tracks)))
        for detections, least in ((high, self.config.match_similarity), (low, self.config.low_match_similarity)):
            pairs = self._match(unmatched, detections, boxes, crops, class_ids, least)
            for track_index, detection in pairs:
                self._tracks[track_index] = self._moved(self._tracks[track_index], boxes[detection], crops[detection])
                ids[detection] = self._tracks[track_index].id
            taken = {track_index for track_index, _ in pairs}
            unmatched = [t for t in unmatched if t not in taken]
        for detection in high:
            if ids[detection] < 0:
                track = _Track(
                    self._next_id, int(class_ids[detection]), boxes[detection], crops[detection], np.zeros(4)
                )
                self._next_id += 1
                self._tracks.append(track)
                ids[detection] = track.id
        for t in unmatched:
            self._tracks[t].missed += 1
        self._tracks = [track for track in self._tracks if track.missed <= self.config.max_missed]
        return ids

    def _match(self, tracks, detections, boxes, crops, class_ids, least) -> list[tuple[int, int]]:
        if not tracks or not detections:
            return []
        similarity = np.zeros((len(tracks), len(detections)))
        for row, t in enumerate(tracks):
            track = self._tracks[t]
            predicted = track.predicted()
            for column, d in enumerate(detections):
                if class_ids[d] == track.class_id or not self.config.same_class:
                    similarity[row, column] = _similarity(predicted, track.mask, boxes[d], crops[d])
        pairs = _assign(similarity)
        return [(tracks[row], detections[column]) for row, column in pairs if similarity[row, column] >= least]

    @staticmethod
    def _moved(track: _Track, box: np.ndarray, crop) -> _Track:
        shift = (box - track.box) / (track.missed + 1)
        velocity = shift if not track.velocity.any() else 0.5 * track.velocity + 0.5 * shift
        return replace(track, box=box, mask=crop, velocity=velocity, missed=0)


def _assign(similarity: np.ndarray) -> list[tuple[int, int]]:
    """The (row, column) pairs of the assignment of greatest total similarity."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # greedy: best pair first
        pairs, rows, columns = [], set(), set()
        for flat in np.argsort(-similarity, axis=None):
            row, column = divmod(int(flat), similarity.shape[1])
            if row not in rows and column not in columns and similarity[row, column] > 0:
                pairs.append((row, column))
                rows.add(row)
                columns.add(column)
        return pairs
    rows, columns = linear_sum_assignment(similarity, maximize=True)
    return list(zip(rows.tolist(), columns.tolist()))


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    y1, x1 = max(a[0], b[0]), max(a[1], b[1])
    y2, x2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, y2 - y1) * max(0.0, x2 - x1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _similarity(predicted: np.ndarray, track_mask, box: np.ndarray, crop) -> float:
    """Box IoU of the track's predicted box and the detection's box; with masks, the mean of that and the
    IoU of the track's last mask (moved to the predicted box) and the detection's mask."""
    box_iou = _box_iou(predicted, box)
    if track_mask is None or crop is None or box_iou <= 0:
        return box_iou
    placed = [((int(round(predicted[0])), int(round(predicted[1]))), track_mask), ((int(box[0]), int(box[1])), crop)]
    top, left = min(y for (y, _), _ in placed), min(x for (_, x), _ in placed)
    bottom = max(y + mask.shape[0] for (y, _), mask in placed)
    right = max(x + mask.shape[1] for (_, x), mask in placed)
    canvas = np.zeros((2, bottom - top, right - left), bool)
    for layer, ((y, x), mask) in enumerate(placed):
        canvas[layer, y - top : y - top + mask.shape[0], x - left : x - left + mask.shape[1]] = mask
    union = np.logical_or(canvas[0], canvas[1]).sum()
    mask_iou = float(np.logical_and(canvas[0], canvas[1]).sum() / union) if union else 0.0
    return 0.5 * (box_iou + mask_iou)


def _crop(mask: np.ndarray, box: np.ndarray) -> np.ndarray:
    y1, x1, y2, x2 = (max(0, int(v)) for v in box)
    return np.array(mask[y1:y2, x1:x2], dtype=bool)


def _boxes_of(masks: np.ndarray) -> np.ndarray:
    boxes = np.zeros((masks.shape[-1], 4), np.int32)
    for i in range(masks.shape[-1]):
        rows, columns = np.flatnonzero(masks[:, :, i].any(axis=1)), np.flatnonzero(masks[:, :, i].any(axis=0))
        if rows.size:
            boxes[i] = rows[0], columns[0], rows[-1] + 1, columns[-1] + 1
    return boxes


class TrackedRender:
    """The in-order step of a tracked job: track ids into each frame's prediction, then the track-coloured
    effect drawn on the frame the render stage left undrawn. Called by the muxer, in frame order."""

    def __init__(self, effect: EffectConfig, tracker: Tracker | None = None):
        self.effect = effect
        self.tracker = tracker or Tracker()
        self._draw = effect_function(effect.name) if effect.name in TRACK_COLOURED else None

    def __call__(self, rendered: Rendered) -> Rendered:
        prediction = rendered.prediction
        if prediction is None or (prediction.class_ids is None and prediction.boxes is None):
            return rendered  # a model without instances (semantic classes only): nothing to track
        ids = self.tracker.update(prediction)
        prediction = replace(prediction, track_ids=ids)
        image = rendered.image
        if self._draw is not None:
            names = prediction.class_names
            effect = replace(self.effect, class_names=names) if names else self.effect
            image = self._draw(image, prediction, effect, colors=track_colors(ids), track_ids=ids)
        return Rendered(rendered.index, rendered.pts, rendered.time_base, image, prediction)


class FrameCallback:
    """Calls `on_frame(rendered, prediction)` (the Python API's hook) in frame order, with the prediction the
    frame carries (read back from the wire when it came over Redis)."""

    def __init__(self, on_frame):
        self.on_frame = on_frame

    def __call__(self, rendered: Rendered) -> Rendered:
        self.on_frame(rendered, rendered.prediction)
        return rendered
