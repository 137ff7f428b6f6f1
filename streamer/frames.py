"""The records a frame travels in: decoded (`Frame`), then rendered (`Rendered`, what the muxer takes)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the job, its timestamp and its RGB pixels."""

    index: int
    pts: int
    time_base: Fraction
    image: np.ndarray  # H×W×3 uint8 RGB

    @property
    def seconds(self) -> float:
        return float(self.pts * self.time_base)


@dataclass(frozen=True)
class Rendered(Frame):
    """A frame after the model and the effect, with its detection record when one was asked for."""

    detections: dict | None = None
