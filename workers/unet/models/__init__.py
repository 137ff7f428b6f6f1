"""Keras 3 segmentation architectures by name: `build_model("unet", (160, 320, 3), width=0.25)`."""

from __future__ import annotations

from streamer.errors import StreamerError
from workers.unet.models.mobilenet import mobilenet_unet
from workers.unet.models.unet import unet
from workers.unet.models.unetpp import unet_plus_plus

ARCHITECTURES = {
    "unet": unet,
    "unetpp": unet_plus_plus,
    "mobilenet": mobilenet_unet,
}


def build_model(arch: str, input_shape: tuple[int, int, int], width: float = 1.0, classes: int = 1, **options):
    """Build architecture `arch` (a key of ARCHITECTURES) for RGB input in [0, 1]; options: dropout,
    deep_supervision (unetpp only)."""
    if arch not in ARCHITECTURES:
        raise StreamerError(f"architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    if width <= 0:
        raise StreamerError(f"width {width}: must be positive (1.0 = the paper's 64…1024 filters)")
    return ARCHITECTURES[arch](input_shape, width=width, classes=classes, **options)


__all__ = ["ARCHITECTURES", "build_model", "mobilenet_unet", "unet", "unet_plus_plus"]
