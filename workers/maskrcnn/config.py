"""`Config`: matterport's configuration names and defaults, plus a few extensions.

Subclass and override class attributes (as the notebooks do), or pass overrides as keyword
arguments: `Config(NAME="shapes", NUM_CLASSES=4)`. Extensions (not in matterport):

* BACKBONE "light": a small ResNet-18-like backbone trained from scratch (CPU-friendly),
  width set by BACKBONE_WIDTH (channels of stage 2; stages double it).
* RPN_CONV_DEPTH (matterport hard-codes 512) and MASK_HEAD_DEPTH (256).
* CLASS_NAMES: class names including "BG", saved with the weights.
* OPTIMIZER: "sgd" (matterport: SGD with LEARNING_MOMENTUM) or "adam".
"""

from __future__ import annotations

import json

import numpy as np

from streamer.errors import StreamerError

# Attributes computed in __init__; never read back from a saved config.
COMPUTED = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE")
BACKBONES = ("resnet50", "resnet101", "light")
RESIZE_MODES = ("none", "square", "pad64", "crop")


class Config:
    NAME = None
    GPU_COUNT = 1
    IMAGES_PER_GPU = 2
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50
    BACKBONE = "resnet101"
    COMPUTE_BACKBONE_SHAPE = None
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]
    BACKBONE_WIDTH = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    TOP_DOWN_PYRAMID_SIZE = 256
    RPN_CONV_DEPTH = 512
    MASK_HEAD_DEPTH = 256
    NUM_CLASSES = 1
    CLASS_NAMES = None
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]
    RPN_ANCHOR_STRIDE = 1
    RPN_NMS_THRESHOLD = 0.7
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    PRE_NMS_LIMIT = 6000
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    IMAGE_MIN_SCALE = 0
    IMAGE_CHANNEL_COUNT = 3
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])
    TRAIN_ROIS_PER_IMAGE = 200
    ROI_POSITIVE_RATIO = 0.33
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14
    MASK_SHAPE = [28, 28]
    MAX_GT_INSTANCES = 100
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    DETECTION_MAX_INSTANCES = 100
    DETECTION_MIN_CONFIDENCE = 0.7
    DETECTION_NMS_THRESHOLD = 0.3
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    WEIGHT_DECAY = 0.0001
    OPTIMIZER = "sgd"
    LOSS_WEIGHTS = {
        "rpn_class_loss": 1.0,
        "rpn_bbox_loss": 1.0,
        "mrcnn_class_loss": 1.0,
        "mrcnn_bbox_loss": 1.0,
        "mrcnn_mask_loss": 1.0,
    }
    USE_RPN_ROIS = True
    TRAIN_BN = False
    GRADIENT_CLIP_NORM = 5.0

    def __init__(self, **overrides):
        for key, value in overrides.items():
            if not key.isupper() or not hasattr(type(self), key) or key in COMPUTED:
                raise StreamerError(
                    f"unknown Mask R-CNN config setting {key!r}: use one of the names printed by Config().display()"
                )
            setattr(self, key, value)
        for key in ("MEAN_PIXEL", "RPN_BBOX_STD_DEV", "BBOX_STD_DEV"):
            setattr(self, key, np.array(getattr(self, key), dtype=np.float64))
        self.LOSS_WEIGHTS = dict(self.LOSS_WEIGHTS)
        self.validate()
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        channels = self.IMAGE_CHANNEL_COUNT
        if self.IMAGE_RESIZE_MODE == "crop":
            self.IMAGE_SHAPE = np.array([self.IMAGE_MIN_DIM, self.IMAGE_MIN_DIM, channels])
        else:
            self.IMAGE_SHAPE = np.array([self.IMAGE_MAX_DIM, self.IMAGE_MAX_DIM, channels])
        self.IMAGE_META_SIZE = 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES

    def validate(self):
        if self.BACKBONE not in BACKBONES:
            raise StreamerError(f"BACKBONE {self.BACKBONE!r} is unknown: choose one of {', '.join(BACKBONES)}")
        if self.IMAGE_RESIZE_MODE not in RESIZE_MODES:
            raise StreamerError(
                f"IMAGE_RESIZE_MODE {self.IMAGE_RESIZE_MODE!r} is unknown: choose one of {', '.join(RESIZE_MODES)}"
            )
        if int(self.NUM_CLASSES) < 2:
            raise StreamerError("NUM_CLASSES must count the background too (at least 2): set NUM_CLASSES = 1 + classes")
        if self.IMAGE_RESIZE_MODE != "none" and int(self.IMAGE_MAX_DIM) % 64:
            raise StreamerError(f"IMAGE_MAX_DIM {self.IMAGE_MAX_DIM} must be a multiple of 64 (e.g. 256, 512, 1024)")
        if len(self.RPN_ANCHOR_SCALES) != len(self.BACKBONE_STRIDES):
            raise StreamerError("RPN_ANCHOR_SCALES needs one scale per BACKBONE_STRIDES level (5)")
        if self.CLASS_NAMES is not None and len(self.CLASS_NAMES) != self.NUM_CLASSES:
            raise StreamerError(
                f"CLASS_NAMES has {len(self.CLASS_NAMES)} names but NUM_CLASSES is {self.NUM_CLASSES}: "
                "list one name per class, starting with 'BG'"
            )
        if self.OPTIMIZER not in ("sgd", "adam"):
            raise StreamerError(f"OPTIMIZER {self.OPTIMIZER!r} is unknown: choose sgd or adam")

    @property
    def class_names(self) -> list[str]:
        if self.CLASS_NAMES:
            return list(self.CLASS_NAMES)
        return ["BG"] + [f"class {i}" for i in range(1, self.NUM_CLASSES)]

    def to_dict(self) -> dict:
        out = {}
        for key in dir(self):
            if not key.isupper() or key in COMPUTED:
                continue
            value = getattr(self, key)
            if callable(value):
                continue
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, tuple):
                value = list(value)
            out[key] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict, **overrides) -> "Config":
        merged = {k: v for k, v in values.items() if k.isupper() and k not in COMPUTED and hasattr(Config, k)}
        merged.update(overrides)
        return cls(**merged)

    def replace(self, **overrides) -> "Config":
        return type(self).from_dict(self.to_dict(), **overrides)

    def display(self):
        print("\nConfigurations:")
        for key in dir(self):
            if key.startswith("__") or callable(getattr(self, key)) or key == "class_names":
                continue
            print(f"{key:30} {getattr(self, key)}")
        print("\n")


