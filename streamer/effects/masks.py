"""Effects drawn from the foreground mask: overlay, mask, splash."""

from __future__ import annotations

import functools
from dataclasses import replace

import cv2
import numpy as np

from streamer.effects.config import EffectConfig
from streamer.prediction import Prediction


def overlay(frame: np.ndarray, prediction: Prediction, options: EffectConfig) -> np.ndarray:
    """Blend the colour over the frame where the mask is; leave every other pixel as it was. A semantic map of
    several classes gets each class in its own colour (`palette`)."""
    parts = palette(prediction, options)
    if parts is not None:
        for part, colour in parts:
            frame = overlay(frame, part, replace(options, color=colour))
        return frame
    where = mask_of(prediction)
    if not where.any():
        return frame
    tinted = cv2.LUT(frame, blend_table(tuple(options.color), options.alpha))
    out = frame.copy()
    cv2.copyTo(tinted, where, out)
    return out


def mask(frame: np.ndarray, prediction: Prediction, options: EffectConfig) -> np.ndarray:
    """The mask itself as video: white where the foreground is, black elsewhere."""
    return cv2.cvtColor(mask_of(prediction) * np.uint8(255), cv2.COLOR_GRAY2RGB)


def splash(frame: np.ndarray, prediction: Prediction, options: EffectConfig) -> np.ndarray:
    """Colour splash: keep colour where the mask is, greyscale elsewhere."""
    grey = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    cv2.copyTo(frame, mask_of(prediction), grey)
    return grey


@functools.lru_cache(maxsize=64)
def blend_table(color: tuple[int, ...], alpha: float) -> np.ndarray:
    """Lookup table value → round(value·(1-alpha) + c·alpha) for each channel c of `color` (RGB, or one plane's
    value), shaped for cv2.LUT: 256×1×channels; made once per colour and opacity, read-only."""
    values = np.arange(256, dtype=np.float32)[:, None]
    table = values * (1.0 - alpha) + np.asarray(color, np.float32)[None, :] * alpha
    table = np.clip(np.rint(table), 0, 255).astype(np.uint8).reshape(256, 1, len(color))
    table.flags.writeable = False
    return table


def mask_of(prediction: Prediction) -> np.ndarray:
    """The foreground as a 0/1 uint8 image, the mask type OpenCV takes (a view, not a copy)."""
    return prediction.foreground().view(np.uint8)


def palette(prediction: Prediction, options: EffectConfig) -> list[tuple[Prediction, tuple[int, int, int]]] | None:
    """For a semantic map with classes above 1: each class present, as its own one-class prediction, with its
    colour (class 1: --color; class k: the k-th colour of the PASCAL VOC palette); None for one class or none."""
    semantic = prediction.semantic
    if semantic is None or prediction.masks is not None:
        return None
    counts = np.bincount(semantic.ravel(), minlength=2)
    if len(counts) <= 2:
        return None
    parts = []
    for class_id in np.flatnonzero(counts[1:]) + 1:
        colour = tuple(options.color) if class_id == 1 else voc_colour(int(class_id))
        parts.append((Prediction(semantic=semantic == class_id), colour))
    return parts


@functools.lru_cache(maxsize=256)
def voc_colour(index: int) -> tuple[int, int, int]:
    """The PASCAL VOC palette's colour of class `index` (its bits spread over R, G and B, high bit first)."""
    red = green = blue = 0
    for bit in range(8):
        red |= ((index >> (3 * bit)) & 1) << (7 - bit)
        green |= ((index >> (3 * bit + 1)) & 1) << (7 - bit)
        blue |= ((index >> (3 * bit + 2)) & 1) << (7 - bit)
    return red, green, blue
