"""The model contract and registry: `load_model(ModelConfig(name="unet"))` → object with `predict(frames)`.

Each model package describes itself once (`ModelPackage`, its `PACKAGE`); loaders are named by import path
so that asking for an unknown model, or listing the names, never imports TensorFlow. A name of the form
`package.module:function` loads a user's own model factory the same way.
"""

from __future__ import annotations

import functools
import importlib
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import TYPE_CHECKING, Protocol

from streamer.errors import StreamerError
from streamer.settings import read_settings_file
from streamer.weights_cache import local_weights

if TYPE_CHECKING:  # a ModelConfig is made where no frame is (submit, batch): without NumPy
    import numpy as np

    from streamer.prediction import Prediction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelPackage:
    """What a model package says about itself, once, where it is defined (its module-level `PACKAGE`), as
    torchvision's models register where they are defined: the registry, the option checks made before a model
    loads, and the `train` and `evaluate` subcommands are all built from it. Everything is an import path, so
    that reading it never imports TensorFlow."""

    name: str
    loader: str  # `module:function(ModelConfig)` → the model, ready to predict
    instances: bool = False  # finds instances (masks, boxes, classes, scores), not only a class per pixel
    aliases: tuple[str, ...] = ()  # more names for the same loader (`semantic`: any segmentation model file)
    settings: str | None = None  # `module:function(weights path)` → settings with `.class_names`, read without TF
    commands: str | None = None  # module with add_train_arguments/run_train and add_evaluate_arguments/run_evaluate
    train: str = ""  # one line for `streamer train --help`
    evaluate: str = ""  # one line for `streamer evaluate --help`
    releases: dict[str, str] = field(default_factory=dict)  # --weights NAME → the URL of a published weights file


# the model packages that come with streamer; others are found by their `streamer.models` entry points
BUNDLED = ("workers.unet", "workers.maskrcnn", "workers.identity")
ENTRY_POINTS = "streamer.models"


@functools.cache
def registry() -> dict[str, ModelPackage]:
    """Every registered model package by each of its names."""
    from importlib.metadata import entry_points

    packages = [importlib.import_module(module).PACKAGE for module in BUNDLED]
    packages += [entry.load() for entry in entry_points(group=ENTRY_POINTS)]
    found: dict[str, ModelPackage] = {}
    for package in packages:
        for name in (package.name, *package.aliases):
            found.setdefault(name, package)
    return found


DEFAULT_BATCH = 4  # frames per model call: a TensorFlow call costs enough to be shared by several frames
# ONNX Runtime and OpenVINO: two frames a call run the 720p U-Net job as fast as four on a CPU, with ~80 MB less
# in flight (frames and tensors of two calls at once; benchmarks/serving.py)
RUNTIME_BATCH = 2


@dataclass
class ModelConfig:
    """How to build a model for inference."""

    name: str = "unet"
    weights: str | None = None  # None: the model's bundled demo weights
    batch_size: int | None = None  # frames per model call; None: DEFAULT_BATCH, or RUNTIME_BATCH (runtime_batch)
    threshold: float | None = None  # None: the model's own default
    mixed_precision: bool = False  # float16 compute, float32 variables (fast on GPUs; works on any device)
    precision: str = "auto"  # auto | f32 | bf16 (bfloat16 on CPUs with it); auto: bf16 where faster and agreeing
    device: str | None = None  # e.g. "/GPU:0" or "/CPU:0"; None lets TensorFlow place ops
    runtime: str = "tf"  # semantic models: tf | onnx | openvino
    gpu_memory_limit: int | None = None  # MB of each GPU this process may take; None: memory growth (as needed)
    threads: int | None = None  # CPU threads one model call may use; None: the runtime's default (every core)
    config_file: str | None = None  # JSON or YAML of model settings (Mask R-CNN: matterport's Config names)
    settings: dict = field(default_factory=dict)  # KEY=VALUE settings (--set), applied over config_file's
    class_names: tuple[str, ...] | None = None  # names of the class ids, background first; None: the file's
    exclude: tuple[str, ...] = ()  # layers of the weights file not to load (names or patterns; Mask R-CNN)

    def __post_init__(self) -> None:
        """The one place a model name and batch size are checked."""
        check_model_name(self.name)
        if self.batch_size is None:
            self.batch_size = RUNTIME_BATCH if self.on_exported_runtime() else DEFAULT_BATCH
        if self.batch_size < 1:
            raise StreamerError(f"--batch {self.batch_size}: must be at least 1")
        if self.precision not in ("auto", "f32", "bf16"):
            raise StreamerError(f"--precision {self.precision}: choose one of auto, f32, bf16")
        if self.threads is not None and self.threads < 1:
            raise StreamerError(f"--threads {self.threads}: must be at least 1")
        if self.gpu_memory_limit is not None and self.gpu_memory_limit < 1:
            raise StreamerError(f"--gpu-memory-limit {self.gpu_memory_limit}: give megabytes, at least 1")
        if self.class_names is not None:
            self.class_names = tuple(str(name) for name in self.class_names)
        self.exclude = tuple(str(name) for name in self.exclude or ())

    def on_exported_runtime(self) -> bool:
        """Whether the model runs on ONNX Runtime or OpenVINO: an exported file (.onnx, .xml) or --runtime."""
        suffix = PurePath((self.weights or "").split("?", 1)[0]).suffix.lower()
        return self.runtime != "tf" or suffix in (".onnx", ".xml")

    def all_settings(self) -> dict:
        """config_file's settings with `settings` applied over them."""
        return {**(read_settings_file(self.config_file) if self.config_file else {}), **self.settings}


