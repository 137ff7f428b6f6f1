"""matterport's Mask R-CNN inference in NumPy, stage by stage, written from its documented semantics: the
yardstick `benchmarks/maskrcnn_parity.py` and the tests hold our TensorFlow graph to.

Nothing here uses TensorFlow or the model code. Weights come as {layer name: [arrays]} in Keras order
(kernel, bias; gamma, beta, moving mean, moving variance), as matterport's HDF5 files store them. Each stage
takes the previous stage's values, so a comparison can feed it ours and name the stage that drifts:

anchors → rpn (from the feature maps) → proposals → roi_align → classifier → detection_layer → mask_head →
unmold. float32 where matterport's graph computes in float32 (box arithmetic, crop_and_resize's sampling
points, bit for bit as its CPU kernel rounds them), float64 for the network's sums (which float32 only rounds).
"""

from __future__ import annotations

import math

import numpy as np

F = np.float32
BN_EPSILON = 1e-3  # Keras BatchNormalization's default, which matterport's BatchNorm keeps


# ------------------------------------------------------------------------------------------------ molding
def bilinear_zero(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """scikit-image's order-1 resize with mode "constant" (cval 0), no anti-aliasing, range preserved: each
    output pixel centre maps to (i + 0.5) * in / out - 0.5 in the input, bilinear between the four
    neighbours, pixels outside the image are 0; float64."""
    source = np.asarray(image, np.float64)
    squeeze = source.ndim == 2
    if squeeze:
        source = source[..., None]
    h, w = source.shape[:2]
    padded = np.pad(source, ((1, 1), (1, 1), (0, 0)))  # zeros outside the image

    def axis(out_size, in_size):
        centre = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
        low = np.floor(centre)
        return low.astype(int) + 1, centre - low  # index into the padded array, weight of the next pixel

    y0, fy = axis(height, h)
    x0, fx = axis(width, w)
    fy, fx = fy[:, None, None], fx[None, :, None]
    top = padded[y0][:, x0] * (1 - fx) + padded[y0][:, x0 + 1] * fx
    bottom = padded[y0 + 1][:, x0] * (1 - fx) + padded[y0 + 1][:, x0 + 1] * fx
    out = top * (1 - fy) + bottom * fy
    return out[..., 0] if squeeze else out


def mold(image: np.ndarray, config) -> tuple[np.ndarray, tuple[int, int, int, int], np.ndarray]:
    """utils.resize_image in "square" mode (bilinear_zero, truncated back to uint8, zero padding centred) and
    mold_image (minus MEAN_PIXEL in float64, as the model receives it in float32) → (molded, window px,
    whole): `whole` marks the pixels whose resized value is a whole number up to float64 rounding (a flat
    area of 120 gives 120 or 119.99999999999999): scikit-image's sums truncate these to either neighbour, so
    no reference can tell which."""
    h, w = image.shape[:2]
    scale = max(1.0, config.IMAGE_MIN_DIM / min(h, w)) if config.IMAGE_MIN_DIM else 1.0
    if config.IMAGE_MIN_SCALE and scale < config.IMAGE_MIN_SCALE:
        scale = config.IMAGE_MIN_SCALE
    side = int(config.IMAGE_MAX_DIM)
    if round(max(h, w) * scale) > side:
        scale = side / max(h, w)
    whole = np.zeros(image.shape, bool)
    if scale != 1:
        resized = bilinear_zero(image, round(h * scale), round(w * scale))
        whole = np.abs(resized - np.round(resized)) < 1e-6
        image = np.clip(resized, 0, 255).astype(np.uint8)
    h, w = image.shape[:2]
    top, left = (side - h) // 2, (side - w) // 2
    out = np.zeros((side, side, image.shape[2]), np.uint8)
    out[top : top + h, left : left + w] = image
    ambiguous = np.zeros(out.shape, bool)
    ambiguous[top : top + h, left : left + w] = whole
    molded = (out.astype(F) - np.asarray(config.MEAN_PIXEL, np.float64)).astype(F)
    return molded, (top, left, top + h, left + w), ambiguous


def norm_boxes(boxes, shape) -> np.ndarray:
    """Pixel boxes (y2, x2 exclusive) → normalised: (box - (0, 0, 1, 1)) / (h-1, w-1, h-1, w-1), float64 → float32."""
    h, w = shape[:2]
    return ((np.asarray(boxes, np.float64) - [0, 0, 1, 1]) / [h - 1, w - 1, h - 1, w - 1]).astype(F)


def denorm_boxes(boxes, shape) -> np.ndarray:
    h, w = shape[:2]
    return np.around(np.asarray(boxes, np.float64) * [h - 1, w - 1, h - 1, w - 1] + [0, 0, 1, 1]).astype(np.int32)


# ------------------------------------------------------------------------------------------------ anchors
def anchors(config, image_shape) -> np.ndarray:
    """All anchors, normalised: per level (stride s, square side `scale`), for each feature cell (row by row)
    and each ratio r, a box of height scale/√r and width scale·√r centred on (row·s, col·s)."""
    out = []
    for scale, stride in zip(config.RPN_ANCHOR_SCALES, config.BACKBONE_STRIDES):
        rows, cols = math.ceil(image_shape[0] / stride), math.ceil(image_shape[1] / stride)
        step = int(config.RPN_ANCHOR_STRIDE)
        for y in np.arange(0, rows, step) * stride:
            for x in np.arange(0, cols, step) * stride:
                for ratio in config.RPN_ANCHOR_RATIOS:
                    hh, ww = scale / math.sqrt(ratio), scale * math.sqrt(ratio)
                    out.append([y - hh / 2, x - ww / 2, y + hh / 2, x + ww / 2])
    return norm_boxes(np.array(out, np.float64), image_shape)


# ------------------------------------------------------------------------------------------------ layers
def conv2d(x: np.ndarray, kernel: np.ndarray, bias=None, stride: int = 1, padding: str = "same") -> np.ndarray:
    """x [H,W,C], kernel [kh,kw,C,O] → [H',W',O] in float64 (TensorFlow's SAME padding: the extra pixel
    after)."""
    kh, kw = kernel.shape[:2]
    x = np.asarray(x, np.float64)
    if padding == "same":
        out_h, out_w = math.ceil(x.shape[0] / stride), math.ceil(x.shape[1] / stride)
        ph = max((out_h - 1) * stride + kh - x.shape[0], 0)
        pw = max((out_w - 1) * stride + kw - x.shape[1], 0)
        x = np.pad(x, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out_h, out_w = (x.shape[0] - kh) // stride + 1, (x.shape[1] - kw) // stride + 1
    out = np.zeros((out_h, out_w, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = x[i : i + stride * out_h : stride, j : j + stride * out_w : stride]
            out += patch @ np.asarray(kernel[i, j], np.float64)
    return out if bias is None else out + bias


def batch_norm(x: np.ndarray, gamma, beta, mean, variance) -> np.ndarray:
    return (x - mean) / np.sqrt(np.asarray(variance, np.float64) + BN_EPSILON) * gamma + beta


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ------------------------------------------------------------------------------------------------ RPN
def rpn(weights: dict, feature_maps, anchor_stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """One image's feature maps [P2..P6] (each H×W×D) → (probabilities [A, 2], deltas [A, 4]): rpn_conv_shared
    (3×3, ReLU), then rpn_class_raw → softmax and rpn_bbox_pred, reshaped cell by cell, anchor by anchor."""
    probs, deltas = [], []
    for p in feature_maps:
        shared = np.maximum(conv2d(p, *weights["rpn_conv_shared"], stride=anchor_stride), 0)
        probs.append(softmax(conv2d(shared, *weights["rpn_class_raw"]).reshape(-1, 2)))
        deltas.append(conv2d(shared, *weights["rpn_bbox_pred"]).reshape(-1, 4))
    return np.concatenate(probs).astype(F), np.concatenate(deltas).astype(F)


# ------------------------------------------------------------------------------------------------ boxes
def apply_box_deltas(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """float32, in matterport's order of operations (no clamp on the deltas)."""
    boxes, deltas = boxes.astype(F), deltas.astype(F)
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    cy = boxes[:, 0] + F(0.5) * h
    cx = boxes[:, 1] + F(0.5) * w
    cy = cy + deltas[:, 0] * h
    cx = cx + deltas[:, 1] * w
    with np.errstate(over="ignore"):
        h = h * np.exp(deltas[:, 2])
        w = w * np.exp(deltas[:, 3])
    return np.stack([cy - F(0.5) * h, cx - F(0.5) * w, cy + F(0.5) * h, cx + F(0.5) * w], axis=1)


def clip_boxes(boxes: np.ndarray, window) -> np.ndarray:
    wy1, wx1, wy2, wx2 = (F(v) for v in window)
    y1, x1, y2, x2 = boxes.T
    return np.stack(
        [
            np.maximum(np.minimum(y1, wy2), wy1),
            np.maximum(np.minimum(x1, wx2), wx1),
            np.maximum(np.minimum(y2, wy2), wy1),
            np.maximum(np.minimum(x2, wx2), wx1),
        ],
        axis=1,
    )


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """tf.image.non_max_suppression's IoU: corners taken in either order; 0 when either box has no area."""
    y1, y2 = np.minimum(box[0], box[2]), np.maximum(box[0], box[2])
    x1, x2 = np.minimum(box[1], box[3]), np.maximum(box[1], box[3])
    oy1, oy2 = np.minimum(others[:, 0], others[:, 2]), np.maximum(others[:, 0], others[:, 2])
    ox1, ox2 = np.minimum(others[:, 1], others[:, 3]), np.maximum(others[:, 1], others[:, 3])
    area = (y2 - y1) * (x2 - x1)
    areas = (oy2 - oy1) * (ox2 - ox1)
    inter = np.maximum(np.minimum(y2, oy2) - np.maximum(y1, oy1), 0) * np.maximum(
        np.minimum(x2, ox2) - np.maximum(x1, ox1), 0
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / (area + areas - inter)
    return np.where((area <= 0) | (areas <= 0), 0.0, iou)


def nms(boxes: np.ndarray, scores: np.ndarray, limit: int, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: best score first (ties: the earlier box), dropping boxes whose IoU
    with a kept one exceeds `threshold`; indices of at most `limit` kept boxes."""
    order = list(np.argsort(-np.asarray(scores, np.float64), kind="stable"))
    keep = []
    boxes = np.asarray(boxes, np.float64)
    while order and len(keep) < limit:
        best = order.pop(0)
        keep.append(best)
        if order:
            overlap = _iou(boxes[best], boxes[order])
            order = [i for i, v in zip(order, overlap) if not v > threshold]
    return np.array(keep, np.int64)


# ------------------------------------------------------------------------------------------------ proposals
def proposals(probs: np.ndarray, deltas: np.ndarray, anchor_boxes: np.ndarray, config) -> np.ndarray:
    """ProposalLayer for one image: the PRE_NMS_LIMIT best anchors by foreground score (ties: the earlier
    anchor), refined by deltas × RPN_BBOX_STD_DEV, clipped to [0, 1], NMS at RPN_NMS_THRESHOLD, the first
    POST_NMS_ROIS_INFERENCE kept, zero-padded → [POST_NMS_ROIS_INFERENCE, 4]."""
    count = int(config.POST_NMS_ROIS_INFERENCE)
    scores = probs[:, 1]
    top = np.argsort(-scores.astype(np.float64), kind="stable")[: min(int(config.PRE_NMS_LIMIT), len(scores))]
    boxes = apply_box_deltas(anchor_boxes[top], deltas[top] * np.asarray(config.RPN_BBOX_STD_DEV, F))
    boxes = clip_boxes(boxes, (0, 0, 1, 1))
    keep = nms(boxes, scores[top], count, float(config.RPN_NMS_THRESHOLD))
    out = np.zeros((count, 4), F)
    out[: len(keep)] = boxes[keep]
    return out


# ------------------------------------------------------------------------------------------------ ROI Align
def roi_levels(boxes: np.ndarray, image_shape) -> np.ndarray:
    """PyramidROIAlign's level: 4 + round(log2(√(h·w) / (224 / √area))), within 2..5 (float32)."""
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    area = F(image_shape[0] * image_shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.log(np.sqrt(h * w) / (F(224.0) / np.sqrt(area))) / np.log(F(2.0))
    level = np.where(np.isfinite(level), np.round(level), -100.0)
    return np.clip(4 + level, 2, 5).astype(int)


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """tf.image.crop_and_resize (bilinear) on one map H×W×C: sample i of a box is at y1·(H−1) + i·(y2−y1)·(H−1)
    /(size−1) (likewise x), computed in float32 in that order; a sample outside [0, H−1] × [0, W−1] is 0
    (extrapolation_value), so a box touching the border can lose its last row to the rounding."""
    height, width = image.shape[:2]
    image = image.astype(F)
    out = np.zeros((len(boxes), size, size, image.shape[2]), F)
    steps = np.arange(size, dtype=F)
    for k, (y1, x1, y2, x2) in enumerate(boxes.astype(F)):
        ys = y1 * F(height - 1) + steps * ((y2 - y1) * F(height - 1) / F(size - 1))
        xs = x1 * F(width - 1) + steps * ((x2 - x1) * F(width - 1) / F(size - 1))
        for i, y in enumerate(ys):
            if y < 0 or y > height - 1:
                continue
            top, bottom = int(np.floor(y)), int(np.ceil(y))
            fy = y - F(top)
            inside = (xs >= 0) & (xs <= width - 1)
            left = np.floor(np.where(inside, xs, 0)).astype(int)
            right = np.ceil(np.where(inside, xs, 0)).astype(int)
            fx = (np.where(inside, xs, 0) - left.astype(F))[:, None]
            upper = image[top, left] + (image[top, right] - image[top, left]) * fx
            lower = image[bottom, left] + (image[bottom, right] - image[bottom, left]) * fx
            out[k, i] = np.where(inside[:, None], upper + (lower - upper) * F(fy), 0)
    return out


def roi_align(boxes: np.ndarray, feature_maps, size: int, image_shape) -> np.ndarray:
    """PyramidROIAlign for one image: each box cropped from the level roi_levels picks (P2..P5)."""
    levels = roi_levels(boxes, image_shape)
    out = np.zeros((len(boxes), size, size, feature_maps[0].shape[-1]), F)
    for level, feature_map in zip(range(2, 6), feature_maps):
        ix = np.flatnonzero(levels == level)
        if ix.size:
            out[ix] = crop_and_resize(feature_map, boxes[ix], size)
    return out


# ------------------------------------------------------------------------------------------------ heads
def classifier(weights: dict, pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """fpn_classifier_graph on pooled ROIs [N, pool, pool, D] → class probabilities [N, C], deltas [N, C, 4]."""
    kernel, bias = weights["mrcnn_class_conv1"]
    x = pooled.reshape(len(pooled), -1).astype(np.float64) @ kernel.reshape(-1, kernel.shape[-1]) + bias
    x = np.maximum(batch_norm(x, *weights["mrcnn_class_bn1"]), 0)
    kernel, bias = weights["mrcnn_class_conv2"]
    x = np.maximum(batch_norm(x @ kernel.reshape(-1, kernel.shape[-1]) + bias, *weights["mrcnn_class_bn2"]), 0)
    kernel, bias = weights["mrcnn_class_logits"]
    probs = softmax(x @ kernel + bias)
    kernel, bias = weights["mrcnn_bbox_fc"]
    deltas = (x @ kernel + bias).reshape(len(pooled), -1, 4)
    return probs.astype(F), deltas.astype(F)


def mask_head(weights: dict, pooled: np.ndarray) -> np.ndarray:
    """build_fpn_mask_graph on pooled ROIs [N, pool, pool, D] → mask probabilities [N, 2·pool, 2·pool, C]."""
    out = []
    for roi in pooled:
        x = roi
        for i in range(1, 5):
            x = np.maximum(batch_norm(conv2d(x, *weights[f"mrcnn_mask_conv{i}"]), *weights[f"mrcnn_mask_bn{i}"]), 0)
        kernel, bias = weights["mrcnn_mask_deconv"]  # [2, 2, out, in], stride 2: each cell → a 2×2 block
        up = np.einsum("hwc,abdc->hawbd", x, kernel.astype(np.float64)).reshape(2 * x.shape[0], 2 * x.shape[1], -1)
        x = np.maximum(up + bias, 0)
        out.append(sigmoid(conv2d(x, *weights["mrcnn_mask"])))
    return np.array(out, F).reshape(len(pooled), 2 * pooled.shape[1], 2 * pooled.shape[2], -1)


# ------------------------------------------------------------------------------------------------ detections
def detection_layer(rois: np.ndarray, probs: np.ndarray, deltas: np.ndarray, window, config) -> np.ndarray:
    """refine_detections for one image → [DETECTION_MAX_INSTANCES, 6] (y1, x1, y2, x2, class id, score): each
    ROI's best class and its box refined by that class's deltas × BBOX_STD_DEV, clipped to the window; the
    ROIs of a foreground class scoring ≥ DETECTION_MIN_CONFIDENCE; greedy NMS per class at
    DETECTION_NMS_THRESHOLD; the best DETECTION_MAX_INSTANCES by score (ties: the earlier ROI); zero rows after."""
    limit = int(config.DETECTION_MAX_INSTANCES)
    class_ids = np.argmax(probs, axis=1)
    scores = probs[np.arange(len(probs)), class_ids]
    specific = deltas[np.arange(len(deltas)), class_ids] * np.asarray(config.BBOX_STD_DEV, F)
    boxes = clip_boxes(apply_box_deltas(rois, specific), window)
    keep = np.flatnonzero((class_ids > 0) & (scores >= F(config.DETECTION_MIN_CONFIDENCE)))
    chosen = []
    for class_id in np.unique(class_ids[keep]):
        ixs = keep[class_ids[keep] == class_id]
        chosen.extend(ixs[nms(boxes[ixs], scores[ixs], limit, float(config.DETECTION_NMS_THRESHOLD))])
    chosen = np.sort(np.array(chosen, np.int64))
    chosen = chosen[np.argsort(-scores[chosen].astype(np.float64), kind="stable")][:limit]
    out = np.zeros((limit, 6), F)
    out[: len(chosen)] = np.concatenate(
        [boxes[chosen], class_ids[chosen, None].astype(F), scores[chosen, None]], axis=1
    )
    return out


def unmold(detections: np.ndarray, masks: np.ndarray, original_shape, molded_shape, window) -> dict:
    """unmold_detections: rows up to the first of class 0, boxes from the window back to the original image
    (rounded), zero-area boxes dropped, each box's mask (its class's, [N, h, w]) resized with bilinear_zero and
    thresholded at 0.5 → rois, class_ids, scores, masks [H, W, N]."""
    count = int(np.argmax(detections[:, 4] == 0)) if (detections[:, 4] == 0).any() else len(detections)
    wy1, wx1, wy2, wx2 = norm_boxes(np.asarray(window)[None], molded_shape)[0]
    shift = np.array([wy1, wx1, wy1, wx1], F)
    scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1], F)
    boxes = denorm_boxes((detections[:count, :4] - shift) / scale, original_shape)
    keep = np.flatnonzero((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0)
    full = np.zeros(tuple(original_shape[:2]) + (len(keep),), bool)
    for n, i in enumerate(keep):
        y1, x1, y2, x2 = boxes[i]
        pasted = np.zeros(original_shape[:2], bool)
        pasted[y1:y2, x1:x2] = bilinear_zero(masks[i], y2 - y1, x2 - x1) >= 0.5
        full[..., n] = pasted
    return {
        "rois": boxes[keep],
        "class_ids": detections[keep, 4].astype(np.int32),
        "scores": detections[keep, 5],
        "masks": full,
    }
