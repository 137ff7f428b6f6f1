"""What a model returns for one frame, at the frame's own size."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Prediction:
    """Semantic and/or instance output for one frame.

    semantic:    H×W uint8 class index (binary models: 1 = foreground, e.g. road).
    masks:       H×W×N bool instance masks, with class_ids int32[N], scores float32[N],
                 boxes int32[N,4] as [y1, x1, y2, x2] (end exclusive); when boxes are given,
                 each mask lies inside its box (as Mask R-CNN pastes them).
    track_ids:   int32[N], each instance's track across frames (--track), -1 for none.
    class_names: the model's class names by class id (background first), to name classes where
                 a frame's result leaves the process (the detections file, the Redis wire).

    One frame's result travels as this object through the process (render stage, tracking, the API's
    callback); it becomes bytes (COCO RLE masks) only where it leaves: streamer.detections.record.
    """

    semantic: np.ndarray | None = None
    masks: np.ndarray | None = None
    class_ids: np.ndarray | None = None
    scores: np.ndarray | None = None
    boxes: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    class_names: tuple[str, ...] | None = field(default=None, compare=False)
    _foreground: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def foreground(self) -> np.ndarray:
        """H×W bool: where any class other than background, or any instance, is (made once per prediction:
        the render stage asks whether it is empty, then the effect draws it)."""
        if self._foreground is None:
            if self.semantic is not None:
                self._foreground = self.semantic > 0
            elif self.masks is not None:
                self._foreground = self._union_of_masks()
            else:
                raise ValueError("empty prediction")
        return self._foreground

    def _union_of_masks(self) -> np.ndarray:
        """OR of the instance masks, one instance at a time (`any(axis=-1)` over a short last axis is
        slow); with boxes only each box's crop is read."""
        height, width, count = self.masks.shape
        out = np.zeros((height, width), dtype=bool)
        for i in range(count):
            if self.boxes is None:
                np.logical_or(out, self.masks[:, :, i], out=out)
                continue
            y1, x1, y2, x2 = (int(v) for v in self.boxes[i])
            y1, x1, y2, x2 = max(y1, 0), max(x1, 0), min(y2, height), min(x2, width)
            if y2 > y1 and x2 > x1:
                crop = out[y1:y2, x1:x2]
                np.logical_or(crop, self.masks[y1:y2, x1:x2, i], out=crop)
        return out

    def only(self, class_ids) -> "Prediction":
        """The instances whose class is one of `class_ids`; a semantic map keeps those classes (the rest becomes
        background, 0)."""
        if self.semantic is not None and self.masks is None:
            kept = np.isin(self.semantic, list(class_ids))
            return Prediction(semantic=np.where(kept, self.semantic, 0).astype(self.semantic.dtype))
        if self.masks is None or self.class_ids is None:
            return self
        keep = np.isin(self.class_ids, list(class_ids))
        return Prediction(
            semantic=self.semantic,
            masks=self.masks[:, :, keep],
            class_ids=self.class_ids[keep],
            scores=None if self.scores is None else self.scores[keep],
            boxes=None if self.boxes is None else self.boxes[keep],
            track_ids=None if self.track_ids is None else self.track_ids[keep],
            class_names=self.class_names,
        )
