"""What both model packages promise, tested the same way on tiny weights: one Prediction per frame (a short
batch too) at the frame's size, StreamerError for bad frames and settings, thresholds respected, mixed
precision; the shared Predictor's padding; and the same file set, names and CLI options in both packages."""

import argparse
import importlib
from dataclasses import fields
from pathlib import Path

import keras
import numpy as np
import pytest
from maskrcnn_helpers import TINY_MASKRCNN
from unet_helpers import save_gray_model

from streamer.errors import StreamerError
from streamer.models import ModelConfig, load_model
from streamer.prediction import Prediction
from workers.predictor import Predictor

PACKAGES = ("unet", "maskrcnn")
FILES = ("config", "weights", "predictor", "data", "train", "evaluate", "cli")
# What every frame below gets: unet's grey model answers probability 180/255 = 0.71 for a frame of grey 180;
# maskrcnn's tiny model finds instances of score e^2 / (e^2 + 3) = 0.71 on any frame.
CONFIDENCE = 0.71
GREY = 180


def maskrcnn_weights(path: Path) -> Path:
    """A tiny Mask R-CNN whose class logits are the bias [0, 2, 0, 0]: every proposal is a class-1 instance of
    score 0.71 with a full box mask (the boxes come from the untrained RPN, seeded)."""
    from workers.maskrcnn.config import shapes_config
    from workers.maskrcnn.model import MaskRCNN

    keras.utils.set_random_seed(0)
    settings = shapes_config(
        **TINY_MASKRCNN,
        POST_NMS_ROIS_INFERENCE=32,
        DETECTION_MAX_INSTANCES=5,
    )
    model = MaskRCNN(settings)
    layers = model.layers_by_name()
    kernel, bias = layers["mrcnn_class_logits"].get_weights()
    layers["mrcnn_class_logits"].set_weights([np.zeros_like(kernel), np.array([0.0, 2.0, 0.0, 0.0])])
    layers["mrcnn_bbox_fc"].set_weights([np.zeros_like(w) for w in layers["mrcnn_bbox_fc"].get_weights()])
    kernel, bias = layers["mrcnn_mask"].get_weights()
    layers["mrcnn_mask"].set_weights([np.zeros_like(kernel), np.full_like(bias, 6.0)])
    model.save_weights(path / "tiny.weights.h5")
    return path / "tiny.weights.h5"


WEIGHTS = {"unet": lambda path: save_gray_model(path / "gray.keras"), "maskrcnn": maskrcnn_weights}


def found(prediction: Prediction) -> bool:
    """Whether the prediction found anything (road pixels, or instances)."""
    return bool(prediction.foreground().any())


@pytest.fixture(scope="module", params=PACKAGES)
def package(request, tmp_path_factory):
    """(package name, tiny weights file, a predictor with batch size 2 and threshold 0.6)."""
    name = request.param
    weights = WEIGHTS[name](tmp_path_factory.mktemp(name))
    model = load_model(ModelConfig(name=name, weights=str(weights), batch_size=2, threshold=0.6))
    return name, weights, model


def frames(count: int, height: int = 45, width: int = 90) -> np.ndarray:
    return np.full((count, height, width, 3), GREY, np.uint8)


def test_one_prediction_per_frame_at_frame_size_also_for_short_batches(package):
    _, _, model = package
    assert isinstance(model, Predictor)
    for count in (0, 1, 2, 3, 5):
        predictions = model.predict(frames(count))
        assert len(predictions) == count
        assert all(isinstance(p, Prediction) and p.foreground().shape == (45, 90) for p in predictions)
    (prediction,) = model.predict(frames(1, 61, 33))
    for array in (prediction.semantic, prediction.masks):
        assert array is None or array.shape[:2] == (61, 33)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 45, 90, 3), np.float32),  # not uint8
        np.zeros((2, 45, 90), np.uint8),  # grey
        np.zeros((2, 45, 90, 4), np.uint8),  # RGBA
        np.zeros((45, 90, 3), np.uint8),  # one frame without the batch axis
        np.zeros((2, 0, 90, 3), np.uint8),  # no pixels
        [np.zeros((45, 90, 3), np.uint8), np.zeros((40, 90, 3), np.uint8)],  # different sizes
    ],
    ids=["float32", "grey", "rgba", "no-batch-axis", "empty", "ragged"],
)
def test_bad_frames_raise_streamer_error(package, bad):
    _, _, model = package
    with pytest.raises(StreamerError, match=r"uint8\[B,H,W,3\]|at least 1x1"):
        model.predict(bad)


