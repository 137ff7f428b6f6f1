"""Mask R-CNN's folded inference graph (BatchNorms folded into the convolutions) gives what the Keras layers give:
part by part on seeded models with non-trivial BatchNorm statistics, and end to end on the shipped weights; a
change of weights reaches detect."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from maskrcnn_helpers import TINY_MASKRCNN

from streamer.models import ModelConfig
from workers.maskrcnn import fused
from workers.maskrcnn.config import shapes_config
from workers.maskrcnn.model import MaskRCNN
from workers.maskrcnn.predictor import MaskRCNNPredictor
from workers.maskrcnn.shapes import shapes_frames

TINY = dict(
    TINY_MASKRCNN,
    IMAGES_PER_GPU=2,
    POST_NMS_ROIS_INFERENCE=32,
)


def seeded(backbone: str, seed: int = 0) -> MaskRCNN:
    """A model with seeded weights and BatchNorm statistics far from the identity."""
    keras.utils.set_random_seed(seed)
    model = MaskRCNN(shapes_config(**TINY, BACKBONE=backbone))
    rng = np.random.default_rng(seed)
    for layer in model.layers_by_name().values():
        if type(layer).__name__ == "BatchNorm":
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.2, n).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.2, n).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, n).astype(np.float32))
    return model


def close(ours, theirs, tolerance=1e-4):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= tolerance * max(1.0, np.abs(theirs).max())


@pytest.mark.parametrize("backbone", ["light", "resnet50"])
def test_folded_parts_equal_the_keras_layers(backbone):
    model = seeded(backbone)
    folded = fused.fold(model)
    config = model.config
    rng = np.random.default_rng(1)
    images = tf.constant(rng.normal(0, 60, (2, 64, 64, 3)).astype(np.float32))

    maps = model.keras_model.backbone(images, training=False)
    ours = fused.backbone(folded, config, images)
    for p, q in zip(ours, maps):
        close(p, q)

    _, probs, deltas = model.rpn_outputs(maps)
    our_probs, our_deltas = fused.rpn(folded, config, maps)
    close(our_probs, probs)
    close(our_deltas, deltas)

    pooled = tf.constant(rng.normal(0, 1, (5, 7, 7, 16)).astype(np.float32))
    _, probs, deltas = model.keras_model.classifier(pooled, training=False)
    our_probs, our_deltas = fused.classifier(folded, pooled)
    close(our_probs, probs)
    close(our_deltas, deltas)

    pooled = tf.constant(rng.normal(0, 1, (5, 14, 14, 16)).astype(np.float32))
    class_ids = tf.constant([1, 2, 3, 0, 2])
    masks = model.keras_model.mask_head(pooled, training=False)  # [K, 28, 28, C]
    want = tf.gather(tf.transpose(masks, [0, 3, 1, 2]), class_ids, batch_dims=1)
    close(fused.mask_head(folded, pooled, class_ids), want)


def test_detect_on_the_shipped_weights_equals_the_keras_graph():
    predictor = MaskRCNNPredictor(ModelConfig(name="maskrcnn", batch_size=2))
    frames = np.stack([frame for frame, _ in shapes_frames(3, 320, 180, 30.0, 2)])
    model = predictor.model
    folded = model.detect(frames)
    model.fused = False
    keras_graph = model.detect(frames)
    assert sum(len(f["class_ids"]) for f in folded) >= 2
    for ours, theirs in zip(folded, keras_graph):
        np.testing.assert_array_equal(ours["rois"], theirs["rois"])
        np.testing.assert_array_equal(ours["class_ids"], theirs["class_ids"])
        np.testing.assert_allclose(ours["scores"], theirs["scores"], atol=1e-4)
        assert (ours["masks"] != theirs["masks"]).mean() < 1e-4


def test_detect_sees_changed_weights(tmp_path):
    model = seeded("light", seed=2)
    model.config = model.config.replace(DETECTION_MIN_CONFIDENCE=0.5, DETECTION_MAX_INSTANCES=5)
    frame = np.full((64, 64, 3), 100, np.uint8)
    layers = model.layers_by_name()
    kernel, bias = layers["mrcnn_class_logits"].get_weights()
    layers["mrcnn_class_logits"].set_weights([np.zeros_like(kernel), np.array([12.0, 0, 0, 0])])
    assert len(model.detect([frame])[0]["class_ids"]) == 0  # all background
    path = tmp_path / "certain.weights.h5"
    layers["mrcnn_class_logits"].set_weights([np.zeros_like(kernel), np.array([0, 0, 12.0, 0])])
    assert set(model.detect([frame])[0]["class_ids"]) == {2}  # assigned weights count at once
    model.save_weights(path)

    layers["mrcnn_class_logits"].set_weights([np.zeros_like(kernel), np.array([12.0, 0, 0, 0])])
    model.fix_weights()  # folded once, on the next detect
    assert len(model.detect([frame])[0]["class_ids"]) == 0
    model.load_weights(path)  # and again after loading
    assert set(model.detect([frame])[0]["class_ids"]) == {2}
