"""Box utilities (NumPy and TensorFlow): IoU, NMS, delta encode/decode, normalisation.

The *_graph functions import TensorFlow when called, so the NumPy ones (used to draw samples) do not.

Boxes are [y1, x1, y2, x2]; pixel boxes from masks have exclusive y2/x2 (matterport).
Deltas are (dy, dx, log dh, log dw) relative to the reference box's centre and size.
"""

from __future__ import annotations

import numpy as np


def extract_bboxes(mask: np.ndarray) -> np.ndarray:
    """mask bool [H,W,N] → int32 [N,4] (y1,x1,y2,x2) with exclusive y2/x2; empty masks → zeros."""
    count = mask.shape[-1]
    boxes = np.zeros([count, 4], dtype=np.int32)
    for i in range(count):
        rows = np.flatnonzero(mask[:, :, i].any(axis=1))
        cols = np.flatnonzero(mask[:, :, i].any(axis=0))
        if rows.size:
            boxes[i] = [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
    return boxes


def compute_overlaps(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU matrix [len(boxes1), len(boxes2)]."""
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    y1 = np.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    x1 = np.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    y2 = np.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    x2 = np.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    inter = np.maximum(y2 - y1, 0) * np.maximum(x2 - x1, 0)
    union = area1[:, None] + area2[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def compute_overlaps_masks(masks1: np.ndarray, masks2: np.ndarray) -> np.ndarray:
    """Mask IoU matrix between [H,W,N1] and [H,W,N2] masks (thresholded at 0.5)."""
    if masks1.shape[-1] == 0 or masks2.shape[-1] == 0:
        return np.zeros((masks1.shape[-1], masks2.shape[-1]))
    m1 = (np.reshape(masks1 > 0.5, (-1, masks1.shape[-1]))).astype(np.float32)
    m2 = (np.reshape(masks2 > 0.5, (-1, masks2.shape[-1]))).astype(np.float32)
    area1 = m1.sum(axis=0)
    area2 = m2.sum(axis=0)
    inter = m1.T @ m2
    union = area1[:, None] + area2[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, threshold: float, max_output: int | None = None):
    """Greedy NMS: indices of kept boxes, best score first (same as tf.image.non_max_suppression)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    keep = []
    while order and (max_output is None or len(keep) < max_output):
        best = order.pop(0)
        keep.append(best)
        if not order:
            break
        iou = compute_overlaps(boxes[best : best + 1], boxes[order])[0]
        order = [i for i, v in zip(order, iou) if v <= threshold]
    return np.array(keep, dtype=np.int32)


def box_refinement(box: np.ndarray, gt_box: np.ndarray) -> np.ndarray:
    """Deltas that turn `box` into `gt_box` (both [N,4])."""
    box = np.asarray(box, dtype=np.float32)
    gt_box = np.asarray(gt_box, dtype=np.float32)
    h = box[:, 2] - box[:, 0]
    w = box[:, 3] - box[:, 1]
    cy = box[:, 0] + 0.5 * h
    cx = box[:, 1] + 0.5 * w
    gh = gt_box[:, 2] - gt_box[:, 0]
    gw = gt_box[:, 3] - gt_box[:, 1]
    gcy = gt_box[:, 0] + 0.5 * gh
    gcx = gt_box[:, 1] + 0.5 * gw
    return np.stack([(gcy - cy) / h, (gcx - cx) / w, np.log(gh / h), np.log(gw / w)], axis=1)


def apply_box_deltas(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float32).copy()
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    cy = boxes[:, 0] + 0.5 * h + deltas[:, 0] * h
    cx = boxes[:, 1] + 0.5 * w + deltas[:, 1] * w
    h = h * np.exp(deltas[:, 2])
    w = w * np.exp(deltas[:, 3])
    return np.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], axis=1)


def box_refinement_graph(box, gt_box):
    import tensorflow as tf

    box = tf.cast(box, tf.float32)
    gt_box = tf.cast(gt_box, tf.float32)
    h = box[:, 2] - box[:, 0]
    w = box[:, 3] - box[:, 1]
    cy = box[:, 0] + 0.5 * h
    cx = box[:, 1] + 0.5 * w
    gh = gt_box[:, 2] - gt_box[:, 0]
    gw = gt_box[:, 3] - gt_box[:, 1]
    gcy = gt_box[:, 0] + 0.5 * gh
    gcx = gt_box[:, 1] + 0.5 * gw
    return tf.stack([(gcy - cy) / h, (gcx - cx) / w, tf.math.log(gh / h), tf.math.log(gw / w)], axis=1)


