"""Transports carry frames from the source to the model and rendered frames back to the muxer.

memory: every stage in this process (the embedded default). redis: Redis Streams to workers
on any machine. Both give the pipeline the same two calls: `send(frame)` and `results()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class Rendered:
    """A frame after the model and the effect, on its way to the muxer."""

    index: int
    pts: int
    time_base: Fraction
    image: np.ndarray
    detections: dict | None = None
