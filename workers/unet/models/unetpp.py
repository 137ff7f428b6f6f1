"""UNet++ (Zhou et al.): nested, densely connected skip pathways, with optional deep supervision."""

from __future__ import annotations

from workers.unet.models.blocks import check_input, conv_block, filters, head

LEVELS = 4


def unet_plus_plus(
    input_shape: tuple[int, int, int],
    width: float = 1.0,
    classes: int = 1,
    dropout: float = 0.5,
    deep_supervision: bool = False,
):
    """UNet++: node X[i][j] = conv(concat(X[i][0..j-1], up(X[i+1][j-1]))).

    With deep supervision the model has one head per X[0][1..4] (outputs "head_1".."head_4", all
    trained); the predictor averages them at inference. Without it, one head on X[0][4].
    """
    import keras
    from keras import layers

    check_input("unetpp", input_shape, 2**LEVELS)
    inputs = keras.Input(input_shape, name="image")
    nodes: list[list] = [[] for _ in range(LEVELS + 1)]
    x = inputs
    for i in range(LEVELS + 1):  # the encoder column X[i][0]
        if i:
            x = layers.MaxPooling2D(2, name=f"x{i - 1}0_pool")(nodes[i - 1][0])
        x = conv_block(x, filters(64 * 2**i, width), f"x{i}0", dropout=dropout if i >= LEVELS - 1 else 0.0)
        nodes[i].append(x)
    for j in range(1, LEVELS + 1):  # the nested decoder columns
        for i in range(LEVELS + 1 - j):
            up = layers.UpSampling2D(2, name=f"x{i}{j}_up")(nodes[i + 1][j - 1])
            x = layers.Concatenate(name=f"x{i}{j}_concat")([*nodes[i][:j], up])
            nodes[i].append(conv_block(x, filters(64 * 2**i, width), f"x{i}{j}"))
    if deep_supervision:
        outputs = [head(nodes[0][j], classes, name=f"head_{j}") for j in range(1, LEVELS + 1)]
        return keras.Model(inputs, outputs, name="unetpp")
    return keras.Model(inputs, head(nodes[0][LEVELS], classes), name="unetpp")
