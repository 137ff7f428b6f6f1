"""Registry entry: `load(ModelConfig)` → an object with `predict(frames) -> list[Prediction]`."""

from __future__ import annotations

import os

import numpy as np

from streamer.errors import StreamerError
from streamer.prediction import Prediction

DEMO_WEIGHTS = os.path.join(os.path.dirname(__file__), "weights", "shapes-demo.weights.h5")


class MaskRCNNPredictor:
    name = "maskrcnn"

    def __init__(self, model, batch_size: int = 1):
        self.model = model
        self.batch_size = max(1, int(batch_size))
        self.class_names = model.config.class_names

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise StreamerError(f"maskrcnn.predict wants uint8 frames [B,H,W,3], got {frames.dtype} {frames.shape}")
        out = []
        for start in range(0, len(frames), self.batch_size):
            batch = frames[start : start + self.batch_size]
            count = len(batch)
            if count < self.batch_size:  # pad a short last batch, so one compiled graph serves the whole video
                batch = np.concatenate([batch, np.repeat(batch[-1:], self.batch_size - count, axis=0)])
            for r in self.model.detect(batch)[:count]:
                out.append(
                    Prediction(
                        masks=r["masks"],
                        class_ids=r["class_ids"].astype(np.int32),
                        scores=r["scores"].astype(np.float32),
                        boxes=r["rois"].astype(np.int32),
                    )
                )
        return out


def load(config) -> MaskRCNNPredictor:
    """config: workers.registry.ModelConfig. weights None → bundled shapes demo weights;
    threshold → DETECTION_MIN_CONFIDENCE; device → tf.device; mixed_precision → float16 compute
    when a GPU is present (ignored on CPU, where float16 is slower)."""
    from .config import Config
    from .model import MaskRCNN
    from .weights import COCO_CLASS_NAMES, read_config

    path = config.weights or DEMO_WEIGHTS
    if not os.path.isfile(path):
        raise StreamerError(f"maskrcnn weights {path} not found: pass an existing .weights.h5 or .h5 file")
    saved = read_config(path)
    overrides = {"GPU_COUNT": 1, "IMAGES_PER_GPU": max(1, int(config.batch_size or 1))}
    if config.threshold is not None:
        overrides["DETECTION_MIN_CONFIDENCE"] = float(config.threshold)
    if saved is not None:
        model_config = Config.from_dict(saved, **overrides)
    else:
        # A matterport file (e.g. mask_rcnn_coco.h5): COCO classes on ResNet-101.
        model_config = Config(NAME="coco", NUM_CLASSES=81, CLASS_NAMES=COCO_CLASS_NAMES, BACKBONE="resnet101",
                              IMAGE_MIN_DIM=512, IMAGE_MAX_DIM=512, **overrides)  # fmt: skip
    policy = None
    if config.mixed_precision:
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            import keras

            policy = keras.config.dtype_policy()
            keras.config.set_dtype_policy("mixed_float16")
    try:
        model = MaskRCNN(model_config, device=config.device)
    finally:
        if policy is not None:
            import keras

            keras.config.set_dtype_policy(policy)
    model.load_weights(path)
    return MaskRCNNPredictor(model, batch_size=config.batch_size)
