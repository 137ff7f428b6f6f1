"""Training: a tiny U-Net learns (loss falls), checkpoints after every epoch, and resumes where it stopped."""

import json

import numpy as np
import pytest

from streamer.errors import StreamerError
from streamer.models import ModelConfig
from workers.unet.config import TrainConfig
from workers.unet.predictor import load
from workers.unet.train import train

TINY = dict(
    width=0.0625,
    input_height=32,
    input_width=64,
    samples=24,
    batch_size=4,
    steps_per_epoch=5,
    learning_rate=3e-3,
    dropout=0.0,
    val_fraction=0.25,
    seed=1,
    workers=1,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A two-epoch run, shared by the tests below (training is the slow part)."""
    out = tmp_path_factory.mktemp("run") / "unet"
    result = train(TrainConfig(**TINY, epochs=2, out=str(out)))
    return out, result


def test_loss_falls_and_checkpoints_are_written(run, capsys):
    out, result = run
    assert result.epochs_done == 2
    losses = [entry["loss"] for entry in result.history]
    assert losses[-1] < losses[0]
    assert {"loss", "iou", "val_loss", "val_iou"} <= set(result.history[-1])
    # last.keras carries the optimizer state for --resume; best.keras is architecture + weights only
    import keras

    assert keras.saving.load_model(out / "last.keras").optimizer is not None
    assert getattr(keras.saving.load_model(out / "best.keras"), "optimizer", None) is None
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 2 and state["config"]["width"] == 0.0625
    assert state["best"]["metric"] == "val_iou"
    assert not list(out.glob(".*"))  # temporary files were renamed


def test_checkpoint_is_usable_by_the_predictor(run):
    out, _ = run
    model = load(ModelConfig(weights=str(out / "best.keras"), batch_size=2))
    (prediction,) = model.predict(np.zeros((1, 45, 90, 3), np.uint8))
    assert prediction.semantic.shape == (45, 90)


def test_resume_continues_at_the_next_epoch(run, capsys):
    out, _ = run
    capsys.readouterr()
    result = train(TrainConfig(**TINY, epochs=3, out=str(out), resume=True))
    printed = capsys.readouterr().out
    assert "epoch 3/3" in printed and "epoch 1/3" not in printed and "epoch 2/3" not in printed
    assert [entry["epoch"] for entry in result.history] == [1, 2, 3]
    assert json.loads((out / "state.json").read_text())["epoch"] == 3


def test_resume_refuses_a_different_config_and_fresh_runs_refuse_a_used_folder(run):
    out, _ = run
    with pytest.raises(StreamerError, match="width: run has 0.0625, asked 0.125"):
        train(TrainConfig(**{**TINY, "width": 0.125}, epochs=5, out=str(out), resume=True))
    with pytest.raises(StreamerError, match="already holds a training run"):
        train(TrainConfig(**TINY, epochs=1, out=str(out)))


def test_init_starts_from_a_model_file_and_refuses_another_architecture(run, tmp_path):
    out, _ = run
    import keras

    start = keras.saving.load_model(out / "best.keras")
    result = train(TrainConfig(**TINY, epochs=1, out=str(tmp_path / "init"), init=str(out / "best.keras")))
    trained = keras.saving.load_model(tmp_path / "init" / "last.keras")
    # one epoch on top of the file: close to its weights, unlike a fresh start
    moved = [np.abs(a - b).max() for a, b in zip(start.get_weights(), trained.get_weights())]
    assert result.epochs_done == 1 and max(moved) < 0.2
    with pytest.raises(StreamerError, match="--init .*layers differ.*same --arch, --width"):
        train(
            TrainConfig(**{**TINY, "width": 0.125}, epochs=1, out=str(tmp_path / "wide"), init=str(out / "best.keras"))
        )


def test_cli_trains_and_resumes_with_saved_options(tmp_path, run_cli):
    out = tmp_path / "cli"
    code, printed, err = run_cli(
        "train",
        "unet",
        "--data",
        "synthetic-roads",
        "--samples",
        "6",
        "--size",
        "64x32",
        "--width",
        "0.0625",
        "--epochs",
        "1",
        "--batch-size",
        "3",
        "--val-fraction",
        "0",
        "--out",
        out,
    )
    assert code == 0, err
    assert "epoch 1/1" in printed and (out / "best.keras").exists()
    code, printed, err = run_cli("train", "unet", "--out", out, "--resume", "--epochs", "2")
    assert code == 0, err
    assert "epoch 2/2" in printed and "epoch 1/2" not in printed
    assert json.loads((out / "state.json").read_text())["config"]["input_width"] == 64


def test_cli_errors(tmp_path, run_cli):
    with pytest.raises(SystemExit) as stopped:  # argparse: usage and "invalid choice", exit 2
        run_cli("train", "segnet", "--data", "synthetic-roads")
    assert stopped.value.code == 2
    code, _, err = run_cli("train", "unet", "--data", "synthetic-roads", "--size", "60x30", "--out", tmp_path / "x")
    assert code == 2 and "divisible by 16" in err
    code, _, err = run_cli("train", "unet", "--data", f"kitti:{tmp_path / 'none'}")
    assert code == 2 and f"KITTI folder {tmp_path / 'none'}: not found" in err
    code, _, err = run_cli("train", "unet", "--resume", "--out", tmp_path / "nothing")
    assert code == 2 and "nothing to resume" in err
