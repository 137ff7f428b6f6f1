"""Proposal layer: score-ranked anchors refined by RPN deltas, clipped, then NMS per image."""

from __future__ import annotations

import tensorflow as tf

from .boxes import DELTA_LIMIT, apply_box_deltas_graph, clip_boxes_graph


def proposal_layer(
    probs, deltas, anchors, proposal_count: int, nms_threshold: float, pre_nms_limit: int, std_dev, limit=DELTA_LIMIT
):
    """probs [B,A,2], deltas [B,A,4], anchors [A,4] normalised → proposals [B, proposal_count, 4]
    normalised (y1, x1, y2, x2), best first, zero-padded. `limit`: apply_box_deltas_graph's clamp."""
    scores = probs[:, :, 1]
    deltas = deltas * tf.constant(std_dev, dtype=deltas.dtype, shape=[1, 1, 4])
    k = tf.minimum(pre_nms_limit, tf.shape(anchors)[0])
    top = tf.math.top_k(scores, k, sorted=True).indices
    scores = tf.gather(scores, top, batch_dims=1)
    deltas = tf.gather(deltas, top, batch_dims=1)
    boxes = tf.gather(anchors, top)  # [B,k,4]
    boxes = apply_box_deltas_graph(boxes, deltas, limit)
    boxes = clip_boxes_graph(boxes, tf.constant([0.0, 0.0, 1.0, 1.0]))

    def nms(args):
        b, s = args
        keep = tf.image.non_max_suppression(b, s, proposal_count, iou_threshold=nms_threshold)
        kept = tf.gather(b, keep)
        pad = tf.maximum(proposal_count - tf.shape(kept)[0], 0)
        return tf.reshape(tf.pad(kept, [[0, pad], [0, 0]]), [proposal_count, 4])

    return tf.map_fn(nms, (boxes, scores), fn_output_signature=tf.TensorSpec([proposal_count, 4], tf.float32))
