"""Mask R-CNN building blocks: anchors, box deltas, NMS, ROI Align, mask paste, AP metrics."""

import numpy as np
import pytest
import tensorflow as tf

from workers.maskrcnn.anchors import anchor_count, get_anchors
from workers.maskrcnn.boxes import (
    apply_box_deltas,
    apply_box_deltas_graph,
    box_refinement,
    box_refinement_graph,
    non_max_suppression,
)
from workers.maskrcnn.config import shapes_config
from workers.maskrcnn.evaluate import compute_ap, pycocotools_mask_ap
from workers.maskrcnn.image import expand_mask, minimize_mask, paste_masks
from workers.maskrcnn.roi_align import pyramid_roi_align, roi_levels


def test_anchor_count_and_order():
    config = shapes_config()  # 128×128, strides 4..64, scales 8..128, ratios 0.5/1/2
    anchors = get_anchors(config, (128, 128), normalized=False)
    assert anchors.shape == (3 * (32 * 32 + 16 * 16 + 8 * 8 + 4 * 4 + 2 * 2), 4) == (4092, 4)
    assert anchor_count(config, (128, 128)) == 4092
    # First level, first cell (0, 0): ratios 0.5, 1, 2 (width/height) of a side-8 square.
    r = np.sqrt(2.0)
    expected = [
        [-8 * r / 2, -8 / r / 2, 8 * r / 2, 8 / r / 2],
        [-4, -4, 4, 4],
        [-8 / r / 2, -8 * r / 2, 8 / r / 2, 8 * r / 2],
    ]
    np.testing.assert_allclose(anchors[:3], expected, atol=1e-5)
    # Then the next column (x = stride 4), then after 32 columns the next row (y = 4).
    np.testing.assert_allclose(anchors[3 + 1], [-4, 0, 4, 8], atol=1e-5)
    np.testing.assert_allclose(anchors[3 * 32 + 1], [0, -4, 8, 4], atol=1e-5)
    # Second level starts after 3·32·32 anchors with scale 16 at stride 8.
    np.testing.assert_allclose(anchors[3 * 1024 + 1], [-8, -8, 8, 8], atol=1e-5)
    np.testing.assert_allclose(anchors[-2], [64 - 64, 64 - 64, 64 + 64, 64 + 64], atol=1e-5)
    # anchor stride 2 keeps every other cell
    config2 = shapes_config(RPN_ANCHOR_STRIDE=2)
    assert anchor_count(config2, (128, 128)) == 3 * (16 * 16 + 8 * 8 + 4 * 4 + 2 * 2 + 1)


