"""Our Mask R-CNN against matterport's semantics (reference.py), stage by stage, on given images.

`compare(model, image)` runs detect's graph on one image, keeps every stage, and gives each reference stage
the values of our stage before it, so that a difference is charged to the stage that makes it: molding,
anchors, backbone (folded graph against the Keras layers), RPN, proposals, ROI Align, classifier, detection
layer, mask head, unmolding. "end to end" runs the reference alone from our feature maps to the final
detections. `benchmarks/maskrcnn_parity.py` prints these figures for a weights file and images.
"""

from __future__ import annotations

import numpy as np

from . import reference as ref
from .boxes import norm_boxes

STAGES = (
    "mold",
    "anchors",
    "backbone",
    "rpn",
    "proposals",
    "roi_align",
    "classifier",
    "detection_layer",
    "mask_head",
    "unmold",
    "end_to_end",
)


def layer_weights(model) -> dict:
    """{layer name: [arrays]} of the model's layers with weights, in Keras order (as matterport's files hold)."""
    return {name: [w.numpy() for w in layer.weights] for name, layer in model.layers_by_name().items() if layer.weights}


def _graph(model):
    """detect's graph with every stage as output (fused.stages on the folded weights), made once per model."""
    cached = getattr(model, "_parity_graph", None)
    if cached is None:
        import tensorflow as tf

        from . import fused

        params = fused.fold(model)
        cached = tf.function(lambda images, windows, anchors: fused.stages(model, params, images, windows, anchors))
        model._parity_graph = cached
    return cached


def _relative(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    if ours.shape != theirs.shape:
        return float("inf")
    if ours.size == 0:
        return 0.0
    return float(np.abs(ours - theirs).max() / max(1.0, np.abs(theirs).max()))


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def match_detections(ours: dict, theirs: dict) -> dict:
    """Detections (detect's dicts) paired by rank: how many, how many with the same class and box, the
    largest score difference and the smallest mask IoU among the pairs with the same class and box."""
    n, m = len(ours["class_ids"]), len(theirs["class_ids"])
    same = [
        i
        for i in range(min(n, m))
        if ours["class_ids"][i] == theirs["class_ids"][i] and np.array_equal(ours["rois"][i], theirs["rois"][i])
    ]
    return {
        "ours": n,
        "theirs": m,
        "same": len(same),
        "score": max((abs(float(ours["scores"][i]) - float(theirs["scores"][i])) for i in same), default=0.0),
        "mask_iou": min((_mask_iou(ours["masks"][..., i], theirs["masks"][..., i]) for i in same), default=1.0),
    }


def compare(model, image: np.ndarray, weights: dict | None = None) -> dict:
    """Figures per stage (see STAGES) for one RGB uint8 image: relative differences (max |ours − ref| /
    max(1, max |ref|)), rows or detections that agree, and for unmold / end_to_end `match_detections`."""
    import tensorflow as tf

    config = model.config
    weights = weights or layer_weights(model)
    molded, windows, _ = model.mold_inputs([image])
    shape = molded.shape[1:3]
    out = {}
    if config.matterport_numerics:
        theirs, window, whole = ref.mold(image, config)
        difference = np.abs(molded[0] - theirs)
        out["mold"] = {
            "max_abs": float(np.where(whole, 0, difference).max()),
            "whole_numbers_truncated_otherwise": int((whole & (difference > 0)).sum()),
            "window_same": window == tuple(windows[0]),
        }
    anchors = model.get_anchors(shape)
    out["anchors"] = {"max_abs": float(np.abs(anchors - ref.anchors(config, shape)).max())}
    windows_norm = norm_boxes(windows, shape)
    got = _graph(model)(tf.constant(molded), tf.constant(windows_norm), tf.constant(anchors))
    got = {k: ([m.numpy() for m in v] if isinstance(v, list) else v.numpy()) for k, v in got.items()}
    maps = [m[0] for m in got["feature_maps"]]
    keras_maps = model.keras_model.backbone(tf.constant(molded), training=False)
    out["backbone"] = {"relative": max(_relative(a, b.numpy()[0]) for a, b in zip(maps, keras_maps))}

    probs, deltas = ref.rpn(weights, maps, int(config.RPN_ANCHOR_STRIDE))
    out["rpn"] = {"relative": max(_relative(got["rpn_probs"][0], probs), _relative(got["rpn_deltas"][0], deltas))}

    rois = got["rois"][0]
    proposals = ref.proposals(got["rpn_probs"][0], got["rpn_deltas"][0], anchors, config)
    out["proposals"] = _rows(rois, proposals)

    pool = int(config.POOL_SIZE)
    pooled = ref.roi_align(rois, maps[:4], pool, shape)
    ours_pooled = got["pooled"].reshape(pooled.shape)
    differing = np.abs(ours_pooled - pooled).reshape(len(rois), -1).max(axis=1) > 1e-5 * max(1.0, np.abs(pooled).max())
    out["roi_align"] = {"relative": _relative(ours_pooled, pooled), "rois_differing": int(differing.sum())}

    class_probs, class_deltas = ref.classifier(weights, ours_pooled)
    out["classifier"] = {
        "probs_max_abs": float(np.abs(got["class_probs"][0] - class_probs).max()),
        "deltas_relative": _relative(got["class_deltas"][0], class_deltas),
    }

    detections = got["detections"][0]
    window = windows_norm[0]
    theirs = ref.detection_layer(rois, got["class_probs"][0], got["class_deltas"][0], window, config)
    out["detection_layer"] = _rows(detections, theirs)

    count = int((detections[:, 4] > 0).sum())
    class_ids = detections[:count, 4].astype(int)
    mask_pooled = ref.roi_align(detections[:count, :4], maps[:4], int(config.MASK_POOL_SIZE), shape)
    masks = ref.mask_head(weights, mask_pooled)[np.arange(count), :, :, class_ids] if count else np.zeros((0, 28, 28))
    out["mask_head"] = {"max_abs": float(np.abs(got["masks"][0][:count] - masks).max()) if count else 0.0}

    ours = model.unmold_detections(detections, got["masks"][0], image.shape, shape, windows[0])
    out["unmold"] = match_detections(ours, ref.unmold(detections, got["masks"][0], image.shape, shape, windows[0]))

    # the reference alone, from our feature maps to the frame
    proposals = ref.proposals(probs, deltas, anchors, config)
    class_probs, class_deltas = ref.classifier(weights, ref.roi_align(proposals, maps[:4], pool, shape))
    found = ref.detection_layer(proposals, class_probs, class_deltas, window, config)
    count = int((found[:, 4] > 0).sum())
    masks = np.zeros((len(found),) + tuple(got["masks"][0].shape[1:]), np.float32)
    if count:
        pooled = ref.roi_align(found[:count, :4], maps[:4], int(config.MASK_POOL_SIZE), shape)
        masks[:count] = ref.mask_head(weights, pooled)[np.arange(count), :, :, found[:count, 4].astype(int)]
    out["end_to_end"] = match_detections(
        model.detect([image])[0], ref.unmold(found, masks, image.shape, shape, windows[0])
    )
    return out


def _rows(ours: np.ndarray, theirs: np.ndarray, tolerance: float = 1e-5) -> dict:
    """Rows of two [N, k] arrays (zero rows are padding): how many non-padding rows, how many agree within
    `tolerance`, the largest difference."""
    real = np.abs(theirs).sum(axis=1) > 0
    agree = np.abs(ours - theirs).max(axis=1) <= tolerance
    return {"rows": int(real.sum()), "same": int((agree & real).sum()), "max_abs": float(np.abs(ours - theirs).max())}
