"""Effects: pure functions (frame, prediction, options) → rendered RGB frame, found by name (overlay, mask and
splash also come as functions of a decoded YUV 4:2:0 picture: `streamer.effects.planes`)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from streamer.effects.config import EffectConfig
from streamer.errors import StreamerError

if TYPE_CHECKING:
    from streamer.prediction import Prediction

__all__ = [
    "EFFECTS",
    "NAMES",
    "EffectConfig",
    "check_effect",
    "effect_function",
    "leaves_unchanged",
    "selected",
    "with_class_names",
]

# the names need no drawing code: commands that only check an effect's name (submit, batch, status) import neither
# NumPy nor OpenCV; the functions load on first use (`EFFECTS`, and `overlay`, `mask`, `splash` as attributes of
# this package; the instances effect is `streamer.effects.instances.instances`)
NAMES = ("overlay", "mask", "splash", "instances")


def __getattr__(name: str):
    if name == "EFFECTS":
        from streamer.effects.instances import instances
        from streamer.effects.masks import mask, overlay, splash

        effects = {"overlay": overlay, "mask": mask, "splash": splash, "instances": instances}
        globals()["EFFECTS"] = effects  # one table, made once
        return effects
    if name in ("overlay", "mask", "splash"):
        from streamer.effects import masks

        return getattr(masks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_effect(name: str) -> str:
    """The effect's name, or a StreamerError naming the effects there are."""
    if name not in NAMES:
        raise StreamerError(f"unknown effect {name!r}: choose one of {', '.join(NAMES)}")
    return name


def effect_function(name: str):
    """The effect by name; callers pass it `selected(prediction, options)`."""
    return __getattr__("EFFECTS")[check_effect(name)]


def leaves_unchanged(name: str, prediction: Prediction) -> bool:
    """Whether the effect `name` returns the frame as it is for this prediction (overlay or instances with
    nothing found), so the frame's pixels need not be read at all."""
    if name == "instances":
        return prediction.masks is None or prediction.masks.shape[-1] == 0
    if name != "overlay":
        return False
    if prediction.semantic is not None:
        return not prediction.semantic.any()  # class 0 is the background
    return prediction.masks is not None and not prediction.foreground().any()


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
