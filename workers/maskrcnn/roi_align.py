"""Pyramid ROI Align: each box is pooled from the FPN level that fits its size (matterport's rule)."""

from __future__ import annotations

import tensorflow as tf


def roi_levels(boxes, image_shape):
    """boxes [B,N,4] normalised; image_shape (h, w) of the molded image → level 2..5 per box."""
    h = boxes[..., 2] - boxes[..., 0]
    w = boxes[..., 3] - boxes[..., 1]
    area = tf.cast(image_shape[0] * image_shape[1], tf.float32)
    size = tf.sqrt(tf.maximum(h * w, 1e-12)) / (224.0 / tf.sqrt(area))
    level = 4.0 + tf.round(tf.math.log(size) / tf.math.log(2.0))
    return tf.cast(tf.clip_by_value(level, 2.0, 5.0), tf.int32)


def pad_feature_maps(feature_maps):
    """The maps with their edge replicated one pixel all round, as roi_align_flat samples them.

    crop_and_resize samples box edges at exactly the map's first and last rows and columns, and a sample a
    rounding error beyond them reads zeros: a box touching the image border could lose its last column
    depending on float noise (which differs with the batch size). With the map's edge replicated one pixel
    all round (and the boxes moved onto the padded map) such a sample reads the edge value instead; inside
    the map the sampling points are the same."""
    return [tf.pad(tf.cast(m, tf.float32), [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC") for m in feature_maps]


def roi_align_flat(boxes, box_indices, feature_maps, pool_size: int, image_shape, padded=None):
    """boxes [K,4] normalised with their image index box_indices [K] → pooled [K,pool,pool,C].
    `padded`: pad_feature_maps(feature_maps), when already made (several heads sample the same maps)."""
    boxes = tf.stop_gradient(tf.cast(boxes, tf.float32))
    box_indices = tf.cast(box_indices, tf.int32)
    levels = roi_levels(boxes, image_shape)
    padded_maps = pad_feature_maps(feature_maps) if padded is None else padded
    pooled, where = [], []
    for level, feature_map, padded in zip(range(2, 6), feature_maps, padded_maps):
        ix = tf.where(tf.equal(levels, level))[:, 0]
        size = tf.cast(tf.shape(feature_map)[1:3], tf.float32)
        scale = tf.concat([size - 1.0, size - 1.0], axis=0)
        level_boxes = (tf.gather(boxes, ix) * scale + 1.0) / tf.concat([size + 1.0, size + 1.0], axis=0)
        pooled.append(tf.image.crop_and_resize(padded, level_boxes, tf.gather(box_indices, ix), [pool_size, pool_size]))
        where.append(ix)
    pooled = tf.concat(pooled, axis=0)
    # Back to the boxes' order: `where` is a permutation, so a gather by its inverse does it
    # (several times faster on CPU than scatter_nd).
    out = tf.gather(pooled, tf.math.invert_permutation(tf.concat(where, axis=0)))
    return tf.ensure_shape(out, [None, pool_size, pool_size, feature_maps[0].shape[-1]])


def pyramid_roi_align(boxes, feature_maps, pool_size: int, image_shape):
    """boxes [B,N,4] normalised; feature_maps [P2..P5] → pooled [B,N,pool,pool,C] (bilinear)."""
    batch = tf.shape(boxes)[0]
    count = tf.shape(boxes)[1]
    flat = tf.reshape(boxes, [-1, 4])
    indices = tf.repeat(tf.range(batch), count)
    out = roi_align_flat(flat, indices, feature_maps, pool_size, image_shape)
    return tf.reshape(out, tf.concat([[batch, count], tf.shape(out)[1:]], axis=0))
