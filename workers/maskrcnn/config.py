"""What defines a Mask R-CNN: `Config`, matterport's settings under their UPPER_CASE names; and what
defines a training run (`TrainConfig`) and an evaluation (`EvaluateConfig`).

Give settings as keyword arguments, `Config(NAME="shapes", NUM_CLASSES=4)`, change them with
`config.replace(IMAGE_MAX_DIM=512)` (the CLI's `--set KEY=VALUE`), or subclass as a dataclass with new
defaults. Extensions (not in matterport):

* BACKBONE "light": a small ResNet-18-like backbone trained from scratch (CPU-friendly),
  width set by BACKBONE_WIDTH (channels of stage 2; stages double it).
* RPN_CONV_DEPTH (matterport hard-codes 512) and MASK_HEAD_DEPTH (256).
* CLASS_NAMES: class names including "BG", saved with the weights.
* OPTIMIZER: "sgd" (matterport: SGD with LEARNING_MOMENTUM) or "adam".
* RESIZE_COMPAT: how detect() resizes frames and pastes masks: "opencv" (OpenCV: area averaging when
  shrinking, bilinear with edge replication when pasting) or "matterport" (matterport's scikit-image
  bilinear with zeros outside the image, truncated to uint8; masks pasted the same way; and matterport's
  ROI Align at the map's edge, zero-area proposals and detection layer), which gives matterport's
  detections. See README, "Mask R-CNN numerics".
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from streamer.errors import StreamerError
from streamer.settings import parse_value

BACKBONES = ("resnet50", "resnet101", "light")
RESIZE_MODES = ("none", "square", "pad64", "crop")
RESIZE_COMPATS = ("opencv", "matterport")
ARRAYS = ("MEAN_PIXEL", "RPN_BBOX_STD_DEV", "BBOX_STD_DEV")
# computed from the other settings (a dump of config.display() lists them): left out of what a user gives
COMPUTED = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE", "BACKBONE_SHAPES")
# matterport's settings that this Config has no use for: {name: (the value that changes nothing, why)}
IGNORED = {
    "USE_RPN_ROIS": (True, "ROIs always come from the RPN here (matterport's False trains on ROIs given as input)"),
    "IMAGE_PADDING": (True, "IMAGE_RESIZE_MODE says how images are padded (older matterport versions' setting)"),
}
log = logging.getLogger(__name__)


def _default(value):
    """A field whose default is a fresh copy of `value` (lists, dicts and arrays are mutable)."""
    return field(default_factory=lambda: np.array(value) if isinstance(value, np.ndarray) else type(value)(value))


@dataclass(eq=False)
class Config:
    """matterport's configuration names and defaults. BATCH_SIZE, IMAGE_SHAPE and IMAGE_META_SIZE are
    computed from the others when the config is made."""

    NAME: str | None = None
    GPU_COUNT: int = 1
    IMAGES_PER_GPU: int = 2
    STEPS_PER_EPOCH: int = 1000
    VALIDATION_STEPS: int = 50
    BACKBONE: str = "resnet101"
    COMPUTE_BACKBONE_SHAPE: Callable | None = None
    BACKBONE_STRIDES: list = _default([4, 8, 16, 32, 64])
    BACKBONE_WIDTH: int = 32
    FPN_CLASSIF_FC_LAYERS_SIZE: int = 1024
    TOP_DOWN_PYRAMID_SIZE: int = 256
    RPN_CONV_DEPTH: int = 512
    MASK_HEAD_DEPTH: int = 256
    NUM_CLASSES: int = 1
    CLASS_NAMES: list | None = None
    RPN_ANCHOR_SCALES: tuple = (32, 64, 128, 256, 512)
    RPN_ANCHOR_RATIOS: list = _default([0.5, 1, 2])
    RPN_ANCHOR_STRIDE: int = 1
    RPN_NMS_THRESHOLD: float = 0.7
    RPN_TRAIN_ANCHORS_PER_IMAGE: int = 256
    PRE_NMS_LIMIT: int = 6000
    POST_NMS_ROIS_TRAINING: int = 2000
    POST_NMS_ROIS_INFERENCE: int = 1000
    USE_MINI_MASK: bool = True
    MINI_MASK_SHAPE: tuple = (56, 56)
    IMAGE_RESIZE_MODE: str = "square"
    IMAGE_MIN_DIM: int = 800
    IMAGE_MAX_DIM: int = 1024
    IMAGE_MIN_SCALE: float = 0
    IMAGE_CHANNEL_COUNT: int = 3
    RESIZE_COMPAT: str = "opencv"
    MEAN_PIXEL: np.ndarray = _default(np.array([123.7, 116.8, 103.9]))
    TRAIN_ROIS_PER_IMAGE: int = 200
    ROI_POSITIVE_RATIO: float = 0.33
    POOL_SIZE: int = 7
    MASK_POOL_SIZE: int = 14
    MASK_SHAPE: list = _default([28, 28])
    MAX_GT_INSTANCES: int = 100
    RPN_BBOX_STD_DEV: np.ndarray = _default(np.array([0.1, 0.1, 0.2, 0.2]))
    BBOX_STD_DEV: np.ndarray = _default(np.array([0.1, 0.1, 0.2, 0.2]))
    DETECTION_MAX_INSTANCES: int = 100
    DETECTION_MIN_CONFIDENCE: float = 0.7
    DETECTION_NMS_THRESHOLD: float = 0.3
    LEARNING_RATE: float = 0.001
    LEARNING_MOMENTUM: float = 0.9
    WEIGHT_DECAY: float = 0.0001
    OPTIMIZER: str = "sgd"
    LOSS_WEIGHTS: dict = _default(
        {
            "rpn_class_loss": 1.0,
            "rpn_bbox_loss": 1.0,
            "mrcnn_class_loss": 1.0,
            "mrcnn_bbox_loss": 1.0,
            "mrcnn_mask_loss": 1.0,
        }
    )
    TRAIN_BN: bool | None = False
    GRADIENT_CLIP_NORM: float = 5.0

    def __post_init__(self):
        for key in ARRAYS:
            setattr(self, key, np.array(getattr(self, key), dtype=np.float64))
        self.LOSS_WEIGHTS = dict(self.LOSS_WEIGHTS)
        self.validate()
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        side = self.IMAGE_MIN_DIM if self.IMAGE_RESIZE_MODE == "crop" else self.IMAGE_MAX_DIM
        self.IMAGE_SHAPE = np.array([side, side, self.IMAGE_CHANNEL_COUNT])
        self.IMAGE_META_SIZE = 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES

    def validate(self):
        if self.BACKBONE not in BACKBONES:
            raise StreamerError(f"BACKBONE {self.BACKBONE!r} is unknown: choose one of {', '.join(BACKBONES)}")
        if self.IMAGE_RESIZE_MODE not in RESIZE_MODES:
            raise StreamerError(
                f"IMAGE_RESIZE_MODE {self.IMAGE_RESIZE_MODE!r} is unknown: choose one of {', '.join(RESIZE_MODES)}"
            )
        if self.RESIZE_COMPAT not in RESIZE_COMPATS:
            raise StreamerError(
                f"RESIZE_COMPAT {self.RESIZE_COMPAT!r} is unknown: choose one of {', '.join(RESIZE_COMPATS)}"
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
    def matterport_numerics(self) -> bool:
        """RESIZE_COMPAT "matterport": matterport's resizing and mask pasting, and its ROI Align at the map's
        edge (zeros), its zero-area proposals (classified), its detection layer's order of rows and its box
        deltas (clamped only where matterport's overflow)."""
        return self.RESIZE_COMPAT == "matterport"

    @property
    def box_delta_limit(self) -> float:
        """Where detect clamps height/width box deltas (boxes.py): matterport's boxes wherever they are finite
        in matterport mode, at most 55-fold growth otherwise."""
        from .boxes import DELTA_LIMIT, MATTERPORT_DELTA_LIMIT

        return MATTERPORT_DELTA_LIMIT if self.matterport_numerics else DELTA_LIMIT

    @property
    def class_names(self) -> list[str]:
        if self.CLASS_NAMES:
            return list(self.CLASS_NAMES)
        return ["BG"] + [f"class {i}" for i in range(1, self.NUM_CLASSES)]

    def to_dict(self) -> dict:
        """The settings as JSON values (arrays and tuples as lists; a COMPUTE_BACKBONE_SHAPE function is left out)."""
        out = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if callable(value):
                continue
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, tuple):
                value = list(value)
            out[item.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict, **overrides) -> Config:
        """A config from saved `values` (names this version does not know are skipped), then `overrides`
        (an unknown name is an error)."""
        check_names(overrides)
        names = {item.name for item in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in values.items() if k in names}, **overrides})

    def replace(self, **overrides) -> Config:
        check_names(overrides)
        return dataclasses.replace(self, **overrides)