def test_thresholds_are_respected(package):
    name, weights, model = package
    assert model.threshold == 0.6
    assert all(found(p) for p in model.predict(frames(3)))
    for p in model.predict(frames(3)):
        assert p.scores is None or (p.scores >= 0.6).all()
    strict = load_model(ModelConfig(name=name, weights=str(weights), batch_size=2, threshold=0.8))
    assert not any(found(p) for p in strict.predict(frames(3)))


def test_bad_settings_raise_streamer_error(package):
    name, weights, _ = package
    for settings, message in [
        (dict(batch_size=0), " 0: must be at least 1"),
        (dict(threshold=1.5), "threshold 1.5: must be between 0 and 1"),
        (dict(device="/GPU:3"), "GPU:3.*not available"),
        (dict(weights=str(weights.parent / "missing.h5")), "missing.h5"),
    ]:
        with pytest.raises(StreamerError, match=message):
            load_model(ModelConfig(**{"name": name, "weights": str(weights), **settings}))


def test_mixed_precision_computes_in_float16_with_the_same_findings(package):
    name, weights, model = package
    mixed = load_model(
        ModelConfig(name=name, weights=str(weights), batch_size=2, threshold=0.6, mixed_precision=True, device="/CPU:0")
    )
    network = mixed.model if name == "unet" else mixed.model.keras_model.backbone
    assert any(layer.compute_dtype == "float16" for layer in network.layers)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    plain, half = model.predict(frames(3)), mixed.predict(frames(3))
    assert [found(p) for p in half] == [found(p) for p in plain] == [True] * 3


class Recorder(Predictor):
    """Answers each frame with its own first pixel as a 1×1 map, and records the batches it was given."""

    name = "recorder"

    def __init__(self, batch_size):
        super().__init__(ModelConfig(batch_size=batch_size), default_threshold=0.25)
        self.batches = []

    def predict_batch(self, frames, frame_size):
        self.batches.append(frames.copy())
        return [Prediction(semantic=frame[:1, :1, 0]) for frame in frames]


def test_a_short_batch_is_padded_with_its_last_frame_and_the_padding_answers_dropped():
    model = Recorder(batch_size=4)
    batch = np.arange(6, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 3, 3), np.uint8)
    predictions = model.predict(batch)
    assert [int(p.semantic[0, 0]) for p in predictions] == [0, 1, 2, 3, 4, 5]
    assert [b.shape[0] for b in model.batches] == [4, 4]
    assert [int(frame[0, 0, 0]) for frame in model.batches[1]] == [4, 5, 5, 5]
    assert model.threshold == 0.25  # the package's default when none is configured


@pytest.mark.parametrize("name", PACKAGES)
def test_both_packages_have_the_same_files_and_names(name):
    modules = {file: importlib.import_module(f"workers.{name}.{file}") for file in FILES}
    assert Path(modules["weights"].DEMO_WEIGHTS).is_file()
    for file, names in {
        "config": ("TrainConfig", "EvaluateConfig", "RESUMABLE"),
        "predictor": ("load",),
        "data": ("DATA_HELP", "parse_data", "training_data", "evaluation_data"),
        "train": ("train",),
        "evaluate": ("evaluate", "Evaluation"),
        "cli": ("add_train_arguments", "run_train", "add_evaluate_arguments", "run_evaluate"),
    }.items():
        for attribute in names:
            assert hasattr(modules[file], attribute), f"workers.{name}.{file} has no {attribute}"
    train_fields = {f.name for f in fields(modules["config"].TrainConfig)}
    assert {
        "data",
        "samples",
        "epochs",
        "batch_size",
        "learning_rate",
        "steps_per_epoch",
        "val_fraction",
        "seed",
        "out",
        "resume",
    } <= train_fields
    assert modules["config"].RESUMABLE <= train_fields


def options(add_arguments) -> set[str]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return {name for action in parser._actions for name in action.option_strings if name.startswith("--")}


COMMON_TRAIN = {
    "--data",
    "--samples",
    "--batch",
    "--learning-rate",
    "--epochs",
    "--steps-per-epoch",
    "--val-fraction",
    "--resume",
    "--seed",
    "--out",
}
COMMON_EVALUATE = {"--data", "--weights", "--samples", "--seed", "--batch", "--threshold", "--device", "--json"}


@pytest.mark.parametrize("name", PACKAGES)
def test_both_clis_take_the_same_option_names(name):
    cli = importlib.import_module(f"workers.{name}.cli")
    assert COMMON_TRAIN <= options(cli.add_train_arguments)
    assert COMMON_EVALUATE <= options(cli.add_evaluate_arguments)
    for old in ("--lr", "--steps", "--val", "--images", "--limit"):  # --batch-size stays, hidden, for a release
        assert old not in options(cli.add_train_arguments) | options(cli.add_evaluate_arguments)
