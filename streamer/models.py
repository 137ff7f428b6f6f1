"""The model contract and registry: `load_model(ModelConfig(name="unet"))` → object with `predict(frames)`.

Factories are named by import path so that asking for an unknown model, or listing the
names, never imports TensorFlow. A name of the form `package.module:function` loads a
user's own model factory the same way.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from streamer.errors import StreamerError
from streamer.prediction import Prediction

FACTORIES = {
    "unet": "workers.unet.predictor:load",
    "identity": "workers.identity:load",
    "maskrcnn": "workers.maskrcnn.predictor:load",
}


@dataclass
class ModelConfig:
    """How to build a model for inference."""

    name: str = "unet"
    weights: str | None = None  # None: the model's bundled demo weights
    batch_size: int = 4
    threshold: float | None = None  # None: the model's own default
    mixed_precision: bool = False  # float16 compute, float32 variables (fast on GPUs; works on any device)
    device: str | None = None  # e.g. "/GPU:0" or "/CPU:0"; None lets TensorFlow place ops

    def __post_init__(self) -> None:
        """The one place a model name and batch size are checked."""
        check_model_name(self.name)
        if self.batch_size < 1:
            raise StreamerError(f"--batch {self.batch_size}: must be at least 1")


class Model(Protocol):
    name: str

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        """frames: uint8[B,H,W,3] RGB → one Prediction per frame, at frame size."""


def model_names() -> list[str]:
    return sorted(FACTORIES)


def check_model_name(name: str) -> None:
    if name not in FACTORIES and ":" not in name:
        raise StreamerError(f"unknown model {name!r}: choose one of {', '.join(model_names())}, or give module:factory")


def load_model(config: ModelConfig) -> Model:
    path = FACTORIES.get(config.name, config.name)
    module_name, _, attr = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise StreamerError(f"model {config.name!r}: cannot import {path} ({error})") from None
    return factory(config)
