"""Keras 3 segmentation architectures by name: `build_model("unet", (160, 320, 3), width=0.25)`."""

from __future__ import annotations

from workers.unet.models.mobilenet import mobilenet_unet
from workers.unet.models.unet import unet
from workers.unet.models.unetpp import unet_plus_plus

ARCHITECTURES = {
    "unet": unet,
    "unetpp": unet_plus_plus,
    "mobilenet": mobilenet_unet,
}


def build_model(arch: str, input_shape: tuple[int, int, int], width: float = 1.0, classes: int = 1):
    """Build architecture `arch` (a key of ARCHITECTURES) for RGB input in [0, 1]."""
    return ARCHITECTURES[arch](input_shape, width=width, classes=classes)


__all__ = ["ARCHITECTURES", "build_model", "mobilenet_unet", "unet", "unet_plus_plus"]
