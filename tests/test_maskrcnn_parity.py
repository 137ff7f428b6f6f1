"""matterport parity: with RESIZE_COMPAT "matterport" (the default for matterport's files) every stage gives what
matterport's semantics give (workers/maskrcnn/reference.py, NumPy, written from them), and the detections do
not depend on the batch size."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from maskrcnn_helpers import write_keras2

from streamer.models import ModelConfig
from workers.maskrcnn import reference as ref
from workers.maskrcnn.config import shapes_config
from workers.maskrcnn.detection import matterport_detection_layer
from workers.maskrcnn.parity import compare, match_detections
from workers.maskrcnn.predictor import MaskRCNNPredictor, saved_settings
from workers.maskrcnn.roi_align import roi_align_flat
from workers.maskrcnn.shapes import render
from workers.maskrcnn.weights import DEMO_WEIGHTS
from workers.unet.synthetic import RoadScene


def frames():
    """Shapes touching the borders (128 × 128), a road scene (203 × 97: odd, wider than 2:1) and shapes on a
    portrait frame (150 × 210)."""
    square = [("square", (250, 30, 30), (114, 60, 20)), ("circle", (30, 30, 250), (64, 64, 15))]
    road, _ = RoadScene.random(np.random.default_rng(5)).render(97, 203, t=1.0)
    tall = [("triangle", (240, 240, 40), (75, 30, 28)), ("square", (40, 200, 40), (20, 190, 19))]
    return [render(128, 128, (60, 90, 150), square)[0], road, render(210, 150, (120, 60, 60), tall)[0]]


@pytest.fixture(scope="module")
def matterport_file(tmp_path_factory):
    """The demo model's weights in matterport's Keras 2 layout (no saved config), and the settings a user of
    that model passes with --set."""
    from workers.maskrcnn.model import MaskRCNN

    config = saved_settings(DEMO_WEIGHTS)
    model = MaskRCNN(config)
    model.load_weights(str(DEMO_WEIGHTS))
    path = tmp_path_factory.mktemp("matterport") / "mask_rcnn_shapes.h5"
    write_keras2(path, model)
    keep = ("BACKBONE_WIDTH", "CLASS_NAMES", "IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "RPN_ANCHOR_SCALES")
    keep += ("POST_NMS_ROIS_INFERENCE", "DETECTION_MAX_INSTANCES", "DETECTION_MIN_CONFIDENCE")
    return str(path), {k: getattr(config, k) for k in keep}


def predictor(path, settings, batch):
    return MaskRCNNPredictor(ModelConfig(name="maskrcnn", weights=path, batch_size=batch, settings=settings))


def test_every_stage_matches_matterport_and_batches_do_not_matter(matterport_file):
    path, settings = matterport_file
    one, four = predictor(path, settings, 1), predictor(path, settings, 4)
    assert one.model.config.RESIZE_COMPAT == "matterport"  # a matterport file gets matterport's numerics
    images = frames()
    square = images[0]  # and flipped: shapes at every border, for a batch of four
    batch = np.stack([square, square[::-1], square[:, ::-1], square[::-1, ::-1]])
    found = 0
    for image in list(batch) + images[1:]:
        stages = compare(one.model, image)
        assert stages["mold"]["max_abs"] == 0 and stages["mold"]["window_same"]
        assert stages["anchors"]["max_abs"] == 0
        assert stages["backbone"]["relative"] < 1e-4 and stages["rpn"]["relative"] < 1e-4
        assert stages["proposals"]["same"] == stages["proposals"]["rows"] > 0
        assert stages["roi_align"]["relative"] == 0  # crop_and_resize to the bit, zeros past the edge included
        assert stages["classifier"]["probs_max_abs"] < 1e-5 and stages["classifier"]["deltas_relative"] < 1e-4
        assert stages["detection_layer"]["same"] == stages["detection_layer"]["rows"]
        assert stages["mask_head"]["max_abs"] < 1e-4
        unmold, end = stages["unmold"], stages["end_to_end"]
        assert unmold["same"] == unmold["ours"] == unmold["theirs"] and unmold["mask_iou"] == 1.0
        assert end["same"] == end["ours"] == end["theirs"] and end["score"] < 1e-4 and end["mask_iou"] >= 0.99
        found += end["same"]
    # the four frames in one batch give what each gives alone, which is the reference's (above)
    for batched, frame in zip(four.predict(batch), batch):
        single = one.model.detect([frame])[0]
        assert len(single["class_ids"]) >= 2
        np.testing.assert_array_equal(batched.boxes, single["rois"])
        np.testing.assert_array_equal(batched.class_ids, single["class_ids"])
        np.testing.assert_allclose(batched.scores, single["scores"], atol=1e-6)
        np.testing.assert_array_equal(batched.masks, single["masks"])
    assert found >= 3


def test_default_mode_differs_from_matterport_only_in_resizing_pasting_and_the_edge(matterport_file):
    path, settings = matterport_file
    model = predictor(path, {**settings, "RESIZE_COMPAT": "opencv"}, 1).model
    stages = compare(model, frames()[0])
    assert "mold" not in stages  # OpenCV's resize: compared in test_maskrcnn_numerics
    assert stages["proposals"]["same"] == stages["proposals"]["rows"]
    assert stages["roi_align"]["rois_differing"] == 0 and stages["roi_align"]["relative"] < 1e-4
    assert stages["detection_layer"]["same"] == stages["detection_layer"]["rows"] > 0
    end = stages["end_to_end"]
    assert end["same"] == end["ours"] == end["theirs"] and end["score"] < 1e-4
    assert 0.95 <= end["mask_iou"] < 1.0  # OpenCV's pasting keeps a box's edge pixels


def test_zero_edge_roi_align_is_crop_and_resize_to_the_bit():
    rng = np.random.default_rng(4)
    maps = [rng.uniform(1, 2, (1, s, s, 3)).astype(np.float32) for s in (32, 16, 8, 4)]
    y1x1 = rng.uniform(0, 0.9, (400, 2)).astype(np.float32)
    boxes = np.concatenate([y1x1, np.ones_like(y1x1)], axis=1)  # every box touches the bottom-right border
    ours = roi_align_flat(tf.constant(boxes), tf.zeros([400], tf.int32), maps, 7, (128, 128), edge="zero").numpy()
    theirs = ref.roi_align(boxes, [m[0] for m in maps], 7, (128, 128))
    np.testing.assert_array_equal(ours, theirs)
    assert (theirs[:, -1] == 0).all(axis=(1, 2)).any()  # some boxes lose their last row to the rounding
    replicated = roi_align_flat(tf.constant(boxes), tf.zeros([400], tf.int32), maps, 7, (128, 128)).numpy()
    assert replicated.min() >= 1.0  # the default reads the edge there


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), rois=st.integers(1, 40), classes=st.integers(2, 5))
def test_matterport_detection_layer_gives_its_rows(seed, rois, classes):
    rng = np.random.default_rng(seed)
    config = shapes_config(NUM_CLASSES=classes, CLASS_NAMES=None, DETECTION_MAX_INSTANCES=8)
    ys, xs = (np.sort(rng.uniform(0, 1, (rois, 2)), axis=1).astype(np.float32) for _ in range(2))
    boxes = np.stack([ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]], axis=1)
    boxes[rng.uniform(size=rois) < 0.2] = 0  # zero-area padding ROIs are classified too
    logits = rng.normal(0, 3, (rois, classes)).astype(np.float32)
    logits[rng.uniform(size=rois) < 0.3, 1] = 200.0  # probability 1.0: scores that tie
    probs = tf.nn.softmax(logits).numpy()
    deltas = rng.normal(0, 1, (rois, classes, 4)).astype(np.float32)
    deltas[rng.uniform(size=rois) < 0.3] *= 40  # boxes grown far past 55-fold, as an untrained model asks
    window = np.array([0.1, 0.0, 0.9, 1.0], np.float32)
    ours = matterport_detection_layer(boxes[None], probs[None], deltas[None], window[None], config).numpy()[0]
    theirs = ref.detection_layer(boxes, probs, deltas, window, config)
    np.testing.assert_array_equal(ours[:, 4:], theirs[:, 4:])  # the same rows in the same order
    np.testing.assert_allclose(ours[:, :4], theirs[:, :4], atol=1e-6)  # exp: TensorFlow's and NumPy's to an ulp


def test_match_detections_counts_what_differs():
    masks = np.zeros((8, 8, 2), bool)
    masks[:4, :4, 0] = masks[4:, 4:, 1] = True
    ours = {
        "rois": np.array([[0, 0, 4, 4], [4, 4, 8, 8]]),
        "class_ids": np.array([1, 2]),
        "scores": np.array([0.9, 0.8]),
    }
    theirs = {**ours, "scores": np.array([0.9, 0.7]), "masks": masks.copy()}
    theirs["masks"][0, 0, 0] = False
    result = match_detections({**ours, "masks": masks}, theirs)
    assert result["same"] == 2 and abs(result["score"] - 0.1) < 1e-9 and result["mask_iou"] == 15 / 16
    moved = {**theirs, "rois": np.array([[0, 0, 4, 4], [4, 4, 8, 7]])}
    assert match_detections({**ours, "masks": masks}, moved)["same"] == 1
