"""What a model returns for one frame, at the frame's own size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Prediction:
    """Semantic and/or instance output for one frame.

    semantic:  H×W uint8 class index (binary models: 1 = foreground, e.g. road).
    masks:     H×W×N bool instance masks, with class_ids int32[N], scores float32[N],
               boxes int32[N,4] as [y1, x1, y2, x2].
    """

    semantic: np.ndarray | None = None
    masks: np.ndarray | None = None
    class_ids: np.ndarray | None = None
    scores: np.ndarray | None = None
    boxes: np.ndarray | None = None

    def foreground(self) -> np.ndarray:
        """H×W bool: where any class other than background, or any instance, is."""
        if self.semantic is not None:
            return self.semantic > 0
        if self.masks is not None:
            return self.masks.any(axis=-1)
        raise ValueError("empty prediction")

    def only(self, class_ids) -> "Prediction":
        """The instances whose class is one of `class_ids` (semantic output is kept as it is)."""
        if self.masks is None or self.class_ids is None:
            return self
        keep = np.isin(self.class_ids, list(class_ids))
        return Prediction(
            semantic=self.semantic, masks=self.masks[:, :, keep], class_ids=self.class_ids[keep],
            scores=None if self.scores is None else self.scores[keep],
            boxes=None if self.boxes is None else self.boxes[keep],
        )
