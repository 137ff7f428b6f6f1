"""Weight files: the bundled demo model (`DEMO_WEIGHTS`), our own format and matterport's.

* Our own format: a Keras 3 `.weights.h5` file whose root attributes also hold the Config
  (`maskrcnn_config`, JSON; includes CLASS_NAMES), so a file knows its architecture and classes.
* matterport / Keras 2 HDF5 files (`mask_rcnn_coco.h5`, checkpoints): read with h5py and assigned
  per layer by name, with `exclude` and a clear report of every layer that does not fit.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from streamer.errors import StreamerError
from streamer.publish import atomic_path

# h5py is imported where a file is read or written: a worker serving an exported model never needs it

# The bundled demo model (a small Mask R-CNN trained on generated shapes; see weights/MODEL_CARD.md).
DEMO_WEIGHTS = Path(__file__).resolve().parent / "weights" / "shapes-demo.weights.h5"
# What a user is told when the demo weights run: they explain garbage on real footage.
DEMO_NOTE = (
    "maskrcnn: the bundled demo weights, trained only on generated squares, circles and triangles (streamer sample "
    "shapes): on real footage their detections mean nothing. Pass your own with --weights FILE (e.g. matterport's "
    "mask_rcnn_coco.h5, or streamer train maskrcnn --data via:DIR)"
)
CONFIG_ATTR = "maskrcnn_config"
EXTRA_ATTR = "maskrcnn_extra"
# matterport's COCO model (mask_rcnn_coco.h5): its 81 classes in order
COCO_CLASS_NAMES = [
    name.strip()
    for name in """BG, person, bicycle, car, motorcycle, airplane, bus, train, truck, boat, traffic light,
    fire hydrant, stop sign, parking meter, bench, bird, cat, dog, horse, sheep, cow, elephant, bear, zebra,
    giraffe, backpack, umbrella, handbag, tie, suitcase, frisbee, skis, snowboard, sports ball, kite,
    baseball bat, baseball glove, skateboard, surfboard, tennis racket, bottle, wine glass, cup, fork, knife,
    spoon, bowl, banana, apple, sandwich, orange, broccoli, carrot, hot dog, pizza, donut, cake, chair, couch,
    potted plant, bed, dining table, toilet, tv, laptop, mouse, remote, keyboard, cell phone, microwave, oven,
    toaster, sink, refrigerator, book, clock, vase, scissors, teddy bear, hair drier, toothbrush""".split(",")
]


def save_weights(model, path, extra: dict | None = None) -> str:
    """Write model weights + config (+ `extra` facts such as the epoch) to `path` (must end in .weights.h5);
    the file appears only when complete."""
    path = str(path)
    if not path.endswith(".weights.h5"):
        raise StreamerError(f"weights file {path} must end in .weights.h5")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as partial:
        model.keras_model.save_weights(partial)
        import h5py

        with h5py.File(partial, "a") as f:
            f.attrs[CONFIG_ATTR] = model.config.to_json()
            f.attrs[EXTRA_ATTR] = json.dumps(extra or {})
    return path


def read_config(path):
    """The Config dict stored in one of our files, or None for other HDF5 files."""
    _check_file(path)
    import h5py

    with h5py.File(path, "r") as f:
        raw = f.attrs.get(CONFIG_ATTR)
        if raw is None:
            return None
        return json.loads(raw if isinstance(raw, str) else raw.decode())


def _check_file(path):
    if not os.path.isfile(path):
        raise StreamerError(f"weights file {path} does not exist: check the path")
    try:
        import h5py

        with h5py.File(path, "r"):
            pass
    except OSError as error:
        raise StreamerError(
            f"weights file {path} is not an HDF5 file ({error}): pass a .h5 / .weights.h5 file"
        ) from None


def _attr_list(group, name):
    """A Keras 2 string-list attribute, possibly chunked as name0, name1, …"""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def read_keras2_h5(path, arrays: bool = True) -> dict:
    """{layer name: [(weight name, array), …]} from a Keras 2 HDF5 weights or model file (with
    `arrays=False`, each array's shape instead: nothing is read but the layout)."""
    _check_file(path)
    import h5py

    with h5py.File(path, "r") as f:
        root = f
        if not _attr_list(root, "layer_names") and "model_weights" in f:
            root = f["model_weights"]
        names = _attr_list(root, "layer_names")
        if not names:
            raise StreamerError(
                f"weights file {path}: this is not a Mask R-CNN weights file: it has no 'layer_names', so it is "
                "neither matterport's Keras 2 HDF5 layout nor one of ours (.weights.h5 with a Mask R-CNN config)"
            )
        out = {}
        for name in names:
            if name not in root:
                continue
            group = root[name]
            names_ = _attr_list(group, "weight_names")
            out[name] = [(w, np.asarray(group[w]) if arrays else tuple(group[w].shape)) for w in names_]
        return out


def _kernel_shape(weights) -> tuple | None:
    """The kernel's shape among a layer's [(weight name, shape)] (the first array if none is named so)."""
    for wname, shape in weights:
        if "kernel" in wname.rsplit("/", 1)[-1]:
            return tuple(shape)
    return tuple(weights[0][1]) if weights else None


def architecture_from_keras2(path, backbone_only: bool = False) -> dict:
    """The Config settings a Keras 2 HDF5 file (matterport's layout) fixes by its layer names and shapes:
    BACKBONE (resnet101 when stage 4 has blocks a..w, resnet50 for a..f, light for basic blocks, with its
    BACKBONE_WIDTH), NUM_CLASSES (mrcnn_class_logits), TOP_DOWN_PYRAMID_SIZE, RPN_CONV_DEPTH,
    FPN_CLASSIF_FC_LAYERS_SIZE, POOL_SIZE and MASK_HEAD_DEPTH. Settings whose layers the file lacks are
    left out. A file with none of Mask R-CNN's layers is refused, and so is one with only a ResNet backbone
    (matterport's ImageNet start) unless `backbone_only` (training may start from one)."""
    layers = read_keras2_h5(path, arrays=False)
    flat = {}  # also the inner layers of the nested rpn_model, by their weight-name prefix
    for name, weights in layers.items():
        flat.setdefault(name, weights)
        for wname, shape in weights:
            parts = wname.split("/")
            if len(parts) >= 2 and parts[-2] != name:
                flat.setdefault(parts[-2], []).append((wname, shape))
    check_layout(path, flat, backbone_only)
    out = {}
    stage4 = {m.group(1) for name in flat if (m := re.fullmatch(r"res4([a-z])_branch2a", name))}
    if stage4:
        if "res2a_branch2c" not in flat:
            out["BACKBONE"] = "light"
            width = _kernel_shape(flat.get("conv1", []))
            if width:
                out["BACKBONE_WIDTH"] = int(width[-1])
        elif len(stage4) == 23:
            out["BACKBONE"] = "resnet101"
        elif len(stage4) == 6:
            out["BACKBONE"] = "resnet50"
        else:
            raise StreamerError(
                f"weights file {path}: its ResNet has {len(stage4)} stage-4 blocks; only ResNet-50 (6) and "
                "ResNet-101 (23) are supported"
            )
    sizes = {
        "NUM_CLASSES": ("mrcnn_class_logits", -1),
        "TOP_DOWN_PYRAMID_SIZE": ("fpn_c5p5", -1),
        "RPN_CONV_DEPTH": ("rpn_conv_shared", -1),
        "FPN_CLASSIF_FC_LAYERS_SIZE": ("mrcnn_class_conv1", -1),
        "POOL_SIZE": ("mrcnn_class_conv1", 0),
        "MASK_HEAD_DEPTH": ("mrcnn_mask_conv1", -1),
    }
    for key, (layer, axis) in sizes.items():
        shape = _kernel_shape(flat.get(layer, []))
        if shape:
            out[key] = int(shape[axis])
    return out


HEAD_PREFIXES = ("mrcnn_", "rpn_", "fpn_")  # FPN, RPN and the heads: what only a Mask R-CNN has
BACKBONE_LAYER = re.compile(r"res[2-5][a-z]+_branch2a")


def check_layout(path, layers: dict, backbone_only: bool = False) -> None:
    """A StreamerError unless the layer names `layers` of a Keras 2 file are a Mask R-CNN's (or, with
    `backbone_only`, at least its ResNet backbone's)."""
    heads = any(name.startswith(HEAD_PREFIXES) for name in layers)
    backbone = any(BACKBONE_LAYER.fullmatch(name) for name in layers)
    if heads or (backbone and backbone_only):
        return
    names = [name for name in layers if layers[name]] or list(layers)
    shown = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
    if backbone:
        raise StreamerError(
            f"weights file {path}: this is not a Mask R-CNN weights file: it holds only a ResNet backbone "
            "(no FPN, RPN or heads), e.g. ImageNet weights; train from it with streamer train maskrcnn --init, "
            "or give a whole Mask R-CNN's weights (mask_rcnn_coco.h5, a checkpoint, our .weights.h5)"
        )
    raise StreamerError(
        f"weights file {path}: this is not a Mask R-CNN weights file: none of its {len(layers)} layers "
        f"({shown or 'none'}) is one of Mask R-CNN's (conv1, res2a_branch2a, fpn_p2, rpn_model, mrcnn_mask, …); "
        "give matterport's mask_rcnn_coco.h5 or a checkpoint of it, or our .weights.h5"
    )


def _excluded(name, exclude):
    for pattern in exclude:
        if name == pattern:
            return True
        try:
            if re.fullmatch(pattern, name):
                return True
        except re.error:
            continue
    return False


def _plan_layer(layer, stored, rpn_name):
    """→ (list of (variable, array)) or a problem string."""
    import keras

    variables = list(layer.weights)
    if isinstance(layer, keras.Model) and layer.name == rpn_name:
        # Nested model: match arrays to inner layers by the prefix of their weight names.
        plan = []
        by_prefix = {}
        for wname, array in stored:
            parts = wname.split("/")
            prefix = parts[-2] if len(parts) >= 2 else ""
            by_prefix.setdefault(prefix, []).append(array)
        for inner in layer.layers:
            inner_vars = list(inner.weights)
            if not inner_vars:
                continue
            arrays = by_prefix.get(inner.name)
            if arrays is None:
                return f"{layer.name}: the file has no weights for its inner layer {inner.name}"
            sub = _match(inner.name, inner_vars, arrays)
            if isinstance(sub, str):
                return sub
            plan.extend(sub)
        return plan
    return _match(layer.name, variables, [a for _, a in stored])


def _match(name, variables, arrays):
    kernel_only = len(variables) == 2 and len(arrays) == 1 and tuple(arrays[0].shape) == tuple(variables[0].shape)
    if kernel_only:  # a conv saved without its bias: zero bias
        arrays = [arrays[0], np.zeros(variables[1].shape, dtype=np.float32)]
    if len(arrays) != len(variables):
        return f"{name}: file has {len(arrays)} weight(s), model wants {len(variables)}"
    file_shapes = [tuple(a.shape) for a in arrays]
    model_shapes = [tuple(v.shape) for v in variables]
    if file_shapes != model_shapes:
        fs = ", ".join(str(s) for s in file_shapes)
        ms = ", ".join(str(s) for s in model_shapes)
        return f"{name}: file has {fs}, model wants {ms}"
    return list(zip(variables, arrays))


def assign_by_name(model, stored: dict, exclude=(), source="weights file") -> dict:
    """Assign {layer: [(weight name, array)]} to the model's layers with the same names.

    Layers in the file that the model lacks are skipped (as Keras' by_name); a layer whose weight
    count or shapes differ, and a layer of the model with weights that the file lacks, are errors unless
    excluded. Nothing is assigned if anything fails."""
    exclude = list(exclude or [])
    layers = model.layers_by_name()
    rpn_name = model.keras_model.rpn.name
    plan, problems, loaded, skipped, excluded = [], [], [], [], []
    for name, weights in stored.items():
        if not weights:
            continue
        if _excluded(name, exclude):
            excluded.append(name)
            continue
        layer = layers.get(name)
        if layer is None:
            skipped.append(name)
            continue
        result = _plan_layer(layer, weights, rpn_name)
        if isinstance(result, str):
            problems.append(result)
        else:
            plan.extend(result)
            loaded.append(name)
    if problems:
        names = [p.split(":")[0] for p in problems]
        raise StreamerError(
            f"{source} does not fit this model: "
            + "; ".join(problems)
            + f". Pass --exclude {','.join(names)} to skip those layers, or set NUM_CLASSES/BACKBONE"
            " (and the other sizes) to match the file"
        )
    covered = set(loaded)
    if rpn_name in covered:
        covered.update(inner.name for inner in model.keras_model.rpn.layers)
    missing = [
        name
        for name, layer in layers.items()
        if layer.weights and name not in covered and name != rpn_name and not _excluded(name, exclude)
    ]
    if missing and loaded:
        shown = ", ".join(missing[:12]) + (f", … ({len(missing)} layers in all)" if len(missing) > 12 else "")
        resnet50 = all(re.fullmatch(r"(res|bn)4[g-w]_branch2[abc]", name) for name in missing)
        hint = "it is a ResNet-50 file: set BACKBONE=resnet50" if resnet50 else "set BACKBONE (and the other sizes)"
        raise StreamerError(
            f"{source} does not fit this model: it has no weights for {shown}. {hint[0].upper() + hint[1:]} to "
            "match the file, or pass --exclude with those layers to leave them as initialised"
        )
    if not loaded:
        raise StreamerError(
            f"{source}: this is not a Mask R-CNN weights file for this model: none of its {len(stored)} layers "
            f"({', '.join(list(stored)[:3])}, …) matches one of the model's"
        )
    for variable, array in plan:
        variable.assign(array.astype(variable.dtype) if hasattr(array, "astype") else array)
    return {"loaded": loaded, "skipped": skipped, "excluded": excluded}


# The settings that shape the layers: a file loads exactly (not by name) only when they match.
ARCHITECTURE_KEYS = tuple(
    """BACKBONE NUM_CLASSES TOP_DOWN_PYRAMID_SIZE RPN_CONV_DEPTH MASK_HEAD_DEPTH FPN_CLASSIF_FC_LAYERS_SIZE
    POOL_SIZE MASK_POOL_SIZE RPN_ANCHOR_RATIOS RPN_ANCHOR_STRIDE""".split()
)


def architecture_differences(saved: dict, config) -> list[str]:
    current = config.to_dict()
    keys = list(ARCHITECTURE_KEYS)
    if current.get("BACKBONE") == "light" or saved.get("BACKBONE") == "light":
        keys.append("BACKBONE_WIDTH")
    differ = [k for k in keys if saved.get(k) != current.get(k)]
    return [f"{k}: file has {saved.get(k)!r}, model has {current.get(k)!r}" for k in differ]


def _own_file_by_name(path, saved, network: type) -> dict:
    """Read one of our files into {layer name: [(weight name, array)]} via a `network` (the MaskRCNN class) of the
    file's own config."""
    from .config import Config

    source = network(Config.from_dict(saved))
    source.keras_model.load_weights(path)
    out = {}
    for name, layer in source.layers_by_name().items():
        variables = list(layer.weights)
        if layer is source.keras_model.rpn:
            out[name] = [(f"{name}/{inner.name}/{v.name}", v.numpy()) for inner in layer.layers for v in inner.weights]
        elif name in ("backbone",):
            continue
        elif variables:
            out[name] = [(f"{name}/{v.name}", v.numpy()) for v in variables]
    for name in [n for n in out if n != source.keras_model.rpn.name]:
        if any(name == inner.name for inner in source.keras_model.rpn.layers):
            del out[name]
    return out


def load_weights(model, path, by_name=True, exclude=None) -> dict:
    """Load our .weights.h5 or a Keras 2 HDF5 file into `model` (a MaskRCNN).

    Our files with the same architecture and no exclude load exactly (Keras 3); otherwise,
    and for Keras 2 files, layers are matched by name."""
    path = str(path)
    exclude = [e for e in (exclude or []) if e]
    saved = read_config(path)
    if saved is not None:
        differences = architecture_differences(saved, model.config)
        if not differences and not exclude:
            try:
                model.keras_model.load_weights(path)
                return {"loaded": ["*"], "skipped": [], "excluded": []}
            except Exception as error:  # falls back to by-name loading
                differences = [str(error)]
        stored = _own_file_by_name(path, saved, type(model))
        return assign_by_name(model, stored, exclude, source=f"weights file {path}")
    if not by_name and not exclude:
        by_name = True  # topological loading is not supported: names are stable, order is not
    stored = read_keras2_h5(path)
    check_layout(path, stored, backbone_only=True)
    return assign_by_name(model, stored, exclude, source=f"weights file {path}")
