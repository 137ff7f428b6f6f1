"""IoU exactly as the user's notebook defines it, and evaluation through the predictor."""

import json

import numpy as np
import pytest
from unet_helpers import save_gray_model, write_kitti

from streamer.prediction import Prediction
from workers.unet.config import EvaluateConfig
from workers.unet.evaluate import evaluate, iou
from workers.unet.sources import SyntheticSource


def test_iou_of_hand_made_masks():
    target = np.array([[1, 1, 1, 0]], bool)
    assert iou(target, np.array([[1, 1, 0, 0]])) == pytest.approx(2 / 3)
    assert iou(target, np.array([[0, 0, 0, 1]])) == 0.0
    assert iou(target, target) == 1.0
    assert iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0  # nothing to find, nothing found
    with pytest.raises(ValueError, match="shape"):
        iou(np.zeros((2, 2)), np.zeros((2, 3)))


class Everything:
    """Predicts road everywhere: each image's IoU is then exactly its road fraction."""

    name = "everything"

    def __init__(self):
        self.sizes = []

    def predict(self, frames):
        self.sizes.append(frames.shape)
        return [Prediction(semantic=np.ones(frames.shape[1:3], np.uint8)) for _ in frames]


def test_evaluate_synthetic_with_a_known_prediction():
    model = Everything()
    config = EvaluateConfig(data="synthetic-roads", samples=5, seed=3, frame_size=(72, 128), batch_size=2)
    result = evaluate(config, model=model)
    source = SyntheticSource(5, 3, "test", (72, 128))
    expected = [source.sample(i)[1].mean() for i in range(5)]
    assert result.ious == pytest.approx(expected)
    assert result.mean == pytest.approx(np.mean(expected))
    assert [s[0] for s in model.sizes] == [2, 2, 1] and all(s[1:3] == (72, 128) for s in model.sizes)
    assert 0.05 < result.mean < 0.9


def test_evaluate_kitti_at_original_size(tmp_path):
    masks = write_kitti(tmp_path / "kitti", count=3)
    result = evaluate(EvaluateConfig(data=f"kitti:{tmp_path / 'kitti'}"), model=Everything())
    assert result.names == ["000000_10", "000001_10", "000002_10"]
    assert result.ious == pytest.approx([m.mean() for m in masks])


def test_evaluate_cli_json(tmp_path, run_cli):
    weights = save_gray_model(tmp_path / "gray.keras")
    code, out, err = run_cli(
        "evaluate",
        "unet",
        "--data",
        "synthetic-roads",
        "--samples",
        "3",
        "--seed",
        "5",
        "--frame-size",
        "128x72",
        "--weights",
        weights,
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["count"] == 3 and len(report["images"]) == 3
    assert report["mean_iou"] == pytest.approx(np.mean([i["iou"] for i in report["images"]]))
    code, out, _ = run_cli(
        "evaluate",
        "unet",
        "--data",
        "synthetic-roads",
        "--samples",
        "2",
        "--frame-size",
        "128x72",
        "--weights",
        weights,
    )
    assert code == 0 and out.strip().splitlines()[-1].startswith("mean IoU over 2 images:")


def test_evaluate_cli_errors(tmp_path, run_cli, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("evaluate", "segnet", "--data", "synthetic-roads")
    assert exit_.value.code == 2 and "invalid choice: 'segnet'" in capsys.readouterr().err
    code, _, err = run_cli("evaluate", "unet", "--data", "cityscapes", "--weights", tmp_path / "x.keras")
    assert code == 2 and "expected kitti:DIR" in err
    code, _, err = run_cli("evaluate", "unet", "--data", "synthetic-roads", "--weights", tmp_path / "x.keras")
    assert code == 2 and f"weights file {tmp_path / 'x.keras'}: not found" in err