FIELD_TYPES = {item.name: str(item.type) for item in dataclasses.fields(Config)}


def check_names(settings: dict) -> None:
    """A StreamerError for a setting Config does not have, suggesting the closest names."""
    names = [item.name for item in dataclasses.fields(Config)]
    for key in settings:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=3)
            hint = f"did you mean {' or '.join(close)}?" if close else "see workers/maskrcnn/config.py for the names"
            raise StreamerError(f"unknown Mask R-CNN config setting {key!r}: {hint}")


def user_settings(settings: dict, source: str = "--config/--set") -> dict:
    """Settings as a user gives them (`--config`, `--set`, the listing of matterport's `config.display()`),
    ready for Config: computed names (BATCH_SIZE, IMAGE_SHAPE, …) left out; matterport's names this Config
    has no use for (USE_RPN_ROIS, …) left out, with a note when their value would have changed something;
    each value read as its setting's type (a printed NumPy array `[123.7 116.8 103.9]` or tuple `(56, 56)` as
    numbers). An unknown name, or a value of the wrong kind, is a StreamerError naming it."""
    out = {}
    for key, value in settings.items():
        key = str(key)
        if key in COMPUTED:
            continue
        if key in IGNORED:
            harmless, why = IGNORED[key]
            if _value(key, value, "bool") != harmless:
                log.warning("%s: %s %s is ignored: %s", source, key, value, why)
            continue
        check_names({key: value})
        out[key] = _value(key, value, FIELD_TYPES[key])
    return out


