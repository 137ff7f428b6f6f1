"""Models by name: `load_model(ModelConfig(name="unet"))` → object with `predict(frames)`.

Factories are named by import path so that asking for an unknown model, or listing the
names, never imports TensorFlow.
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
}


@dataclass
class ModelConfig:
    """How to build a model for inference."""

    name: str = "unet"
    weights: str | None = None  # None: the model's bundled demo weights
    batch_size: int = 4
    threshold: float = 0.5
    mixed_precision: bool = False  # float16 compute where a GPU supports it
    device: str | None = None  # e.g. "/GPU:0" or "/CPU:0"; None lets TensorFlow place ops


class Model(Protocol):
    name: str

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        """frames: uint8[B,H,W,3] RGB → one Prediction per frame, at frame size."""


def model_names() -> list[str]:
    return sorted(FACTORIES)


def check_model_name(name: str) -> None:
    if name not in FACTORIES:
        raise StreamerError(f"unknown model {name!r}: choose one of {', '.join(model_names())}")


def load_model(config: ModelConfig) -> Model:
    check_model_name(config.name)
    module_name, _, attr = FACTORIES[config.name].partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(config)