def test_box_deltas_round_trip():
    rng = np.random.default_rng(0)
    y1x1 = rng.uniform(0, 50, (20, 2))
    boxes = np.concatenate([y1x1, y1x1 + rng.uniform(5, 40, (20, 2))], 1).astype(np.float32)
    gy1x1 = rng.uniform(0, 50, (20, 2))
    gt = np.concatenate([gy1x1, gy1x1 + rng.uniform(5, 40, (20, 2))], 1).astype(np.float32)
    deltas = box_refinement(boxes, gt)
    np.testing.assert_allclose(apply_box_deltas(boxes, deltas), gt, rtol=1e-4, atol=1e-3)
    d_tf = box_refinement_graph(tf.constant(boxes), tf.constant(gt)).numpy()
    np.testing.assert_allclose(d_tf, deltas, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(apply_box_deltas_graph(tf.constant(boxes), tf.constant(deltas)).numpy(), gt, atol=1e-3)


def test_nms_matches_tensorflow():
    rng = np.random.default_rng(1)
    y1x1 = rng.uniform(0, 80, (200, 2))
    boxes = np.concatenate([y1x1, y1x1 + rng.uniform(4, 30, (200, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 200).astype(np.float32)
    for threshold in (0.3, 0.5, 0.7):
        ours = non_max_suppression(boxes, scores, threshold, max_output=50)
        theirs = tf.image.non_max_suppression(boxes, scores, 50, iou_threshold=threshold).numpy()
        np.testing.assert_array_equal(ours, theirs)


def test_roi_align_hand_computed():
    # Feature maps whose value is the linear ramp f(y, x) = 10·y + x: bilinear sampling is exact.
    def ramp(size):
        y, x = np.mgrid[0:size, 0:size].astype(np.float32)
        return tf.constant((10 * y + x)[None, :, :, None])

    maps = [ramp(32), ramp(16), ramp(8), ramp(4)]  # P2..P5 of a 128×128 image
    small = [0.25, 0.25, 0.75, 0.75]  # normalised 0.5×0.5 box → level 2
    whole = [0.0, 0.0, 1.0, 1.0]  # → level 3
    boxes = tf.constant([[small, whole]], tf.float32)
    np.testing.assert_array_equal(roi_levels(boxes, (128, 128)).numpy(), [[2, 3]])
    pooled = pyramid_roi_align(boxes, maps, 2, (128, 128)).numpy()
    assert pooled.shape == (1, 2, 2, 2, 1)
    # crop_and_resize samples y = y1·(H−1) + i·(y2−y1)(H−1)/(crop−1)
    ys = np.array([0.25 * 31, 0.75 * 31])
    expected_small = 10 * ys[:, None] + ys[None, :]
    np.testing.assert_allclose(pooled[0, 0, :, :, 0], expected_small, rtol=1e-5)
    expected_whole = 10 * np.array([0, 15])[:, None] + np.array([0, 15])[None, :]
    np.testing.assert_allclose(pooled[0, 1, :, :, 0], expected_whole, rtol=1e-5)


def test_paste_mask_into_known_box():
    masks = np.ones((1, 28, 28), np.float32)
    out = paste_masks(masks, np.array([[10, 20, 30, 50]]), (64, 80))
    assert out.shape == (64, 80, 1) and out.dtype == bool
    expected = np.zeros((64, 80), bool)
    expected[10:30, 20:50] = True
    np.testing.assert_array_equal(out[:, :, 0], expected)
    # A box partly outside the frame is clipped; a left-half mask stays on the left.
    half = np.zeros((1, 28, 28), np.float32)
    half[:, :, :14] = 1
    out = paste_masks(half, np.array([[-10, -10, 18, 18]]), (64, 80))
    assert out[0, 0, 0] and out[0:18, 0:4, 0].all() and not out[:, 4:, 0].any()
    # mini-mask round trip
    full = np.zeros((40, 40, 1), bool)
    full[5:25, 10:30] = True
    box = np.array([[5, 10, 25, 30]])
    np.testing.assert_array_equal(expand_mask(box, minimize_mask(box, full, (8, 8)), (40, 40)), full)


def _masks(h, w, rects):
    out = np.zeros((h, w, len(rects)), bool)
    for i, (y1, x1, y2, x2) in enumerate(rects):
        out[y1:y2, x1:x2, i] = True
    return out


def test_compute_ap_hand_cases():
    gt = _masks(40, 40, [(0, 0, 10, 10), (20, 20, 30, 30)])
    gt_ids = np.array([1, 1])
    boxes = np.zeros((2, 4))
    # perfect
    ap, *_ = compute_ap(boxes, gt_ids, gt, boxes, np.array([1, 1]), np.array([0.9, 0.8]), gt)
    assert ap == pytest.approx(1.0)
    # only one of the two found → recall 0.5 at precision 1
    ap, *_ = compute_ap(boxes, gt_ids, gt, boxes[:1], np.array([1]), np.array([0.9]), gt[:, :, :1])
    assert ap == pytest.approx(0.5)
    # a false positive scored above both true positives: precisions 0, 1/2, 2/3 → AP = 2/3
    fp = _masks(40, 40, [(0, 30, 5, 40)])
    preds = np.concatenate([fp, gt], axis=2)
    ap, precisions, recalls, _ = compute_ap(
        boxes, gt_ids, gt, np.zeros((3, 4)), np.array([1, 1, 1]), np.array([0.95, 0.9, 0.8]), preds
    )
    assert ap == pytest.approx(2 / 3)
    # right place, wrong class → no match
    ap, *_ = compute_ap(boxes, gt_ids, gt, boxes, np.array([2, 2]), np.array([0.9, 0.8]), gt)
    assert ap == pytest.approx(0.0)
    # IoU just below 0.5 does not count: 10×10 GT vs 10×5 prediction → IoU 0.5 counts, 10×4 (0.4) not
    ap, *_ = compute_ap(
        boxes[:1], gt_ids[:1], gt[:, :, :1], boxes[:1], np.array([1]), np.array([0.9]), _masks(40, 40, [(0, 0, 10, 5)])
    )
    assert ap == pytest.approx(1.0)
    ap, *_ = compute_ap(
        boxes[:1], gt_ids[:1], gt[:, :, :1], boxes[:1], np.array([1]), np.array([0.9]), _masks(40, 40, [(0, 0, 10, 4)])
    )
    assert ap == pytest.approx(0.0)


def test_pycocotools_mask_ap_hand_cases():
    gt = _masks(40, 40, [(0, 0, 10, 10), (20, 20, 30, 30)])

    def image(pred_masks, pred_class_ids, pred_scores, crowd=(False, False)):
        return {
            "gt_masks": gt,
            "gt_class_ids": np.array([1, 2]),
            "gt_crowd": np.array(crowd),
            "pred_masks": pred_masks,
            "pred_class_ids": np.array(pred_class_ids),
            "pred_scores": np.array(pred_scores, float),
        }

    perfect = pycocotools_mask_ap([image(gt, [1, 2], [0.9, 0.8])])
    assert perfect == {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0), "AP75": pytest.approx(1.0)}
    assert pycocotools_mask_ap([image(np.zeros((40, 40, 0), bool), [], [])]) == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    # class 1 found with mask IoU 0.6 (10×6 of 10×10), class 2 perfectly: AP50 1; AP75 counts only class 2
    partial = np.concatenate([_masks(40, 40, [(0, 0, 10, 6)]), gt[:, :, 1:]], axis=2)
    result = pycocotools_mask_ap([image(partial, [1, 2], [0.9, 0.8])])
    assert result["AP50"] == pytest.approx(1.0) and result["AP75"] == pytest.approx(0.5)
    assert 0.5 < result["AP"] < 1.0
    # a crowd region is neither missed nor a false positive when something lands on it
    crowd = pycocotools_mask_ap([image(gt[:, :, :1], [1], [0.9], crowd=(False, True))])
    assert crowd["AP"] == pytest.approx(1.0)
