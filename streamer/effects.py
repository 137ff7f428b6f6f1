"""Effects: pure functions (frame, prediction, options) → rendered RGB frame."""

from __future__ import annotations

from dataclasses import dataclass, replace

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
    classes: tuple[str, ...] | None = None  # instance models: draw only these classes
    class_names: tuple[str, ...] | None = None  # the model's class names, filled in from the model


def overlay(frame: np.ndarray, prediction: Prediction, options: EffectConfig) -> np.ndarray:
    """Blend the colour over the frame where the mask is; leave every other pixel as it was."""
    where = _mask(prediction)
    if not where.any():
        return frame
    tinted = cv2.LUT(frame, _blend_table(options.color, options.alpha))
    out = frame.copy()
    cv2.copyTo(tinted, where, out)
    return out


def mask(frame: np.ndarray, prediction: Prediction, options: EffectConfig) -> np.ndarray:
    """The mask itself as video: white where the foreground is, black elsewhere."""
    return cv2.cvtColor(_mask(prediction) * np.uint8(255), cv2.COLOR_GRAY2RGB)


def splash(frame: np.ndarray, prediction: Prediction, options: EffectConfig) -> np.ndarray:
    """Colour splash: keep colour where the mask is, greyscale elsewhere."""
    grey = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    cv2.copyTo(frame, _mask(prediction), grey)
    return grey


def _blend_table(color: tuple[int, int, int], alpha: float) -> np.ndarray:
    """Per-channel lookup table value → round(value·(1-alpha) + colour·alpha), for cv2.LUT."""
    values = np.arange(256, dtype=np.float32)[:, None]
    table = values * (1.0 - alpha) + np.asarray(color, np.float32)[None, :] * alpha
    return np.clip(np.rint(table), 0, 255).astype(np.uint8).reshape(256, 1, 3)


def _mask(prediction: Prediction) -> np.ndarray:
    """The foreground as a 0/1 uint8 image, the mask type OpenCV takes (a view, not a copy)."""
    return prediction.foreground().view(np.uint8)


def instances(frame: np.ndarray, prediction: Prediction, options: EffectConfig) -> np.ndarray:
    """Instance masks, boxes, class names and scores (Mask R-CNN)."""
    from workers.maskrcnn.visualize import instances as draw

    return draw(frame, prediction, options)


EFFECTS = {"overlay": overlay, "mask": mask, "splash": splash, "instances": instances}


def effect_function(name: str):
    """The effect by name; callers pass it `selected(prediction, options)`."""
    try:
        return EFFECTS[name]
    except KeyError:
        raise StreamerError(f"unknown effect {name!r}: choose one of {', '.join(EFFECTS)}") from None


def selected(prediction: Prediction, options: EffectConfig) -> Prediction:
    """The instances of the classes `--classes` names (all of them without it): what the effect draws
    and the detections file records, selected once per frame."""
    if options.classes and options.class_names:
        wanted = [options.class_names.index(name) for name in options.classes if name in options.class_names]
        return prediction.only(wanted)
    return prediction


def with_class_names(options: EffectConfig, model) -> EffectConfig:
    """The options with the model's class names, checking that --classes names exist."""
    names = getattr(model, "class_names", None)
    if names is None:
        return options
    names = tuple(names)
    unknown = [name for name in options.classes or () if name not in names]
    if unknown:
        raise StreamerError(f"--classes {','.join(unknown)}: not classes of this model; it has {', '.join(names[1:])}")
    return replace(options, class_names=names)
