"""Mask R-CNN end to end on tiny configs: detect at original size, training lowers the loss,
the registry predictor, the instances effect, and the shipped demo weights' accuracy."""

import argparse
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from streamer.errors import StreamerError  # noqa: E402
from workers.maskrcnn.config import shapes_config  # noqa: E402
from workers.maskrcnn.model import MaskRCNN  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WEIGHTS_DIR = os.path.join(HERE, "..", "workers", "maskrcnn", "weights")


def tiny(**kw):
    values = dict(BACKBONE_WIDTH=8, TOP_DOWN_PYRAMID_SIZE=16, RPN_CONV_DEPTH=16, FPN_CLASSIF_FC_LAYERS_SIZE=32,
                  MASK_HEAD_DEPTH=8, IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64, IMAGES_PER_GPU=2,
                  POST_NMS_ROIS_TRAINING=64, POST_NMS_ROIS_INFERENCE=32, TRAIN_ROIS_PER_IMAGE=16)  # fmt: skip
    values.update(kw)
    return shapes_config(**values)


def test_detect_returns_masks_at_original_size():
    model = MaskRCNN(tiny(DETECTION_MIN_CONFIDENCE=0.0, DETECTION_MAX_INSTANCES=5))
    images = np.random.default_rng(0).integers(0, 255, (2, 50, 70, 3), dtype=np.uint8)
    results = model.detect(images)
    assert len(results) == 2
    for r in results:
        n = len(r["class_ids"])
        assert r["masks"].shape == (50, 70, n) and r["masks"].dtype == bool
        assert r["rois"].shape == (n, 4) and r["rois"].dtype == np.int32 and r["scores"].shape == (n,)
        if n:
            assert r["rois"][:, [0, 2]].max() <= 50 and r["rois"][:, [1, 3]].max() <= 70 and r["rois"].min() >= 0
            assert set(r["class_ids"].tolist()) <= {1, 2, 3}
    assert model.detect([]) == []


def test_training_steps_lower_the_loss(tmp_path):
    from workers.maskrcnn.anchors import get_anchors
    from workers.maskrcnn.shapes import ShapesDataset
    from workers.maskrcnn.train import Trainer, data_generator

    config = tiny()
    dataset = ShapesDataset()
    dataset.load_shapes(2, 64, 64, seed=5)
    dataset.prepare()
    model = MaskRCNN(config)
    trainer = Trainer(model, str(tmp_path), log=lambda *_: None)
    model.set_trainable("all")
    variables = model.trainable_variables()
    trainer.optimizer = trainer._make_optimizer(0.003)
    step = trainer._build_step(get_anchors(config, (64, 64)), variables)
    batch = next(data_generator(dataset, config, get_anchors(config, (64, 64), normalized=False), shuffle=False))
    tf.random.set_seed(0)
    # Eagerly: compiling the training graph costs more than the few steps themselves.
    tf.config.run_functions_eagerly(True)
    try:
        losses = [float(step(**batch)["loss"]) for _ in range(6)]
    finally:
        tf.config.run_functions_eagerly(False)
    assert np.isfinite(losses).all()
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses


def test_training_refuses_broken_data(tmp_path):
    from workers.maskrcnn import commands

    folder = tmp_path / "balloon" / "train"
    folder.mkdir(parents=True)
    entry = {"filename": "gone.jpg", "regions": [{"shape_attributes": {"name": "polygon", "all_points_x": [1, 5, 5],
                                                                        "all_points_y": [1, 1, 5]}}]}  # fmt: skip
    (folder / "via_region_data.json").write_text(json.dumps({"gone.jpg1": entry}))
    parser = argparse.ArgumentParser()
    commands.add_train_arguments(parser)
    args = parser.parse_args(["--data", f"via:{tmp_path / 'balloon'}", "--out", str(tmp_path / "out")])
    with pytest.raises(StreamerError, match="gone.jpg does not exist"):
        commands.run_train(args)
    assert not (tmp_path / "out").exists()
    with pytest.raises(StreamerError, match="not understood"):
        commands.run_train(parser.parse_args(["--data", "pascal:x"]))


def test_instances_effect_draws_masks():
    from streamer.prediction import Prediction
    from streamer.effects.instances import instances

    frame = np.zeros((40, 60, 3), np.uint8)
    masks = np.zeros((40, 60, 1), bool)
    masks[10:20, 10:30] = True
    prediction = Prediction(masks=masks, class_ids=np.array([2], np.int32), scores=np.array([0.9], np.float32),
                            boxes=np.array([[10, 10, 20, 30]], np.int32))  # fmt: skip
    out = instances(frame, prediction, SimpleNamespace(alpha=0.5, class_names=["BG", "a", "b"]))
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert out[15, 20].any() and not out[35, 55].any() and not frame.any()
    empty = Prediction(masks=np.zeros((40, 60, 0), bool), class_ids=np.zeros(0, np.int32),
                       scores=np.zeros(0, np.float32), boxes=np.zeros((0, 4), np.int32))  # fmt: skip
    np.testing.assert_array_equal(instances(frame, empty, SimpleNamespace(alpha=0.5)), frame)


def _card_map():
    card = open(os.path.join(WEIGHTS_DIR, "MODEL_CARD.md"), encoding="utf8").read()
    for line in card.splitlines():
        if line.startswith("measured_map50:"):
            return float(line.split(":", 1)[1])
    raise AssertionError("MODEL_CARD.md has no 'measured_map50:' line")


def test_registry_predictor_and_shipped_weights_accuracy():
    from workers.maskrcnn.evaluate import evaluate
    from workers.maskrcnn.shapes import ShapesDataset
    from streamer.models import ModelConfig, load_model

    predictor = load_model(ModelConfig(name="maskrcnn", weights=None, batch_size=4, threshold=None))
    assert predictor.class_names == ["BG", "square", "circle", "triangle"]
    dataset = ShapesDataset()
    dataset.load_shapes(24, 128, 128, seed=987_654)  # fresh images, never seen in training
    dataset.prepare()
    frames = np.stack([dataset.load_image(i) for i in range(4)])
    predictions = predictor.predict(frames)
    assert len(predictions) == 4 and predictions[0].masks.shape[:2] == (128, 128)
    assert predictions[0].foreground().shape == (128, 128)
    short = predictor.predict(frames[:3])  # a short last batch is padded: same graph, same answers
    assert len(short) == 3 and predictor.model._inference_fn.experimental_get_tracing_count() == 1
    assert all(np.array_equal(a.boxes, b.boxes) for a, b in zip(short, predictions[:3]))
    result = evaluate(predictor.model, dataset, coco=False)
    assert result["mAP"] >= _card_map() - 0.08, result


def test_checkpoint_naming_and_resume_without_checkpoint(tmp_path):
    from workers.maskrcnn.train import Trainer

    trainer = Trainer(SimpleNamespace(config=shapes_config()), str(tmp_path), log=lambda *_: None)
    with pytest.raises(StreamerError, match="no checkpoint"):
        trainer.resume()
    for epoch in (1, 2, 10):
        (tmp_path / os.path.basename(trainer.checkpoint_path(epoch))).write_bytes(b"")
    assert trainer.find_last() == (10, str(tmp_path / "mask_rcnn_shapes_0010.weights.h5"))
