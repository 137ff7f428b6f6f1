"""MobileNetV2 encoder + pix2pix-style upsampling decoder, as in TensorFlow's segmentation tutorial.

No pretrained weights are downloaded (weights=None): the encoder trains from scratch like the rest.
"""

from __future__ import annotations

from workers.unet.models.blocks import check_input, filters, head

SKIPS = (  # encoder activations at 1/2, 1/4, 1/8, 1/16 and (last) 1/32 of the input size
    "block_1_expand_relu",
    "block_3_expand_relu",
    "block_6_expand_relu",
    "block_13_expand_relu",
    "block_16_project",
)


def mobilenet_unet(input_shape: tuple[int, int, int], width: float = 1.0, classes: int = 1, dropout: float = 0.5):
    """MobileNetV2 (alpha = width) feature pyramid, decoded by 4 transposed-conv upsamplers with skips."""
    import keras
    from keras import layers

    check_input("mobilenet", input_shape, 32)
    base = keras.applications.MobileNetV2(input_shape=input_shape, include_top=False, weights=None, alpha=width)
    encoder = keras.Model(base.input, [base.get_layer(name).output for name in SKIPS], name="encoder")

    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_mobilenet_range")(inputs)  # [0,1] → [-1,1]
    *skips, x = encoder(x)
    for i, (channels, skip) in enumerate(zip((512, 256, 128, 64), reversed(skips))):
        x = layers.Conv2DTranspose(
            filters(channels, width),
            3,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            name=f"up{i + 1}_deconv",
        )(x)
        x = layers.BatchNormalization(name=f"up{i + 1}_bn")(x)
        if dropout and i < 2:
            x = layers.Dropout(dropout, name=f"up{i + 1}_drop")(x)
        x = layers.ReLU(name=f"up{i + 1}_relu")(x)
        x = layers.Concatenate(name=f"up{i + 1}_concat")([x, skip])
    x = layers.Conv2DTranspose(filters(32, width), 3, strides=2, padding="same", activation="relu", name="up5_deconv")(
        x
    )
    return keras.Model(inputs, head(x, classes), name="mobilenet_unet")