def _value(key: str, value, kind: str):
    """`value` as a setting of type `kind` (a dataclass field's annotation, e.g. "int", "list | None")."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    kinds = [part.strip() for part in kind.split("|")]
    if isinstance(value, str) and "str" not in kinds:
        value = parse_value(value)
    if value is None and "None" in kinds:
        return None
    base = kinds[0]
    if base in ("list", "tuple", "np.ndarray") and key != "CLASS_NAMES":
        value = _numbers(value)
    ok = {
        "int": lambda v: isinstance(v, int) or (isinstance(v, float) and v.is_integer()),
        "float": lambda v: isinstance(v, int | float),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "dict": lambda v: isinstance(v, dict),
        "list": lambda v: isinstance(v, list | tuple),
        "tuple": lambda v: isinstance(v, list | tuple),
        "np.ndarray": lambda v: isinstance(v, list | tuple),
    }.get(base, lambda v: False)
    if not ok(value) or isinstance(value, bool) != (base == "bool"):
        kinds_said = {"np.ndarray": "a list of numbers", "int": "a whole number", "float": "a number"}
        wanted = kinds_said.get(base, f"a {base}")
        raise StreamerError(f"{key} {value!r}: expected {wanted}")
    if base == "int":
        return int(value)
    if base == "float":
        return float(value)
    if base == "tuple":
        return tuple(value)
    if base in ("list", "np.ndarray"):
        return list(value)
    return value


def _numbers(value):
    """Strings of numbers inside a list (YAML reads `[123.7 116.8 103.9]` as one string) as the numbers."""
    if isinstance(value, list | tuple):
        items = []
        for item in value:
            if isinstance(item, str) and re.fullmatch(r"[\s0-9.eE+-]+", item):
                items.extend(parse_value(part) for part in item.split())
            else:
                items.append(item)
        return items
    return value


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
    return Config.from_dict(values, **overrides)


def model_config(
    kind: str,
    class_names: list[str],
    backbone: str | None = None,
    batch_size: int | None = None,
    overrides: dict | None = None,
    architecture: dict | None = None,
) -> Config:
    """The Config for a data set of `kind` (shapes | via | coco) with `class_names` (BG first): the shapes
    sample's settings for shapes, matterport's defaults on ResNet-50 otherwise; then the `architecture`
    settings of an initial weights file, `backbone`, `batch_size` (IMAGES_PER_GPU) and the `overrides`."""
    values = shapes_config().to_dict() if kind == "shapes" else {"NAME": kind, "BACKBONE": "resnet50"}
    values.update(architecture or {})
    if backbone:
        values["BACKBONE"] = backbone
    values["NUM_CLASSES"] = len(class_names)
    values["CLASS_NAMES"] = list(class_names)
    if batch_size:
        values["IMAGES_PER_GPU"] = batch_size
    return Config.from_dict(values, **(overrides or {}))


# TrainConfig fields a resumed run may change: the learning rate and the trained layers may change between
# stages (the optimizer starts afresh each time), the output file is only written at the end
RESUMABLE = {"epochs", "resume", "out", "output", "learning_rate", "layers"}


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

    data: str = "shapes"  # shapes | via:DIR | coco:ANNOTATIONS.json:IMAGES_DIR
    samples: int | None = None  # shapes: generated training images (default 10000); via/coco: the first N
    backbone: str | None = None  # None: light for shapes, resnet50 otherwise, or the --init file's
    overrides: dict = field(default_factory=dict)  # Config settings (--set KEY=VALUE)
    seed: int = 0
    val_fraction: float = 0.1  # coco: images held out for validation
    layers: str | None = None  # heads | 3+ | 4+ | 5+ | all | REGEX; None: heads with --init, all without
    epochs: int = 10
    init: str | None = None  # initial weights: ours or a matterport / Keras 2 .h5
    exclude: list[str] = field(default_factory=list)  # layers of `init` not to load
    resume: bool = False
    out: str = "runs/maskrcnn"
    output: str | None = None  # final weights (None: OUT/mask_rcnn_NAME.weights.h5)
    learning_rate: float | None = None  # None: the Config's LEARNING_RATE
    steps_per_epoch: int | None = None  # None: STEPS_PER_EPOCH
    validation_steps: int | None = None  # None: VALIDATION_STEPS
    batch_size: int | None = None  # images per step (IMAGES_PER_GPU); None: the Config's
    augment: bool = True  # albumentations augmentation

    def validate(self) -> None:
        """Reject values that cannot train, with the option to fix in the message."""
        checks = [
            (self.epochs >= 1, f"--epochs {self.epochs}: must be at least 1"),
            (self.batch_size is None or self.batch_size >= 1, f"--batch-size {self.batch_size}: must be at least 1"),
            (
                self.learning_rate is None or self.learning_rate > 0,
                f"--learning-rate {self.learning_rate}: must be positive",
            ),
            (0 <= self.val_fraction < 1, f"--val-fraction {self.val_fraction}: must be in [0, 1)"),
            (self.steps_per_epoch is None or self.steps_per_epoch >= 1, "--steps-per-epoch: must be at least 1"),
            (self.validation_steps is None or self.validation_steps >= 0, "--validation-steps: must be at least 0"),
            (self.samples is None or self.samples >= 1, f"--samples {self.samples}: must be at least 1"),
            (
                self.backbone is None or self.backbone in BACKBONES,
                f"--backbone {self.backbone}: choose one of {', '.join(BACKBONES)}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise StreamerError(message)
        check_names(self.overrides)


@dataclass
class EvaluateConfig:
    """What an evaluation measures: the model from `weights` on the images of `data`."""

    data: str = "shapes"  # shapes | via:DIR | coco:ANNOTATIONS.json:IMAGES_DIR
    weights: str | None = None  # None: the bundled shapes demo weights
    samples: int | None = None  # shapes: generated images (default 100); via/coco: the first N (default all)
    seed: int = 0  # shapes: images come from a stream of this seed that training never uses
    split: str = "val"  # via: which folder
    backbone: str | None = None  # for weights without a saved Config (matterport files)
    overrides: dict = field(default_factory=dict)  # Config settings (--set KEY=VALUE)
    iou_threshold: float = 0.5  # mask IoU of a true positive for the VOC-style mAP
    coco: bool = True  # also the pycocotools mask AP
    batch_size: int = 1
    threshold: float | None = None  # DETECTION_MIN_CONFIDENCE; None: the weights'
    device: str | None = None

    def validate(self) -> None:
        checks = [
            (self.batch_size >= 1, f"--batch-size {self.batch_size}: must be at least 1"),
            (self.samples is None or self.samples >= 1, f"--samples {self.samples}: must be at least 1"),
            (0 < self.iou_threshold <= 1, f"--iou {self.iou_threshold}: must be in (0, 1]"),
            (self.split in ("val", "train"), f"--split {self.split}: choose val or train"),
        ]
        for ok, message in checks:
            if not ok:
                raise StreamerError(message)
        check_names(self.overrides)
