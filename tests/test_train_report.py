"""A training run writes its report as it goes: curves, learning rate, predictions per epoch, config,
metrics and TensorBoard logs."""

import csv
import json

import numpy as np
import pytest
from maskrcnn_helpers import TINY_MASKRCNN
from PIL import Image

UNET = [
    "--data", "synthetic-roads", "--width", "0.0625", "--size", "64x32", "--samples", "16", "--batch-size", "4",
    "--steps-per-epoch", "2", "--val-fraction", "0.25", "--epochs", "2", "--seed", "1",
]  # fmt: skip
MASKRCNN_SETTINGS = dict(
    TINY_MASKRCNN,
    POST_NMS_ROIS_TRAINING=64,
    POST_NMS_ROIS_INFERENCE=32,
    TRAIN_ROIS_PER_IMAGE=16,
)


def picture(path):
    """The PNG as an RGB array, checked to show something (not one flat colour)."""
    assert path.is_file(), f"{path} missing"
    pixels = np.asarray(Image.open(path).convert("RGB"), np.float32)
    assert pixels.shape[0] > 50 and pixels.shape[1] > 50 and pixels.std() > 5, f"{path} is blank"
    return pixels


def check_run(out, curves):
    page = (out / "report.html").read_text()
    for name in (*curves, "learning_rate.png", "predictions/epoch_0002.png"):
        picture(out / name)
        assert name in page, f"report.html does not show {name}"
    assert not np.array_equal(picture(out / "predictions/epoch_0001.png"), picture(out / "loss.png"))
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2"] and all(float(row["loss"]) > 0 for row in rows)
    assert len(json.loads((out / "metrics.json").read_text())) == 2
    assert json.loads((out / "config.json").read_text())["epochs"] == 2
    for split in ("train", "validation"):
        assert list((out / "tensorboard" / split).glob("events.out.tfevents.*")), f"no TensorBoard {split} log"
    return page, rows


def test_unet_two_epochs_write_the_report(run_cli, tmp_path):
    out = tmp_path / "unet"
    code, printed, err = run_cli("train", "unet", *UNET, "--out", out)
    assert code == 0, err
    page, rows = check_run(out, ["loss.png", "metrics.png"])
    assert "val_loss" in rows[0] and "learning_rate" in rows[0] and "val_iou" in rows[0]
    grid = picture(out / "predictions/epoch_0002.png")
    assert grid.shape[1] > grid.shape[0] * 0.8  # four columns: image, truth, probability, prediction


@pytest.mark.timeout(300)
def test_maskrcnn_two_epochs_write_the_report_with_each_loss(run_cli, tmp_path):
    import tensorflow as tf

    out = tmp_path / "maskrcnn"
    settings = [x for key, value in MASKRCNN_SETTINGS.items() for x in ("--set", f"{key}={value}")]
    args = ["--data", "shapes", "--samples", "4", "--batch-size", "2", "--epochs", "2", "--steps-per-epoch", "2"]
    tf.config.run_functions_eagerly(True)  # a few tiny steps: faster than compiling the training graph
    try:
        code, _, err = run_cli("train", "maskrcnn", *args, "--validation-steps", "1", *settings, "--out", out)
    finally:
        tf.config.run_functions_eagerly(False)
    assert code == 0, err
    page, rows = check_run(out, ["loss.png", "losses.png"])
    for component in ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss"):
        assert component in rows[0] and f"val_{component}" in rows[0]
