"""The Mask R-CNN behind the registry's `predict(frames) -> list[Prediction]` interface.

Each batch is one `MaskRCNN.detect` call; instances come back at the frame's size (masks, class ids,
scores, boxes). The threshold is DETECTION_MIN_CONFIDENCE. Frame checks, batching, device and mixed
precision are the shared Predictor's (workers/predictor.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.errors import StreamerError
from streamer.models import ModelConfig
from streamer.prediction import Prediction
from workers.maskrcnn.config import Config
from workers.maskrcnn.weights import COCO_CLASS_NAMES, DEMO_WEIGHTS, read_config
from workers.predictor import Predictor


def load(config: ModelConfig) -> MaskRCNNPredictor:
    """Registry factory: the model from config.weights (None → bundled shapes demo weights), ready to predict."""
    return MaskRCNNPredictor(config)


def saved_settings(path: str | Path) -> Config:
    """The Config saved in one of our weights files; for a file without one (a matterport file such as
    mask_rcnn_coco.h5), matterport's COCO model: 81 classes on ResNet-101 at 512×512."""
    saved = read_config(path)
    if saved is not None:
        return Config.from_dict(saved)
    return Config(
        NAME="coco",
        NUM_CLASSES=81,
        CLASS_NAMES=COCO_CLASS_NAMES,
        BACKBONE="resnet101",
        IMAGE_MIN_DIM=512,
        IMAGE_MAX_DIM=512,
    )


class MaskRCNNPredictor(Predictor):
    """A MaskRCNN with its weights; `class_names` (BG first) name the class ids of its predictions."""

    name = "maskrcnn"

    def __init__(self, config: ModelConfig, settings: Config | None = None) -> None:
        """`settings`: the Config to build (default: `saved_settings` of the weights file); the batch size and
        the threshold (DETECTION_MIN_CONFIDENCE, by default the settings') come from `config`."""
        path = Path(config.weights) if config.weights else DEMO_WEIGHTS
        if not path.is_file():
            raise StreamerError(f"maskrcnn weights {path} not found: pass an existing .weights.h5 or .h5 file")
        settings = settings or saved_settings(path)
        super().__init__(config, default_threshold=float(settings.DETECTION_MIN_CONFIDENCE))
        settings = settings.replace(
            GPU_COUNT=1, IMAGES_PER_GPU=self.config.batch_size, DETECTION_MIN_CONFIDENCE=self.threshold
        )
        from workers.maskrcnn.model import MaskRCNN

        self.path = path
        with self.building():
            self.model = MaskRCNN(settings)
        self.model.load_weights(path)
        self.class_names = settings.class_names

    def predict_batch(self, frames: np.ndarray) -> list[Prediction]:
        return [
            Prediction(
                masks=found["masks"],
                class_ids=found["class_ids"].astype(np.int32),
                scores=found["scores"].astype(np.float32),
                boxes=found["rois"].astype(np.int32),
            )
            for found in self.model.detect(frames)
        ]
