"""Mask R-CNN numerics: matterport's resizing on request, and detections that do not depend on the batch size."""

import numpy as np
import pytest

from streamer.models import ModelConfig
from workers.maskrcnn.image import paste_masks, resize_image
from workers.maskrcnn.reference import bilinear_zero
from workers.maskrcnn.shapes import render


@pytest.mark.parametrize("size", [(120, 160), (37, 53), (300, 200)])
def test_matterport_resize_matches_its_semantics(size):
    rng = np.random.default_rng(sum(size))
    image = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    image[size[0] // 3 :, : size[1] // 2] = 200  # flat areas and edges, not only noise
    resized, window, scale, _, _ = resize_image(image, min_dim=64, max_dim=128, mode="square", compat="matterport")
    y1, x1, y2, x2 = window
    reference = bilinear_zero(image, y2 - y1, x2 - x1)
    ours = resized[y1:y2, x1:x2].astype(int)
    # truncated as matterport does: equal to floor(reference), or the integer next to it when the reference is
    # that integer up to float rounding (e.g. 199.9999999 for a flat 200 area)
    low, high = np.floor(reference - 1e-6), np.floor(reference + 1e-6)
    assert ((ours >= low) & (ours <= high)).all()
    assert (ours == np.floor(reference)).mean() > 0.99
    # the default (OpenCV area averaging) is a different resize: up to tens of levels apart at edges
    default, *_ = resize_image(image, min_dim=64, max_dim=128, mode="square")
    assert np.abs(default[y1:y2, x1:x2].astype(int) - np.floor(reference)).max() > 10


def test_matterport_mask_pasting_matches_its_semantics():
    rng = np.random.default_rng(3)
    soft = rng.uniform(0.3, 1.0, (28, 28)).astype(np.float32)
    soft[:, :4] = 0.1
    boxes = np.array([[10, 12, 50, 47], [0, 0, 40, 33]], np.int32)
    masks = np.stack([soft, soft[::-1]])
    ours = paste_masks(masks, boxes, (64, 64), compat="matterport")
    default = paste_masks(masks, boxes, (64, 64))
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        reference = np.zeros((64, 64), bool)
        reference[y1:y2, x1:x2] = bilinear_zero(masks[i], y2 - y1, x2 - x1) >= 0.5
        np.testing.assert_array_equal(ours[..., i], reference)
        # OpenCV's pasting keeps the box's edge pixels: a superset of matterport's mask
        assert (default[..., i] | ours[..., i] == default[..., i]).all()
        assert default[..., i].sum() > ours[..., i].sum()


def test_roi_align_at_the_image_border_is_continuous():
    import tensorflow as tf

    from workers.maskrcnn.roi_align import roi_align_flat

    rng = np.random.default_rng(0)
    maps = [tf.constant(rng.uniform(1, 2, (1, s, s, 4)).astype(np.float32)) for s in (32, 16, 8, 4)]
    exact = tf.constant([[0.5, 0.6, 1.0, 1.0]])
    shifted = exact + tf.constant([[0.0, 0.0, 3e-6, 3e-6]])
    a, b = (roi_align_flat(box, tf.constant([0]), maps, 7, tf.constant([128, 128])).numpy() for box in (exact, shifted))
    assert a.min() >= 1.0 and b.min() >= 1.0  # no zeros read from beyond the last column
    np.testing.assert_allclose(a, b, atol=1e-4)


def border_frames():
    """Squares touching each border, and a circle in the middle."""
    frames = []
    for i, (x, y) in enumerate([(14, 60), (114, 60), (60, 12), (64, 114), (0, 0), (127, 127)]):
        background = (40 + 20 * i, 90, 160 - 10 * i)
        shapes = [("square", (250, 30, 30), (x, y, 20)), ("circle", (30, 30, 250), (64, 64, 15))]
        frames.append(render(128, 128, background, shapes)[0])
    return np.stack(frames + frames[:2])


def test_detections_do_not_depend_on_the_batch_size():
    from workers.maskrcnn.predictor import MaskRCNNPredictor

    frames = border_frames()
    results = {}
    for batch in (1, 4):
        predictor = MaskRCNNPredictor(ModelConfig(name="maskrcnn", batch_size=batch))
        results[batch] = predictor.predict(frames)
    for one, four in zip(results[1], results[4]):
        assert len(one.class_ids) >= 1
        np.testing.assert_array_equal(one.class_ids, four.class_ids)
        np.testing.assert_array_equal(one.boxes, four.boxes)
        np.testing.assert_allclose(one.scores, four.scores, atol=1e-4)
        assert (one.masks != four.masks).mean() < 1e-3
