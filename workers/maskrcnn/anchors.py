"""Pyramid anchors in matterport's order: level by level, then rows, columns, ratios."""

from __future__ import annotations

import math

import numpy as np


def compute_backbone_shapes(config, image_shape) -> np.ndarray:
    """Feature map [h, w] per BACKBONE_STRIDES level for an input image shape."""
    if callable(config.COMPUTE_BACKBONE_SHAPE):
        return np.array(config.COMPUTE_BACKBONE_SHAPE(image_shape))
    return np.array(
        [[int(math.ceil(image_shape[0] / s)), int(math.ceil(image_shape[1] / s))] for s in config.BACKBONE_STRIDES]
    )


def generate_anchors(scale, ratios, shape, feature_stride, anchor_stride) -> np.ndarray:
    """Anchors [N, 4] (y1, x1, y2, x2) in pixels for one level: one square side `scale`,
    each ratio (width/height), centred on every anchor_stride-th feature cell."""
    ratios = np.asarray(ratios, dtype=np.float64)
    heights = scale / np.sqrt(ratios)
    widths = scale * np.sqrt(ratios)
    ys = np.arange(0, shape[0], anchor_stride) * feature_stride
    xs = np.arange(0, shape[1], anchor_stride) * feature_stride
    cy, cx = np.meshgrid(ys, xs, indexing="ij")  # [rows, cols]
    cy = np.repeat(cy.reshape(-1, 1), len(ratios), axis=1).reshape(-1)
    cx = np.repeat(cx.reshape(-1, 1), len(ratios), axis=1).reshape(-1)
    h = np.tile(heights, len(ys) * len(xs))
    w = np.tile(widths, len(ys) * len(xs))
    return np.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], axis=1)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride) -> np.ndarray:
    return np.concatenate(
        [
            generate_anchors(scale, ratios, shape, stride, anchor_stride)
            for scale, shape, stride in zip(scales, feature_shapes, feature_strides)
        ],
        axis=0,
    )


def anchor_count(config, image_shape) -> int:
    per_location = len(config.RPN_ANCHOR_RATIOS)
    total = 0
    for h, w in compute_backbone_shapes(config, image_shape):
        total += math.ceil(h / config.RPN_ANCHOR_STRIDE) * math.ceil(w / config.RPN_ANCHOR_STRIDE) * per_location
    return total


def get_anchors(config, image_shape, normalized: bool = True) -> np.ndarray:
    """All anchors for a molded image shape, normalised to [0, 1] (matterport's norm_boxes) by default."""
    shapes = compute_backbone_shapes(config, image_shape)
    anchors = generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, shapes, config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE
    )
    if not normalized:
        return anchors.astype(np.float32)
    from .boxes import norm_boxes

    return norm_boxes(anchors, image_shape[:2])
