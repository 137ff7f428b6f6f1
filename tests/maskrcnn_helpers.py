"""Mask R-CNN test helpers: a model small enough for tests (the shapes settings with narrow layers on 64×64
inputs), and matterport's weight-file layout written from one of our models."""

import h5py

TINY_MASKRCNN = dict(
    BACKBONE_WIDTH=8,
    TOP_DOWN_PYRAMID_SIZE=16,
    RPN_CONV_DEPTH=16,
    FPN_CLASSIF_FC_LAYERS_SIZE=32,
    MASK_HEAD_DEPTH=8,
    IMAGE_MIN_DIM=64,
    IMAGE_MAX_DIM=64,
)


def write_keras2(path, source, chunked=False, nested=False, drop=()):
    """Write `source`'s weights the way Keras 2 save_weights did (matterport checkpoints)."""
    layers = source.layers_by_name()
    rpn = source.keras_model.rpn
    inner = {layer.name for layer in rpn.layers}
    names = [n for n in layers if n not in inner and n not in drop]
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if nested else f
        encoded = [n.encode() for n in names] + [b"input_image"]  # weightless layers are listed too
        if chunked:
            half = len(encoded) // 2
            root.attrs["layer_names0"] = encoded[:half]
            root.attrs["layer_names1"] = encoded[half:]
        else:
            root.attrs["layer_names"] = encoded
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.2.4"
        root.create_group("input_image").attrs["weight_names"] = []
        for name in names:
            group = root.create_group(name)
            layer = layers[name]
            weight_names = []
            if layer is rpn:
                pairs = [(f"{part.name}/{v.name}:0", v) for part in rpn.layers for v in part.weights]
            else:
                pairs = [(f"{name}/{v.name}:0", v) for v in layer.weights]
            for wname, variable in pairs:
                group.create_dataset(wname, data=variable.numpy())
                weight_names.append(wname.encode())
            group.attrs["weight_names"] = weight_names
