"""The U-Net road model behind the registry's `predict(frames) -> list[Prediction]` interface.

Each batch is one compiled call: resize to the model's input, scale to [0, 1], run the model,
resize the probabilities back to the frame size and threshold (binary) or argmax (multi-class).
Frame checks, batching, device and mixed precision are the shared Predictor's (workers/predictor.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.models import ModelConfig
from streamer.prediction import Prediction
from workers.predictor import Predictor
from workers.unet.config import DEFAULT_THRESHOLD
from workers.unet.weights import DEMO_WEIGHTS, load_keras_model


def load(config: ModelConfig) -> UNetPredictor:
    """Registry factory: the model from config.weights (None → bundled demo weights), ready to predict."""
    return UNetPredictor(config)


class UNetPredictor(Predictor):
    """A loaded segmentation model plus its compiled per-batch function; semantic 1 = road (binary)."""

    name = "unet"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, default_threshold=DEFAULT_THRESHOLD)
        import tensorflow as tf

        self.path = Path(config.weights) if config.weights else DEMO_WEIGHTS
        with self.building():
            model = load_keras_model(self.path)
            if self.config.mixed_precision:
                model = _under_policy(model)
        self.model = model
        self.input_size = tuple(int(v) for v in model.inputs[0].shape[1:3])
        self.classes = int(model.outputs[0].shape[-1])
        self._segment = tf.function(self._segment_batch)

    def predict_batch(self, frames: np.ndarray) -> list[Prediction]:
        """uint8[B,H,W,3] → one Prediction per frame with an H×W uint8 `semantic` map."""
        semantic = self._segment(frames).numpy()
        return [Prediction(semantic=labels) for labels in semantic]

    def _segment_batch(self, frames):
        """Traced once per frame size: uint8[B,H,W,3] → uint8[B,H,W] class index."""
        import tensorflow as tf

        height, width = tf.shape(frames)[1], tf.shape(frames)[2]
        x = tf.image.resize(frames, self.input_size, method="bilinear", antialias=True) / 255.0
        outputs = self.model(x, training=False)
        if isinstance(outputs, (list, tuple)):  # deep supervision: average the heads
            outputs = tf.add_n([tf.cast(o, tf.float32) for o in outputs]) / len(outputs)
        probabilities = tf.image.resize(tf.cast(outputs, tf.float32), (height, width), method="bilinear")
        if self.classes == 1:
            return tf.cast(probabilities[..., 0] > self.threshold, tf.uint8)
        return tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8)


def _under_policy(model):
    """`model` rebuilt from its config so that its layers take the current (mixed_float16) global policy:
    a saved file fixes every layer's dtype, so the saved one is dropped; output layers keep float32."""
    import keras

    outputs = set(model.output_names)

    def clone(layer):
        config = layer.get_config()
        if layer.name not in outputs:
            config.pop("dtype", None)
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone, recursive=True)
    twin.set_weights(model.get_weights())
    return twin
