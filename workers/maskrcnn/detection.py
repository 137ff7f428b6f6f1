"""Detection layer: class-specific box refinement, confidence filter, per-class NMS, top-K."""

from __future__ import annotations

import tensorflow as tf

from .boxes import apply_box_deltas_graph, clip_boxes_graph


def detection_layer(rois, probs, deltas, windows, config):
    """rois [B,N,4] normalised, probs [B,N,C], deltas [B,N,C,4], windows [B,4] normalised →
    detections [B, DETECTION_MAX_INSTANCES, 6] (y1, x1, y2, x2, class_id, score), zero-padded,
    best score first."""
    num_classes = int(config.NUM_CLASSES)
    limit = int(config.DETECTION_MAX_INSTANCES)
    class_ids = tf.argmax(probs, axis=-1, output_type=tf.int32)
    scores = tf.reduce_max(probs, axis=-1)
    specific = tf.gather(deltas, class_ids, batch_dims=2) * tf.constant(config.BBOX_STD_DEV, tf.float32)
    boxes = apply_box_deltas_graph(rois, specific)
    boxes = clip_boxes_graph(boxes, windows)
    real = tf.cast((rois[..., 2] - rois[..., 0]) * (rois[..., 3] - rois[..., 1]) > 0, tf.float32)
    class_scores = tf.one_hot(class_ids, num_classes) * (scores * real)[..., None]
    nmsed_boxes, nmsed_scores, nmsed_classes, valid = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :],
        class_scores[:, :, 1:],
        max_output_size_per_class=limit,
        max_total_size=limit,
        iou_threshold=float(config.DETECTION_NMS_THRESHOLD),
        score_threshold=float(config.DETECTION_MIN_CONFIDENCE),
        pad_per_class=False,
        clip_boxes=False,
    )
    present = tf.sequence_mask(valid, limit, dtype=tf.float32)
    classes = (nmsed_classes + 1.0) * present
    return tf.concat([nmsed_boxes * present[..., None], classes[..., None], (nmsed_scores * present)[..., None]], -1)
