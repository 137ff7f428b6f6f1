"""The Mask R-CNN behind the registry's `predict(frames) -> list[Prediction]` interface.

Each batch is one `MaskRCNN.detect` call; instances come back at the frame's size (masks, class ids,
scores, boxes). The threshold is DETECTION_MIN_CONFIDENCE. Frame checks, batching, device and mixed
precision are the shared Predictor's (workers/predictor.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from streamer.errors import StreamerError
from streamer.models import ModelConfig, weights_path
from streamer.prediction import Prediction
from workers.maskrcnn import exported
from workers.maskrcnn.config import Config, user_settings
from workers.maskrcnn.weights import COCO_CLASS_NAMES, DEMO_NOTE, DEMO_WEIGHTS, architecture_from_keras2, read_config
from workers.predictor import Predictor


def load(config: ModelConfig) -> MaskRCNNPredictor:
    """Registry factory: the model from config.weights (None → bundled shapes demo weights), ready to predict."""
    return MaskRCNNPredictor(config)


def saved_settings(path: str | Path, options: ModelConfig | None = None) -> Config:
    """The Config to build for the weights file at `path`, with `options`' settings (--config, --set) and
    class names (--class-names) applied.

    One of our files carries its Config. For another Keras 2 HDF5 file (matterport's `mask_rcnn_coco.h5`,
    `mask_rcnn_balloon.h5`, their checkpoints) the architecture is read from the file (the backbone from its
    layer names, NUM_CLASSES and the layer sizes from its shapes), the rest is matterport's defaults, with
    matterport's resizing (RESIZE_COMPAT "matterport") so the masks are the ones matterport gives; an
    81-class file is named with COCO's classes."""
    options = options or ModelConfig(name="maskrcnn")
    check_weights_path(Path(path))
    if exported.is_exported(path):
        return exported_settings(exported.saved_config(exported.open_session(Path(path), 1), path), path, options)
    overrides = user_settings(options.all_settings())
    names = list(options.class_names) if options.class_names else None
    saved = read_config(path)
    if saved is not None:
        values = dict(saved)
    else:
        values = {"NAME": Path(path).stem, "RESIZE_COMPAT": "matterport", **architecture_from_keras2(path)}
        if values.get("NUM_CLASSES") == len(COCO_CLASS_NAMES) and names is None:
            values["CLASS_NAMES"] = COCO_CLASS_NAMES
    if names is not None:
        classes = overrides.get("NUM_CLASSES", values.get("NUM_CLASSES"))
        if classes is not None and int(classes) != len(names):
            raise StreamerError(
                f"--class-names gives {len(names)} names ({', '.join(names)}) but the weights {path} have "
                f"{classes} classes: give {classes} names, background first"
            )
        values["CLASS_NAMES"] = names
        values.setdefault("NUM_CLASSES", len(names))
    elif overrides.get("NUM_CLASSES", values.get("NUM_CLASSES")) != values.get("NUM_CLASSES"):
        values["CLASS_NAMES"] = None  # the saved names no longer fit
    return Config.from_dict(values, **overrides)


def check_weights_path(path: Path) -> None:
    """A StreamerError unless `path` is a file (a folder, e.g. an exported SavedModel, is said to be one)."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            raise StreamerError(
                f"maskrcnn weights {path}: an exported SavedModel folder, not a weights file; --model maskrcnn "
                "loads the .weights.h5 (or matterport .h5) it was exported from"
            )
        raise StreamerError(f"maskrcnn weights {path}: a folder; pass a .weights.h5 or matterport .h5 file")
    if not path.is_file():
        raise StreamerError(f"maskrcnn weights {path} not found: pass an existing .weights.h5 or .h5 file")


def exported_settings(saved: dict, path, options: ModelConfig) -> Config:
    """The Config an exported file was built with; its graph fixes every setting but the class names and a
    higher DETECTION_MIN_CONFIDENCE (the threshold)."""
    if options.all_settings():
        raise StreamerError(
            f"--config/--set: {path} is an exported graph, which fixes its settings; drop them, or export it "
            "again with them"
        )
    if options.class_names:
        if len(options.class_names) != int(saved["NUM_CLASSES"]):
            raise StreamerError(
                f"--class-names gives {len(options.class_names)} names but {path} has {saved['NUM_CLASSES']} "
                "classes: give that many names, background first"
            )
        saved = {**saved, "CLASS_NAMES": list(options.class_names)}
    return Config.from_dict(saved)


class MaskRCNNPredictor(Predictor):
    """A MaskRCNN with its weights; `class_names` (BG first) name the class ids of its predictions."""

    name = "maskrcnn"

    def __init__(self, config: ModelConfig, settings: Config | None = None) -> None:
        """`settings`: the Config to build (default: `saved_settings` of the weights file and `config`'s
        settings and class names); the batch size and the threshold (DETECTION_MIN_CONFIDENCE, by default the
        settings') come from `config`."""
        path = Path(weights_path(self.name, config.weights)) if config.weights else DEMO_WEIGHTS
        if not config.weights:
            logging.getLogger(__name__).warning(DEMO_NOTE)
        check_weights_path(path)
        self.path = path
        if exported.is_exported(path):
            self._load_exported(config)
            return
        if config.runtime != "tf":
            raise StreamerError(
                f"--runtime {config.runtime}: a .weights.h5 Mask R-CNN runs on tf; export it with `streamer export "
                "maskrcnn --format onnx` to run it on ONNX Runtime"
            )
        settings = settings or saved_settings(path, config)
        super().__init__(config, default_threshold=float(settings.DETECTION_MIN_CONFIDENCE))
        settings = settings.replace(
            GPU_COUNT=1, IMAGES_PER_GPU=self.config.batch_size, DETECTION_MIN_CONFIDENCE=self.threshold
        )
        from workers.maskrcnn.model import MaskRCNN

        with self.building():
            self.model = MaskRCNN(settings)
        self.model.load_weights(path, exclude=list(config.exclude))
        self.model.fix_weights()  # served as loaded: BatchNorms folded once
        self.class_names = settings.class_names

    def _load_exported(self, config: ModelConfig) -> None:
        """An exported graph (ONNX) on ONNX Runtime, TensorFlow never imported."""
        if config.runtime == "openvino":
            raise StreamerError(
                "--runtime openvino: OpenVINO cannot convert Mask R-CNN's detection ops (Loop, TopK, "
                "GatherElements); run the .onnx file on ONNX Runtime (--runtime onnx)"
            )
        session = exported.open_session(self.path, config.threads)
        settings = exported_settings(exported.saved_config(session, self.path), self.path, config)
        super().__init__(config, default_threshold=float(settings.DETECTION_MIN_CONFIDENCE), tensorflow=False)
        if self.threshold < float(settings.DETECTION_MIN_CONFIDENCE):
            raise StreamerError(
                f"--min-confidence {self.threshold:g}: {self.path} was exported with DETECTION_MIN_CONFIDENCE "
                f"{settings.DETECTION_MIN_CONFIDENCE:g}, its lowest; export it again with --set "
                f"DETECTION_MIN_CONFIDENCE={self.threshold:g}"
            )
        self.model = exported.ExportedMaskRCNN(settings, session, self.threshold)
        self.class_names = settings.class_names

    def predict_batch(self, frames: np.ndarray, frame_size: tuple[int, int]) -> list[Prediction]:
        return [
            Prediction(
                masks=found["masks"],
                class_ids=found["class_ids"].astype(np.int32),
                scores=found["scores"].astype(np.float32),
                boxes=found["rois"].astype(np.int32),
            )
            for found in self.model.detect(frames)
        ]
