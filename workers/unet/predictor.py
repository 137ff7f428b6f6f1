"""The U-Net road model behind the registry's `predict(frames) -> list[Prediction]` interface.

Each batch is one compiled call: resize to the model's input, scale to [0, 1], run the model,
resize the probabilities back to the frame size and threshold (binary) or argmax (multi-class).
Frame checks, batching, device and mixed precision are the shared Predictor's (workers/predictor.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.errors import StreamerError
from streamer.models import ModelConfig
from streamer.prediction import Prediction
from workers.predictor import Predictor
from workers.unet.config import DEFAULT_THRESHOLD
from workers.unet.weights import DEMO_WEIGHTS, HINT, load_keras_model

STRIDE = 32  # a model of any input size gets frames rounded up to a multiple of this


def load(config: ModelConfig) -> UNetPredictor:
    """Registry factory: the model from config.weights (None → bundled demo weights), ready to predict."""
    return UNetPredictor(config)


class UNetPredictor(Predictor):
    """A loaded segmentation model plus its compiled per-batch function; semantic 1 = road (binary).

    The model may be any file workers.runtimes.semantic opens (.keras, Keras 2 .h5, SavedModel, ONNX, TFLite),
    on the runtime `config.runtime`; its input size, channels and classes come from the file."""

    name = "unet"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, default_threshold=DEFAULT_THRESHOLD)
        import tensorflow as tf

        self.path = Path(config.weights) if config.weights else DEMO_WEIGHTS
        from workers.runtimes.semantic import open_semantic

        with self.building():
            self.semantic = open_semantic(self.path, config.runtime, keras_loader=load_keras_model, hint=HINT)
            model = self.semantic.keras_model
            if model is not None and self.config.mixed_precision:
                model = _under_policy(model)
        self.model = model
        self.input_size = self.semantic.input_size
        self.channels = self.semantic.channels
        self.classes = self.semantic.classes
        if config.config_file or config.settings:
            raise StreamerError(
                f"--config/--set: the unet model takes no settings (its file {self.path} fixes them); drop them"
            )
        if config.class_names is not None:
            wanted = max(self.classes, 2)  # a one-channel (binary) map has background and one class
            if len(config.class_names) != wanted:
                raise StreamerError(
                    f"--class-names gives {len(config.class_names)} names but {self.path} has {wanted} classes: "
                    f"give {wanted} names, background first"
                )
            self.class_names = tuple(config.class_names)
        self._segment = tf.function(self._segment_batch)
        self._prepare = tf.function(self._prepare_batch)
        self._finish = tf.function(self._finish_batch)

    def predict_batch(self, frames: np.ndarray) -> list[Prediction]:
        """uint8[B,H,W,3] → one Prediction per frame with an H×W uint8 `semantic` map."""
        if self.semantic.run is None:  # Keras or TensorFlow: one graph
            semantic = self._segment(frames).numpy()
        else:  # another runtime between TensorFlow's resizing
            scores = self.semantic.run(self._prepare(frames).numpy())
            semantic = self._finish(scores, np.array(frames.shape[1:3], np.int32)).numpy()
        return [Prediction(semantic=labels) for labels in semantic]

    def _segment_batch(self, frames):
        """Traced once per frame size: uint8[B,H,W,3] → uint8[B,H,W] class index."""
        import tensorflow as tf

        x = self._prepare_batch(frames)
        if self.model is not None:
            outputs = self.model(x, training=False)
        else:
            outputs = self.semantic.tf_call(x)
        if isinstance(outputs, (list, tuple)):  # deep supervision: average the heads
            outputs = tf.add_n([tf.cast(o, tf.float32) for o in outputs]) / len(outputs)
        return self._finish_batch(outputs, tf.shape(frames)[1:3])

    def _prepare_batch(self, frames):
        """uint8[B,H,W,3] → the model's input: float32 in [0, 1] at its size (any size: rounded up to 32)."""
        import tensorflow as tf

        if self.input_size is None:
            size = (tf.shape(frames)[1:3] + STRIDE - 1) // STRIDE * STRIDE
        else:
            size = self.input_size
        x = tf.image.resize(frames, size, method="bilinear", antialias=True) / 255.0
        return tf.image.rgb_to_grayscale(x) if self.channels == 1 else x

    def _finish_batch(self, outputs, frame_size):
        """The model's scores [B,h,w,C] → uint8[B,H,W] class index at the frame's size."""
        import tensorflow as tf

        probabilities = tf.image.resize(tf.cast(outputs, tf.float32), frame_size, method="bilinear")
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
