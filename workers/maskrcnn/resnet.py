"""ResNet-50/101 backbone with matterport's layer names (conv/bn names map HDF5 weights)."""

from __future__ import annotations

from keras import layers

from .layers import batch_norm


def _block(config, x, filters, stage, block, strides=None):
    """Bottleneck block; a projection shortcut (branch1) when `strides` is given (block "a")."""
    f1, f2, f3 = filters
    base = f"res{stage}{block}_branch"
    bn = f"bn{stage}{block}_branch"
    shortcut = x
    y = layers.Conv2D(f1, 1, strides=strides or 1, name=base + "2a", use_bias=True)(x)
    y = batch_norm(config, bn + "2a")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(f2, 3, padding="same", name=base + "2b", use_bias=True)(y)
    y = batch_norm(config, bn + "2b")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(f3, 1, name=base + "2c", use_bias=True)(y)
    y = batch_norm(config, bn + "2c")(y)
    if strides is not None:
        shortcut = layers.Conv2D(f3, 1, strides=strides, name=base + "1", use_bias=True)(x)
        shortcut = batch_norm(config, bn + "1")(shortcut)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def resnet_graph(config, image):
    """image tensor → [C2, C3, C4, C5]."""
    depth = {"resnet50": 5, "resnet101": 22}[config.BACKBONE]
    x = layers.ZeroPadding2D((3, 3))(image)
    x = layers.Conv2D(64, 7, strides=2, name="conv1", use_bias=True)(x)
    x = batch_norm(config, "bn_conv1")(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = _block(config, x, [64, 64, 256], 2, "a", strides=1)
    x = _block(config, x, [64, 64, 256], 2, "b")
    c2 = x = _block(config, x, [64, 64, 256], 2, "c")
    x = _block(config, x, [128, 128, 512], 3, "a", strides=2)
    for block in "bcd":
        x = _block(config, x, [128, 128, 512], 3, block)
    c3 = x
    x = _block(config, x, [256, 256, 1024], 4, "a", strides=2)
    for i in range(depth):
        x = _block(config, x, [256, 256, 1024], 4, chr(98 + i))
    c4 = x
    x = _block(config, x, [512, 512, 2048], 5, "a", strides=2)
    x = _block(config, x, [512, 512, 2048], 5, "b")
    c5 = _block(config, x, [512, 512, 2048], 5, "c")
    return [c2, c3, c4, c5]
