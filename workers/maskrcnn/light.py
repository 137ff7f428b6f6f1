"""A light ResNet-18-like backbone for CPUs, trained from scratch.

Basic blocks (two 3×3 convs), two per stage, widths BACKBONE_WIDTH × (1, 2, 4, 8) for stages
2..5 at strides 4..32. Layers follow matterport's naming pattern (conv1/bn_conv1,
res{S}{B}_branch2a/2b, res{S}a_branch1, bn…) so that the "3+"/"4+"/"5+" layer regexes apply.
"""

from __future__ import annotations

from keras import layers

from .layers import batch_norm


def _basic(config, x, filters, stage, block, strides=None):
    base = f"res{stage}{block}_branch"
    bn = f"bn{stage}{block}_branch"
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=strides or 1, padding="same", use_bias=False, name=base + "2a")(x)
    y = batch_norm(config, bn + "2a")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=base + "2b")(y)
    y = batch_norm(config, bn + "2b")(y)
    if strides is not None:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=base + "1")(x)
        shortcut = batch_norm(config, bn + "1")(shortcut)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def light_graph(config, image):
    """image tensor → [C2, C3, C4, C5]."""
    width = int(config.BACKBONE_WIDTH)
    x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name="conv1")(image)
    x = batch_norm(config, "bn_conv1")(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    outputs = []
    for i, stage in enumerate((2, 3, 4, 5)):
        filters = width * 2**i
        x = _basic(config, x, filters, stage, "a", strides=1 if stage == 2 else 2)
        x = _basic(config, x, filters, stage, "b")
        outputs.append(x)
    return outputs