DELTA_LIMIT = 4.0  # height/width deltas are clamped here: a box grows at most e⁴ ≈ 55-fold
# matterport clamps nothing and overflows to inf (and NaN) past e^88.7; clamped at 80, a box is matterport's
# wherever that is finite once clipped to the image (e^80 ≈ 5.5e34 times its size already covers it)
MATTERPORT_DELTA_LIMIT = 80.0


def apply_box_deltas_graph(boxes, deltas, limit: float = DELTA_LIMIT):
    """boxes [..., 4], deltas [..., 4] → refined boxes [..., 4]; height/width deltas clamped at `limit`."""
    import tensorflow as tf

    h = boxes[..., 2] - boxes[..., 0]
    w = boxes[..., 3] - boxes[..., 1]
    cy = boxes[..., 0] + 0.5 * h + deltas[..., 0] * h
    cx = boxes[..., 1] + 0.5 * w + deltas[..., 1] * w
    h = h * tf.exp(tf.minimum(deltas[..., 2], limit))
    w = w * tf.exp(tf.minimum(deltas[..., 3], limit))
    return tf.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], axis=-1)


def clip_boxes_graph(boxes, window):
    """Clip [..., 4] boxes to window [4] or broadcastable [..., 4] (y1, x1, y2, x2)."""
    import tensorflow as tf

    wy1, wx1, wy2, wx2 = tf.unstack(tf.cast(window, boxes.dtype), axis=-1)
    if len(wy1.shape) > 0:
        wy1, wx1, wy2, wx2 = (tf.expand_dims(v, -1) for v in (wy1, wx1, wy2, wx2))
    y1, x1, y2, x2 = tf.unstack(boxes, axis=-1)
    y1 = tf.clip_by_value(y1, wy1, wy2) if len(wy1.shape) == 0 else tf.minimum(tf.maximum(y1, wy1), wy2)
    x1 = tf.clip_by_value(x1, wx1, wx2) if len(wx1.shape) == 0 else tf.minimum(tf.maximum(x1, wx1), wx2)
    y2 = tf.clip_by_value(y2, wy1, wy2) if len(wy1.shape) == 0 else tf.minimum(tf.maximum(y2, wy1), wy2)
    x2 = tf.clip_by_value(x2, wx1, wx2) if len(wx1.shape) == 0 else tf.minimum(tf.maximum(x2, wx1), wx2)
    return tf.stack([y1, x1, y2, x2], axis=-1)


def norm_boxes(boxes, shape):
    """Pixel boxes → normalised float32 (matterport: (y2, x2) exclusive map to 1.0 at h-1+1), computed in
    float64 as matterport's NumPy does."""
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1], dtype=np.float64)
    shift = np.array([0, 0, 1, 1], dtype=np.float64)
    return ((np.asarray(boxes, dtype=np.float64) - shift) / scale).astype(np.float32)


def denorm_boxes(boxes, shape):
    """Normalised boxes → int32 pixel boxes, rounded in float64 as matterport's NumPy does."""
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1], dtype=np.float64)
    shift = np.array([0, 0, 1, 1], dtype=np.float64)
    return np.around(np.asarray(boxes, dtype=np.float64) * scale + shift).astype(np.int32)


def norm_boxes_graph(boxes, shape):
    """boxes [..., 4] pixels; shape: tensor (h, w)."""
    import tensorflow as tf

    h = tf.cast(shape[0], tf.float32)
    w = tf.cast(shape[1], tf.float32)
    scale = tf.stack([h - 1.0, w - 1.0, h - 1.0, w - 1.0])
    shift = tf.constant([0.0, 0.0, 1.0, 1.0])
    return (tf.cast(boxes, tf.float32) - shift) / scale


def overlaps_graph(boxes1, boxes2):
    """IoU [N1, N2] in TensorFlow."""
    import tensorflow as tf

    b1 = tf.expand_dims(boxes1, 1)
    b2 = tf.expand_dims(boxes2, 0)
    y1 = tf.maximum(b1[..., 0], b2[..., 0])
    x1 = tf.maximum(b1[..., 1], b2[..., 1])
    y2 = tf.minimum(b1[..., 2], b2[..., 2])
    x2 = tf.minimum(b1[..., 3], b2[..., 3])
    inter = tf.maximum(y2 - y1, 0.0) * tf.maximum(x2 - x1, 0.0)
    a1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    a2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    union = a1 + a2 - inter
    return tf.math.divide_no_nan(inter, union)
