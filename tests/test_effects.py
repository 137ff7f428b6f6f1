"""Effects on a known frame and mask: exact pixel values."""

import numpy as np

from streamer.effects import EffectConfig, mask, overlay, splash
from streamer.prediction import Prediction


def known():
    frame = np.zeros((4, 6, 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = 200, 100, 40
    semantic = np.zeros((4, 6), np.uint8)
    semantic[1:3, 2:5] = 1
    return frame, Prediction(semantic=semantic), semantic.astype(bool)


def test_overlay_blends_colour_inside_and_keeps_outside():
    frame, prediction, where = known()
    out = overlay(frame, prediction, EffectConfig(color=(0, 0, 255), alpha=0.25))
    assert (out[where] == [150, 75, 94]).all()  # 0.75·frame + 0.25·colour, rounded
    assert (out[~where] == frame[~where]).all()


def test_mask_is_white_on_black():
    frame, prediction, where = known()
    out = mask(frame, prediction, EffectConfig())
    assert (out[where] == 255).all() and (out[~where] == 0).all()


def test_splash_keeps_colour_inside_and_greys_outside():
    frame, prediction, where = known()
    out = splash(frame, prediction, EffectConfig())
    assert (out[where] == frame[where]).all()
    outside = out[~where]
    assert (outside[:, 0] == outside[:, 1]).all() and (outside[:, 1] == outside[:, 2]).all()
    assert abs(int(outside[0, 0]) - round(0.299 * 200 + 0.587 * 100 + 0.114 * 40)) <= 1


def test_instances_count_as_foreground():
    masks = np.zeros((4, 6, 2), bool)
    masks[0, 0, 0] = masks[3, 5, 1] = True
    assert Prediction(masks=masks).foreground().sum() == 2


def test_foreground_is_the_union_of_instances_with_and_without_boxes():
    rng = np.random.default_rng(3)
    masks = np.zeros((30, 40, 3), bool)
    boxes = np.array([[2, 3, 12, 20], [8, 10, 25, 38], [0, 0, 30, 40]], np.int32)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = rng.random((y2 - y1, x2 - x1)) > 0.5  # overlapping instances
    expected = masks.any(axis=-1)
    assert (Prediction(masks=masks).foreground() == expected).all()
    assert (Prediction(masks=masks, boxes=boxes).foreground() == expected).all()
    assert not Prediction(masks=np.zeros((30, 40, 0), bool), boxes=np.zeros((0, 4), np.int32)).foreground().any()
