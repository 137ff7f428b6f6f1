"""Training targets: RPN anchor labels (NumPy, per image) and detection targets (TensorFlow graph)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .boxes import box_refinement, box_refinement_graph, compute_overlaps, overlaps_graph


def build_rpn_targets(anchors, gt_class_ids, gt_boxes, config, rng=None):
    """anchors [A,4] px, gt boxes [G,4] px → rpn_match int32 [A] (1 positive, -1 negative, 0 neutral)
    and rpn_bbox float32 [A,4] (deltas / RPN_BBOX_STD_DEV on positives, else 0).

    matterport's rules: IoU ≥ 0.7 positive, < 0.3 negative, each GT's best anchors positive,
    anchors touching crowd boxes (negative class ids) never negative, balanced to
    RPN_TRAIN_ANCHORS_PER_IMAGE with at most half positives."""
    rng = rng or np.random
    count = anchors.shape[0]
    rpn_match = np.zeros([count], dtype=np.int32)
    rpn_bbox = np.zeros([count, 4], dtype=np.float32)
    gt_class_ids = np.asarray(gt_class_ids)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float32).reshape(-1, 4)
    crowd = gt_class_ids < 0
    if crowd.any():
        crowd_iou = compute_overlaps(anchors, gt_boxes[crowd]).max(axis=1)
        no_crowd = crowd_iou < 0.001
        gt_class_ids = gt_class_ids[~crowd]
        gt_boxes = gt_boxes[~crowd]
    else:
        no_crowd = np.ones([count], dtype=bool)
    if len(gt_boxes):
        overlaps = compute_overlaps(anchors, gt_boxes)
        best = overlaps.argmax(axis=1)
        best_iou = overlaps[np.arange(count), best]
        rpn_match[(best_iou < 0.3) & no_crowd] = -1
        per_gt = np.argwhere(overlaps == overlaps.max(axis=0))[:, 0]
        rpn_match[per_gt] = 1
        rpn_match[best_iou >= 0.7] = 1
    else:
        best = np.zeros([count], dtype=np.int64)
        rpn_match[no_crowd] = -1
    half = config.RPN_TRAIN_ANCHORS_PER_IMAGE // 2
    positive = np.flatnonzero(rpn_match == 1)
    if len(positive) > half:
        rpn_match[rng.choice(positive, len(positive) - half, replace=False)] = 0
    positive = np.flatnonzero(rpn_match == 1)
    negative = np.flatnonzero(rpn_match == -1)
    extra = len(negative) - (config.RPN_TRAIN_ANCHORS_PER_IMAGE - len(positive))
    if extra > 0:
        rpn_match[rng.choice(negative, extra, replace=False)] = 0
    if len(positive):
        deltas = box_refinement(anchors[positive], gt_boxes[best[positive]])
        rpn_bbox[positive] = deltas / np.asarray(config.RPN_BBOX_STD_DEV, dtype=np.float32)
    return rpn_match, rpn_bbox


def _trim_zeros(boxes):
    nonzero = tf.reduce_any(tf.not_equal(boxes, 0.0), axis=1)
    return tf.boolean_mask(boxes, nonzero), nonzero


def detection_targets_graph(proposals, gt_class_ids, gt_boxes, gt_masks, config, add_gt_boxes=True):
    """One image. proposals [N,4], gt_boxes [G,4] (normalised, zero-padded), gt_class_ids [G]
    (negative = crowd, 0 = padding), gt_masks [h,w,G] (mini or full, in gt box frame if mini).

    Returns rois [R,4], target class ids [R], target deltas [R,4] (÷ BBOX_STD_DEV) and target
    masks [R, MASK_SHAPE...]; R = TRAIN_ROIS_PER_IMAGE, positives first, zero-padded.
    With add_gt_boxes the ground-truth boxes join the proposals (helps training from scratch)."""
    rois_per_image = int(config.TRAIN_ROIS_PER_IMAGE)
    proposals, _ = _trim_zeros(proposals)
    gt_boxes, nonzero = _trim_zeros(gt_boxes)
    gt_class_ids = tf.boolean_mask(gt_class_ids, nonzero)
    gt_masks = tf.boolean_mask(tf.transpose(gt_masks, [2, 0, 1]), nonzero)  # [G,h,w]
    crowd = gt_class_ids < 0
    crowd_boxes = tf.boolean_mask(gt_boxes, crowd)
    gt_boxes = tf.boolean_mask(gt_boxes, ~crowd)
    gt_class_ids = tf.boolean_mask(gt_class_ids, ~crowd)
    gt_masks = tf.boolean_mask(gt_masks, ~crowd)
    if add_gt_boxes:
        proposals = tf.concat([gt_boxes, proposals], axis=0)
    # A dummy GT that no proposal can match keeps argmax defined when an image has no GT.
    overlaps = tf.concat([overlaps_graph(proposals, gt_boxes), -tf.ones([tf.shape(proposals)[0], 1])], axis=1)
    crowd_iou = tf.concat([overlaps_graph(proposals, crowd_boxes), tf.zeros([tf.shape(proposals)[0], 1])], axis=1)
    no_crowd = tf.reduce_max(crowd_iou, axis=1) < 0.001
    best_iou = tf.reduce_max(overlaps, axis=1)
    positive = tf.where(best_iou >= 0.5)[:, 0]
    negative = tf.where(tf.logical_and(best_iou < 0.5, no_crowd))[:, 0]
    positive_count = int(rois_per_image * config.ROI_POSITIVE_RATIO)
    positive = tf.random.shuffle(positive)[:positive_count]
    npos = tf.shape(positive)[0]
    ratio = 1.0 / config.ROI_POSITIVE_RATIO
    nneg = tf.cast(ratio * tf.cast(npos, tf.float32), tf.int32) - npos
    nneg = tf.maximum(nneg, tf.minimum(rois_per_image - npos, 1 + rois_per_image // 2))
    nneg = tf.minimum(nneg, rois_per_image - npos)
    negative = tf.random.shuffle(negative)[:nneg]
    positive_rois = tf.gather(proposals, positive)
    negative_rois = tf.gather(proposals, negative)
    assignment = tf.argmax(tf.gather(overlaps, positive), axis=1, output_type=tf.int32)
    padded_boxes = tf.concat([gt_boxes, tf.constant([[0.0, 0.0, 1.0, 1.0]])], axis=0)
    padded_ids = tf.concat([gt_class_ids, tf.zeros([1], gt_class_ids.dtype)], axis=0)
    roi_gt_boxes = tf.gather(padded_boxes, assignment)
    roi_gt_class_ids = tf.gather(padded_ids, assignment)
    deltas = box_refinement_graph(positive_rois, roi_gt_boxes) / tf.constant(config.BBOX_STD_DEV, tf.float32)

    masks = tf.cast(gt_masks, tf.float32)[..., None]
    masks = tf.concat([masks, tf.zeros_like(masks[:1])], axis=0)
    boxes = positive_rois
    if config.USE_MINI_MASK:
        y1, x1, y2, x2 = tf.split(positive_rois, 4, axis=1)
        gy1, gx1, gy2, gx2 = tf.split(roi_gt_boxes, 4, axis=1)
        gh = gy2 - gy1
        gw = gx2 - gx1
        boxes = tf.concat([(y1 - gy1) / gh, (x1 - gx1) / gw, (y2 - gy1) / gh, (x2 - gx1) / gw], axis=1)
    target_masks = tf.image.crop_and_resize(masks, boxes, assignment, list(config.MASK_SHAPE))
    target_masks = tf.round(tf.squeeze(target_masks, axis=3))

    rois = tf.concat([positive_rois, negative_rois], axis=0)
    pad = tf.maximum(rois_per_image - tf.shape(rois)[0], 0)
    pad_pos = rois_per_image - npos
    rois = tf.pad(rois, [[0, pad], [0, 0]])
    roi_gt_class_ids = tf.pad(tf.cast(roi_gt_class_ids, tf.int32), [[0, pad_pos]])
    deltas = tf.pad(deltas, [[0, pad_pos], [0, 0]])
    target_masks = tf.pad(target_masks, [[0, pad_pos], [0, 0], [0, 0]])
    mask_h, mask_w = config.MASK_SHAPE
    return (
        tf.reshape(rois, [rois_per_image, 4]),
        tf.reshape(roi_gt_class_ids, [rois_per_image]),
        tf.reshape(deltas, [rois_per_image, 4]),
        tf.reshape(target_masks, [rois_per_image, mask_h, mask_w]),
    )
