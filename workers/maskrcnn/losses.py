"""The five Mask R-CNN losses (matterport's definitions)."""

from __future__ import annotations

import tensorflow as tf


def smooth_l1(y_true, y_pred):
    diff = tf.abs(y_true - y_pred)
    return tf.where(diff < 1.0, 0.5 * diff**2, diff - 0.5)


def _mean(values):
    return tf.math.divide_no_nan(tf.reduce_sum(values), tf.cast(tf.size(values), tf.float32))


def rpn_class_loss(rpn_match, rpn_class_logits):
    """rpn_match [B,A] (1/-1/0); logits [B,A,2]. Cross-entropy over non-neutral anchors."""
    indices = tf.where(tf.not_equal(rpn_match, 0))
    labels = tf.cast(tf.equal(tf.gather_nd(rpn_match, indices), 1), tf.int32)
    logits = tf.gather_nd(rpn_class_logits, indices)
    return _mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def rpn_bbox_loss(rpn_bbox, rpn_match, rpn_deltas):
    """Dense targets rpn_bbox [B,A,4]; smooth L1 on positive anchors."""
    indices = tf.where(tf.equal(rpn_match, 1))
    return _mean(smooth_l1(tf.gather_nd(rpn_bbox, indices), tf.gather_nd(rpn_deltas, indices)))


def mrcnn_class_loss(target_class_ids, class_logits, valid):
    """target ids [B,R]; logits [B,R,C]; valid [B,R] bool (non-padding rois)."""
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target_class_ids, logits=class_logits)
    weight = tf.cast(valid, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(loss * weight), tf.reduce_sum(weight))


def mrcnn_bbox_loss(target_deltas, target_class_ids, pred_deltas):
    """target deltas [B,R,4]; pred [B,R,C,4]; only positive rois, their own class."""
    indices = tf.where(target_class_ids > 0)
    classes = tf.gather_nd(target_class_ids, indices)
    pred = tf.gather(tf.gather_nd(pred_deltas, indices), classes, batch_dims=1)
    return _mean(smooth_l1(tf.gather_nd(target_deltas, indices), pred))


def mrcnn_mask_loss(target_masks, target_class_ids, pred_masks):
    """target masks [B,R,h,w]; pred [B,R,h,w,C] probabilities; positives only, their class."""
    indices = tf.where(target_class_ids > 0)
    classes = tf.gather_nd(target_class_ids, indices)
    pred = tf.gather_nd(pred_masks, indices)  # [K,h,w,C]
    pred = tf.gather(tf.transpose(pred, [0, 3, 1, 2]), classes, batch_dims=1)  # [K,h,w]
    target = tf.gather_nd(target_masks, indices)
    pred = tf.clip_by_value(pred, 1e-7, 1.0 - 1e-7)
    bce = -(target * tf.math.log(pred) + (1.0 - target) * tf.math.log(1.0 - pred))
    return _mean(bce)