class Model(Protocol):
    """What the render stage calls. Optional: `reads_pixels = False` (the model needs the frames' size only), and
    `takes_frames_at(height, width) -> (h, w) | None`, the smaller size a model resizes such frames to itself;
    it is then handed frames already at that size, with `frame_size=(height, width)`, the size to answer at;
    and `warm_up(height, width)`, called once before the first frame of that size (to build a graph)."""

    name: str

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        """frames: uint8[B,H,W,3] RGB → one Prediction per frame, at frame size."""


def weights_path(name: str, weights: str | None, cached_only: bool = False) -> str | None:
    """`--weights` of model `name` as a local file: a path as it is; a release name (maskrcnn: coco, balloon) or
    a URL fetched once into the cache (streamer.weights_cache); with `cached_only`, None for one not fetched yet."""
    info = registry().get(name)
    return local_weights(weights, info.releases if info else None, cached_only)


def model_names() -> list[str]:
    return sorted(registry())


def check_model_name(name: str) -> None:
    if name not in registry() and ":" not in name:
        raise StreamerError(f"unknown model {name!r}: choose one of {', '.join(model_names())}, or give module:factory")


def class_names_of(config: ModelConfig) -> tuple[str, ...] | None:
    """The class names of a registered model's weights (BG first), read from the weights file's metadata
    without loading the model; None when that cannot be known before loading."""
    if config.class_names:  # --class-names
        return tuple(config.class_names)
    if getattr(config, "class_names", None):
        return tuple(config.class_names)
    info = registry().get(config.name)
    if info is None or info.settings is None:
        return None
    module_name, _, attr = info.settings.partition(":")
    try:
        module = importlib.import_module(module_name)
        if config.weights:  # a URL not fetched yet: known when the model loads
            weights = weights_path(config.name, config.weights, cached_only=True)
        else:
            weights = getattr(module, "DEMO_WEIGHTS", None)
        names = getattr(module, attr)(weights).class_names if weights else None
        return tuple(names) if names else None
    except Exception:  # an unreadable weights file is reported by the loader, with its own message
        return None


def check_model_effect(name: str, effect, config: ModelConfig | None = None) -> None:
    """Refuse options a registered model cannot serve, before it loads: `--effect instances` and `--track` need a
    model with instances; `--classes` must name classes of its weights (a semantic model's names are known
    when it loads: checked then)."""
    info = registry().get(name)
    if info is None:
        return  # a user's own model: checked when it is loaded
    if not info.instances:
        for wanted, option in (
            (effect.name == "instances", "--effect instances"),
            (effect.track, "--track"),
        ):
            if wanted:
                with_instances = [n for n, i in registry().items() if i.instances]
                raise StreamerError(
                    f"{option}: model {name!r} finds no instances (only a class per pixel); "
                    f"use an instance model such as {', '.join(with_instances)}, or drop {option}"
                )
    if effect.classes and config is not None:
        names = class_names_of(config)
        unknown = [c for c in effect.classes if names is not None and c not in names]
        if unknown:
            raise StreamerError(
                f"--classes {','.join(unknown)}: not classes of this model; it has {', '.join(names[1:])}"
            )


def load_model(config: ModelConfig) -> Model:
    from streamer.progress import native_logs_hidden

    package = registry().get(config.name)
    path = package.loader if package else config.name
    module_name, _, attr = path.partition(":")
    config = replace(config, weights=weights_path(config.name, config.weights))
    started = time.perf_counter()
    log.info("loading model %s", config.name)
    with native_logs_hidden():  # TensorFlow's C++ start-up lines, written as it is imported and builds
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as error:
            raise StreamerError(f"model {config.name!r}: cannot import {path} ({error})") from None
        model = factory(config)
    log.info("model %s loaded in %.2f s", config.name, time.perf_counter() - started)
    return model
