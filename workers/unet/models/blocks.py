"""Layers shared by the architectures: the double 3×3 conv block, the output head, input-size checks."""

from __future__ import annotations

from streamer.errors import StreamerError


def filters(base: int, width: float) -> int:
    """`base` channels scaled by the width multiplier, at least 1."""
    return max(1, int(round(base * width)))


def check_input(arch: str, input_shape: tuple[int, int, int], multiple: int) -> None:
    """Every pooling level halves the size, so H and W must divide by 2**levels; 3 channels (RGB)."""
    height, width, channels = input_shape
    if channels != 3 or height % multiple or width % multiple or height <= 0 or width <= 0:
        raise StreamerError(
            f"input {height}x{width}x{channels}: {arch} needs RGB (3 channels) and height and width divisible "
            f"by {multiple}; pick a size such as {multiple * 5}x{multiple * 10}"
        )


def conv_block(x, channels: int, name: str, dropout: float = 0.0):
    """Two 3×3 ReLU convolutions (he_normal, 'same'), as in every U-Net level; optional dropout after."""
    from keras import layers

    for i in (1, 2):
        x = layers.Conv2D(
            channels, 3, padding="same", activation="relu", kernel_initializer="he_normal", name=f"{name}_conv{i}"
        )(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return x


def up_block(x, channels: int, name: str):
    """2× nearest upsampling then a 3×3 ReLU conv (the seed's 'up-conv')."""
    from keras import layers

    x = layers.UpSampling2D(2, name=f"{name}_up")(x)
    return layers.Conv2D(
        channels, 3, padding="same", activation="relu", kernel_initializer="he_normal", name=f"{name}_upconv"
    )(x)


def head(x, classes: int, name: str = "head"):
    """1×1 conv to per-pixel probabilities: sigmoid for one class (road), softmax over `classes` otherwise."""
    from keras import layers

    if classes < 1:
        raise StreamerError(f"classes {classes}: need 1 (binary road mask) or more")
    activation = "sigmoid" if classes == 1 else "softmax"
    return layers.Conv2D(classes, 1, activation=activation, dtype="float32", name=name)(x)
