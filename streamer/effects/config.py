"""Which effect to render and how."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EffectConfig:
    """Which effect to render and how."""

    name: str = "overlay"
    color: tuple[int, int, int] = (255, 0, 255)  # overlay colour, RGB
    alpha: float = 0.5  # overlay opacity; the seed blends at 50 %
    classes: tuple[str, ...] | None = None  # instance models: draw only these classes
    class_names: tuple[str, ...] | None = None  # the model's class names, filled in from the model
    track: bool = False  # instance models: track ids across frames; instances are coloured by track
