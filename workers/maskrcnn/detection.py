"""Detection layer: class-specific box refinement, confidence filter, per-class NMS, top-K."""

from __future__ import annotations

import tensorflow as tf

from .boxes import MATTERPORT_DELTA_LIMIT, apply_box_deltas_graph, clip_boxes_graph


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


def matterport_detection_layer(rois, probs, deltas, windows, config):
    """detection_layer as matterport's DetectionLayer computes it, for RESIZE_COMPAT "matterport": the same
    rows in the same order. Per image: every ROI's best class and its refined, clipped box; the ROIs of a
    foreground class scoring at least DETECTION_MIN_CONFIDENCE (zero-area padding ROIs included; box deltas
    clamped only where matterport's overflow); greedy NMS
    per class; the survivors best score first (ties: the earlier ROI first); zero-padded to
    DETECTION_MAX_INSTANCES rows."""
    limit = int(config.DETECTION_MAX_INSTANCES)
    std = tf.constant(config.BBOX_STD_DEV, tf.float32)
    classes = tf.range(1, int(config.NUM_CLASSES))

    def image(args):
        rois, probs, deltas, window = args
        class_ids = tf.argmax(probs, axis=-1, output_type=tf.int32)
        scores = tf.reduce_max(probs, axis=-1)
        specific = tf.gather(deltas, class_ids, batch_dims=1) * std
        boxes = clip_boxes_graph(apply_box_deltas_graph(rois, specific, MATTERPORT_DELTA_LIMIT), window)
        keep = tf.where((class_ids > 0) & (scores >= float(config.DETECTION_MIN_CONFIDENCE)))[:, 0]
        kept_ids, kept_scores, kept_boxes = (tf.gather(t, keep) for t in (class_ids, scores, boxes))

        def per_class(class_id):
            ixs = tf.where(tf.equal(kept_ids, class_id))[:, 0]
            chosen = tf.image.non_max_suppression(
                tf.gather(kept_boxes, ixs),
                tf.gather(kept_scores, ixs),
                limit,
                iou_threshold=float(config.DETECTION_NMS_THRESHOLD),
            )
            chosen = tf.gather(ixs, chosen)
            return tf.pad(chosen, [[0, limit - tf.shape(chosen)[0]]], constant_values=-1)

        chosen = tf.reshape(tf.map_fn(per_class, classes, fn_output_signature=tf.int64), [-1])
        chosen = tf.sort(tf.boolean_mask(chosen, chosen >= 0))  # positions in `keep`, in ROI order
        best = tf.math.top_k(tf.gather(kept_scores, chosen), tf.minimum(tf.shape(chosen)[0], limit), sorted=True)
        rows = tf.gather(chosen, best.indices)
        found = tf.concat(
            [
                tf.gather(kept_boxes, rows),
                tf.cast(tf.gather(kept_ids, rows), tf.float32)[:, None],
                tf.gather(kept_scores, rows)[:, None],
            ],
            axis=1,
        )
        return tf.pad(found, [[0, limit - tf.shape(found)[0]], [0, 0]])

    return tf.map_fn(
        image,
        (rois, probs, deltas, tf.cast(windows, tf.float32)),
        fn_output_signature=tf.TensorSpec([limit, 6], tf.float32),
    )


def detections(rois, probs, deltas, windows, config):
    """The detection layer the config asks for: matterport's with RESIZE_COMPAT "matterport", else ours."""
    layer = matterport_detection_layer if config.matterport_numerics else detection_layer
    return layer(rois, probs, deltas, windows, config)
