"""The classic U-Net (Ronneberger et al.) as in the user's KITTI road notebook, with a width multiplier."""

from __future__ import annotations

from workers.unet.models.blocks import check_input, conv_block, filters, head, up_block

LEVELS = 4  # pooling steps: input size must divide by 2**4


def unet(input_shape: tuple[int, int, int], width: float = 1.0, classes: int = 1, dropout: float = 0.5):
    """U-Net: 4 down levels (64·width … 512·width), 1024·width bottleneck with dropout, 4 up levels with skips."""
    import keras
    from keras import layers

    check_input("unet", input_shape, 2**LEVELS)
    inputs = keras.Input(input_shape, name="image")
    x, skips = inputs, []
    for level in range(LEVELS):
        x = conv_block(x, filters(64 * 2**level, width), f"down{level + 1}")
        skips.append(x)
        if level == LEVELS - 1 and dropout:  # the seed drops out the deepest skip's features before pooling
            x = layers.Dropout(dropout, name=f"down{level + 1}_drop")(x)
        x = layers.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)
    x = conv_block(x, filters(1024, width), "bottom", dropout=dropout)
    for level in reversed(range(LEVELS)):
        channels = filters(64 * 2**level, width)
        x = up_block(x, channels, f"up{level + 1}")
        x = layers.Concatenate(name=f"up{level + 1}_concat")([skips[level], x])
        x = conv_block(x, channels, f"up{level + 1}")
    return keras.Model(inputs, head(x, classes), name="unet")
