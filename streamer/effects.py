"""Effects: pure functions (frame, prediction, options) → rendered RGB frame."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from streamer.errors import StreamerError
from streamer.prediction import Prediction


@dataclass
class EffectConfig:
    """Which effect to render and how."""

    name: str = "overlay"
    color: tuple[int, int, int] = (255, 0, 255)  # overlay colour, RGB
    alpha: float = 0.5  # overlay opacity; the seed blends at 50 %


def overlay(frame: np.ndarray, prediction: Prediction, options: EffectConfig) -> np.ndarray:
    """Blend the colour over the frame where the mask is; leave every other pixel as it was."""
    where = prediction.foreground()
    tint = np.empty_like(frame)
    tint[:] = options.color
    out = cv2.addWeighted(frame, 1.0 - options.alpha, tint, options.alpha, 0.0)
    np.copyto(out, frame, where=~where[..., None])
    return out


def mask(frame: np.ndarray, prediction: Prediction, options: EffectConfig) -> np.ndarray:
    """The mask itself as video: white where the foreground is, black elsewhere."""
    where = prediction.foreground()
    return np.repeat((where * np.uint8(255))[..., None], 3, axis=2)


def splash(frame: np.ndarray, prediction: Prediction, options: EffectConfig) -> np.ndarray:
    """Colour splash: keep colour where the mask is, greyscale elsewhere."""
    where = prediction.foreground()
    grey = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    np.copyto(grey, frame, where=where[..., None])
    return grey


EFFECTS = {"overlay": overlay, "mask": mask, "splash": splash}


def effect_function(name: str):
    try:
        return EFFECTS[name]
    except KeyError:
        raise StreamerError(f"unknown effect {name!r}: choose one of {', '.join(EFFECTS)}") from None