def shapes_config(**overrides) -> Config:
    """The shapes sample's settings on the light backbone, sized for a CPU."""
    values = dict(
        NAME="shapes",
        GPU_COUNT=1,
        IMAGES_PER_GPU=8,
        NUM_CLASSES=4,
        CLASS_NAMES=["BG", "square", "circle", "triangle"],
        IMAGE_MIN_DIM=128,
        IMAGE_MAX_DIM=128,
        RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128),
        TRAIN_ROIS_PER_IMAGE=32,
        STEPS_PER_EPOCH=100,
        VALIDATION_STEPS=5,
        BACKBONE="light",
        BACKBONE_WIDTH=32,
        TOP_DOWN_PYRAMID_SIZE=64,
        RPN_CONV_DEPTH=64,
        FPN_CLASSIF_FC_LAYERS_SIZE=256,
        MASK_HEAD_DEPTH=48,
        POST_NMS_ROIS_TRAINING=300,
        POST_NMS_ROIS_INFERENCE=100,
        PRE_NMS_LIMIT=1000,
        MINI_MASK_SHAPE=(28, 28),
        MAX_GT_INSTANCES=20,
        DETECTION_MAX_INSTANCES=20,
        DETECTION_MIN_CONFIDENCE=0.7,
        TRAIN_BN=None,
        OPTIMIZER="adam",
        LEARNING_RATE=0.001,
    )
    values.update(overrides)
    return Config(**values)
