"""Pyramid ROI Align: each box is pooled from the FPN level that fits its size (matterport's rule).

Two ways to treat the map's edge (`edge`):

* "replicate" (default): the feature map's edge is copied one pixel outward. crop_and_resize samples a box
  touching the image border at exactly the map's last row or column, and in float32 that sample lands a
  rounding error past it for some 5–8 % of such boxes, where crop_and_resize reads zeros: which boxes lose a
  row then depends on the last bit of their coordinates. With the edge replicated such a sample reads the
  edge value, so a box's pooled values are continuous in its coordinates.
* "zero": matterport's (tf.image.crop_and_resize on the unpadded map, samples outside it read 0), rounding
  included: the same box gives matterport's pooled values to the bit.
"""

from __future__ import annotations

import tensorflow as tf

EDGES = ("replicate", "zero")


def roi_levels(boxes, image_shape):
    """boxes [B,N,4] normalised; image_shape (h, w) of the molded image → level 2..5 per box."""
    h = boxes[..., 2] - boxes[..., 0]
    w = boxes[..., 3] - boxes[..., 1]
    area = tf.cast(image_shape[0] * image_shape[1], tf.float32)
    size = tf.sqrt(tf.maximum(h * w, 1e-12)) / (224.0 / tf.sqrt(area))
    level = 4.0 + tf.round(tf.math.log(size) / tf.math.log(2.0))
    return tf.cast(tf.clip_by_value(level, 2.0, 5.0), tf.int32)


def edge_maps(feature_maps, edge: str = "replicate"):
    """The maps roi_align_flat samples for `edge`: "replicate" pads each with its edge one pixel all round
    (inside the map the sampling points stay the same); "zero" leaves them as they are."""
    if edge not in EDGES:
        raise ValueError(f"ROI Align edge {edge!r}: choose one of {', '.join(EDGES)}")
    maps = [tf.cast(m, tf.float32) for m in feature_maps]
    if edge == "zero":
        return maps
    return [tf.pad(m, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC") for m in maps]


def roi_align_flat(boxes, box_indices, feature_maps, pool_size: int, image_shape, sampled=None, edge="replicate"):
    """boxes [K,4] normalised with their image index box_indices [K] → pooled [K,pool,pool,C].
    `sampled`: edge_maps(feature_maps, edge), when already made (several heads sample the same maps)."""
    boxes = tf.stop_gradient(tf.cast(boxes, tf.float32))
    box_indices = tf.cast(box_indices, tf.int32)
    levels = roi_levels(boxes, image_shape)
    maps = edge_maps(feature_maps, edge) if sampled is None else sampled
    pad = 0.0 if edge == "zero" else 1.0
    pooled, where = [], []
    for level, feature_map, sampled_map in zip(range(2, 6), feature_maps, maps):
        ix = tf.where(tf.equal(levels, level))[:, 0]
        level_boxes = tf.gather(boxes, ix)
        if pad:  # the same points on the padded map
            size = tf.cast(tf.shape(feature_map)[1:3], tf.float32)
            scale = tf.concat([size - 1.0, size - 1.0], axis=0)
            level_boxes = (level_boxes * scale + pad) / tf.concat([size + 1.0, size + 1.0], axis=0)
        pooled.append(
            tf.image.crop_and_resize(sampled_map, level_boxes, tf.gather(box_indices, ix), [pool_size, pool_size])
        )
        where.append(ix)
    pooled = tf.concat(pooled, axis=0)
    # Back to the boxes' order: `where` is a permutation, so a gather by its inverse does it
    # (several times faster on CPU than scatter_nd).
    out = tf.gather(pooled, tf.math.invert_permutation(tf.concat(where, axis=0)))
    return tf.ensure_shape(out, [None, pool_size, pool_size, feature_maps[0].shape[-1]])


def pyramid_roi_align(boxes, feature_maps, pool_size: int, image_shape, edge="replicate"):
    """boxes [B,N,4] normalised; feature_maps [P2..P5] → pooled [B,N,pool,pool,C] (bilinear)."""
    batch = tf.shape(boxes)[0]
    count = tf.shape(boxes)[1]
    flat = tf.reshape(boxes, [-1, 4])
    indices = tf.repeat(tf.range(batch), count)
    out = roi_align_flat(flat, indices, feature_maps, pool_size, image_shape, edge=edge)
    return tf.reshape(out, tf.concat([[batch, count], tf.shape(out)[1:]], axis=0))
