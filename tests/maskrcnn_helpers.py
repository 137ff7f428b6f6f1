"""A Mask R-CNN small enough for tests: the shapes settings with narrow layers on 64×64 inputs."""

TINY_MASKRCNN = dict(
    BACKBONE_WIDTH=8,
    TOP_DOWN_PYRAMID_SIZE=16,
    RPN_CONV_DEPTH=16,
    FPN_CLASSIF_FC_LAYERS_SIZE=32,
    MASK_HEAD_DEPTH=8,
    IMAGE_MIN_DIM=64,
    IMAGE_MAX_DIM=64,
)
