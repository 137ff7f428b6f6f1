"""The U-Net road model behind the registry's `predict(frames) -> list[Prediction]` interface.

Each batch is one compiled call: resize to the model's input, scale to [0, 1], run the model,
resize the probabilities back to the frame size and threshold (binary) or argmax (multi-class).
Partial batches are padded, so a whole video runs through one graph per frame size.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from streamer.errors import StreamerError
from streamer.prediction import Prediction
from streamer.models import ModelConfig
from workers.unet.modelfile import demo_weights, load_keras_model


DEFAULT_THRESHOLD = 0.5  # the seed's road threshold


def load(config: ModelConfig) -> UNetPredictor:
    """Registry factory: the model from config.weights (None → bundled demo weights), ready to predict."""
    if config.batch_size < 1:
        raise StreamerError(f"batch size {config.batch_size}: must be at least 1")
    if config.threshold is None:
        config = replace(config, threshold=DEFAULT_THRESHOLD)
    if not 0.0 <= config.threshold <= 1.0:
        raise StreamerError(f"threshold {config.threshold}: must be between 0 and 1")
    path = Path(config.weights) if config.weights else demo_weights()
    device = _check_device(config.device)
    import tensorflow as tf

    with tf.device(device):
        model = load_keras_model(path)
        if config.mixed_precision:
            model = _mixed_precision(model)
    return UNetPredictor(model, config, path)


class UNetPredictor:
    """A loaded segmentation model plus its compiled per-batch function; semantic 1 = road (binary)."""

    name = "unet"

    def __init__(self, model, config: ModelConfig, path: Path) -> None:
        import tensorflow as tf

        self.model = model
        self.config = config
        self.path = path
        self.input_size = tuple(int(v) for v in model.inputs[0].shape[1:3])
        self.classes = int(model.outputs[0].shape[-1])
        self._segment = tf.function(self._segment_batch)

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        """frames: uint8[B,H,W,3] RGB → one Prediction per frame with an H×W uint8 `semantic` map."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8[B,H,W,3] RGB; got {frames.dtype}{list(frames.shape)}")
        import tensorflow as tf

        size = self.config.batch_size
        predictions: list[Prediction] = []
        for start in range(0, len(frames), size):
            batch = frames[start:start + size]
            count = len(batch)
            if count < size:  # pad to the full batch: the same graph serves every batch of this frame size
                batch = np.concatenate([batch, np.zeros((size - count, *batch.shape[1:]), np.uint8)])
            with tf.device(self.config.device):
                semantic = self._segment(batch).numpy()
            predictions += [Prediction(semantic=semantic[i]) for i in range(count)]
        return predictions

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
            return tf.cast(probabilities[..., 0] > self.config.threshold, tf.uint8)
        return tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8)


def _check_device(device: str | None) -> str | None:
    """None, or a device TensorFlow can see (e.g. "/GPU:0"); otherwise a StreamerError listing the visible ones."""
    if not device:
        return None
    import tensorflow as tf

    try:
        wanted = tf.DeviceSpec.from_string(device)
    except (ValueError, TypeError) as error:
        raise StreamerError(f"device {device!r}: not a device name ({error}); use e.g. /CPU:0 or /GPU:0") from error
    visible = [tf.DeviceSpec.from_string(d.name) for d in tf.config.list_logical_devices()]
    for spec in visible:
        if spec.device_type == (wanted.device_type or "").upper() and spec.device_index == (wanted.device_index or 0):
            return device
    names = ", ".join(f"/{s.device_type}:{s.device_index}" for s in visible)
    raise StreamerError(f"device {device!r}: not available here; visible devices: {names}")


def _mixed_precision(model):
    """A copy of `model` computing in float16 (float32 variables and outputs): the mixed_float16 policy."""
    import keras

    outputs = set(model.output_names)

    def clone(layer):
        """The same layer computing in float16, except the output heads."""
        config = layer.get_config()
        if layer.name not in outputs:
            config["dtype"] = "mixed_float16"
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone, recursive=True)
    twin.set_weights(model.get_weights())
    return twin
