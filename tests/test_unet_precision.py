"""The U-Net's uint8 path (one resize in, scores quantised at model size, one uint8 resize out) against the float
path it replaced, and --precision: f32 and bf16 masks, auto's choice, and the errors for what cannot be had."""

import json
import logging

import numpy as np
import pytest
from media import make_video
from unet_helpers import save_channel_model, save_gray_model

import workers.predictor
from streamer.errors import StreamerError
from streamer.models import ModelConfig
from workers import precision
from workers.predictor import bf16_cpu
from workers.unet.predictor import load

needs_bf16 = pytest.mark.skipif(bf16_cpu() is None, reason="this CPU has no bfloat16 instructions")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    return {"gray": save_gray_model(folder / "gray.keras"), "rgb": save_channel_model(folder / "rgb.keras")}


def edge_frames() -> np.ndarray:
    """Two 180×320 frames: a grey ramp across the width crossing 0.5 mid-frame, and a bright disc with a
    diagonal bright band on a dark ground (sharp edges at every angle)."""
    height, width = 180, 320
    ramp = np.broadcast_to(np.linspace(60, 200, width)[None, :, None], (height, width, 3))
    y, x = np.mgrid[:height, :width]
    shapes = np.full((height, width), 40.0)
    shapes[(y - 90) ** 2 + (x - 100) ** 2 < 60**2] = 220
    shapes[np.abs((x - 200) - (y - 90)) < 25] = 200
    return np.stack([ramp, np.repeat(shapes[..., None], 3, -1)]).round().astype(np.uint8)


def float_path(model, frames: np.ndarray, threshold: float) -> np.ndarray:
    """The former way: antialiased bilinear resize of the frames in float, the model, a bilinear resize of the
    float probabilities to the frame size, then the threshold."""
    import tensorflow as tf

    x = tf.image.resize(frames, model.input_shape[1:3], method="bilinear", antialias=True) / 255.0
    probabilities = tf.image.resize(model(x, training=False), frames.shape[1:3], method="bilinear")
    return (probabilities.numpy()[..., 0] > threshold).astype(np.uint8)


def test_uint8_path_masks_match_the_float_path_on_ramps_and_edges(weights):
    frames = edge_frames()
    for threshold in (0.5, 0.3):
        model = load(ModelConfig(weights=str(weights["gray"]), batch_size=2, threshold=threshold))
        new = np.stack([p.semantic for p in model.predict(frames)])
        old = float_path(model.model, frames, threshold)
        assert new.shape == old.shape == (2, 180, 320)
        assert new.dtype == np.uint8 and set(np.unique(new)) <= {0, 1}
        differ = (new != old).mean(axis=(1, 2))
        assert (differ < 0.005).all(), differ  # only pixels along edges may move
        assert new[1, 90, 100] == 1 and new[1, 5, 5] == 0  # inside the disc, the dark corner
        # the ramp's road starts at the same column in every row, within two pixels of the float path's
        assert (new[0] == new[0, :1]).all()
        assert abs(int(np.argmax(new[0, 0])) - int(np.argmax(old[0, 0]))) <= 2


def test_multi_class_masks_follow_the_largest_score_at_frame_size(weights):
    frames = np.zeros((1, 60, 90, 3), np.uint8)
    frames[0, :, :30, 0] = 200  # red → class 0
    frames[0, :, 30:60, 1] = 200  # green → class 1
    frames[0, :, 60:, 2] = 200  # blue → class 2
    (prediction,) = load(ModelConfig(weights=str(weights["rgb"]), batch_size=1)).predict(frames)
    semantic = prediction.semantic
    assert semantic.shape == (60, 90) and semantic.dtype == np.uint8
    assert (semantic[:, :27] == 0).all() and (semantic[:, 33:57] == 1).all() and (semantic[:, 63:] == 2).all()


def test_f32_is_the_float32_model(weights):
    model = load(ModelConfig(weights=str(weights["gray"]), precision="f32"))
    assert model.precision == "f32"
    assert model.model.get_layer("gray").compute_dtype == "float32"


@needs_bf16
def test_bf16_masks_agree_with_f32_masks(weights):
    frames = edge_frames()
    plain = load(ModelConfig(weights=str(weights["gray"]), batch_size=2, precision="f32"))
    half = load(ModelConfig(weights=str(weights["gray"]), batch_size=2, precision="bf16"))
    assert half.precision == "bf16"
    assert half.model.get_layer("gray").compute_dtype == "bfloat16"
    assert half.model.get_layer("head").compute_dtype == "float32"  # outputs stay float32
    a = np.stack([p.semantic for p in plain.predict(frames)])
    b = np.stack([p.semantic for p in half.predict(frames)])
    assert b.any() and not b.all()
    assert (a == b).mean() > 0.99  # bfloat16 keeps 8 bits of mantissa: the ramp's edge may move a few columns


def test_bf16_on_a_cpu_without_it_is_a_user_error(weights, monkeypatch, run_cli, tmp_path):
    monkeypatch.setattr(workers.predictor, "bf16_cpu", lambda: None)
    with pytest.raises(StreamerError, match="--precision bf16: this CPU has no bfloat16 instructions"):
        load(ModelConfig(weights=str(weights["gray"]), precision="bf16", device="/CPU:0"))
    clip = make_video(tmp_path / "in.mp4", frames=2)
    code, _, err = run_cli(
        "process", clip, "-o", tmp_path / "out.mp4", "--weights", weights["gray"], "--precision", "bf16", "-q"
    )
    assert code == 2
    assert "streamer: error: --precision bf16: this CPU has no bfloat16 instructions" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out.mp4").exists()


def test_bf16_with_mixed_precision_or_an_unknown_precision_is_a_user_error(weights):
    with pytest.raises(StreamerError, match="choose one"):
        load(ModelConfig(weights=str(weights["gray"]), precision="bf16", mixed_precision=True))
    with pytest.raises(StreamerError, match="--precision fp8: choose one of auto, f32, bf16"):
        ModelConfig(precision="fp8")


def test_auto_measures_nothing_where_f32_is_the_only_precision(weights, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(workers.predictor, "bf16_cpu", lambda: None)
    model = load(ModelConfig(weights=str(weights["gray"])))
    assert model.precision == "f32" and model.precision_choice is None
    assert not (tmp_path / "streamer" / "precision.json").exists()


def test_measure_keeps_the_fastest_candidate_that_agrees():
    """Calls that sleep for a known time: a fast one that changes masks is refused, the fastest agreeing one
    is chosen, one no faster than f32 is not."""
    import time

    masks = np.zeros((2, 8, 8), np.uint8)
    wrong = masks.copy()
    wrong[:, :2] = 1  # 25 % of the pixels differ

    def call(seconds, answer):
        return lambda probe: time.sleep(seconds) or answer

    probe = np.zeros((2, 8, 8, 3), np.uint8)
    choice = precision.measure(
        {"f32": call(0.02, masks), "fast": call(0.002, wrong), "good": call(0.008, masks), "slow": call(0.03, masks)},
        probe,
        budget=0.5,
    )
    assert choice.precision == "good" and "the speed of f32" in choice.reason
    assert choice.agreement["fast"] == 0.75 and choice.agreement["good"] == 1.0
    assert choice.seconds["fast"] < choice.seconds["good"] < choice.seconds["f32"] < choice.seconds["slow"]
    choice = precision.measure({"f32": call(0.002, masks), "slow": call(0.02, masks)}, probe, budget=0.2)
    assert choice.precision == "f32" and choice.reason == "no other precision is faster"
    choice = precision.measure({"f32": call(0.02, masks), "fast": call(0.002, wrong)}, probe, budget=0.2)
    assert choice.precision == "f32" and "fast is faster but agrees on only 75.000%" in choice.reason


@needs_bf16
def test_auto_picks_from_a_probe_it_ran_and_remembers_it(weights, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with caplog.at_level(logging.INFO, logger="workers.unet.predictor"):
        model = load(ModelConfig(weights=str(weights["gray"]), device="/CPU:0"))
    choice = model.precision_choice
    assert not choice.cached and set(choice.seconds) == {"f32", "bf16"} and min(choice.seconds.values()) > 0
    faster = choice.seconds["bf16"] * precision.FASTER <= choice.seconds["f32"]
    wanted = "bf16" if faster and choice.agreement["bf16"] >= precision.AGREEMENT else "f32"
    assert model.precision == choice.precision == wanted
    assert f"--precision auto: {wanted}: " in caplog.text and "probe batch f32 " in caplog.text
    cache = json.loads((tmp_path / "streamer" / "precision.json").read_text())
    assert [entry["precision"] for entry in cache.values()] == [wanted]
    again = load(ModelConfig(weights=str(weights["gray"]), device="/CPU:0"))
    assert again.precision_choice.cached and again.precision == wanted
    assert again.precision_choice.seconds == choice.seconds  # read back, not measured again
    monkeypatch.setattr(precision, "AGREEMENT", 1.01)  # no agreement is good enough: another model file
    other = tmp_path / "other.keras"
    other.write_bytes(weights["gray"].read_bytes())
    refused = load(ModelConfig(weights=str(other), device="/CPU:0"))
    assert refused.precision == "f32" and not refused.precision_choice.cached


@needs_bf16
def test_openvino_bf16_masks_agree_with_f32_and_serve_two_threads_at_once(weights):
    pytest.importorskip("openvino")
    pytest.importorskip("tf2onnx")
    from concurrent.futures import ThreadPoolExecutor

    frames = edge_frames()
    plain = load(ModelConfig(weights=str(weights["gray"]), batch_size=2, precision="f32"))
    half = load(ModelConfig(weights=str(weights["gray"]), batch_size=2, precision="bf16", runtime="openvino"))
    assert half.precision == "bf16"
    expected = np.stack([p.semantic for p in plain.predict(frames)])
    with ThreadPoolExecutor(2) as pool:  # as --parallel-batches 2 calls it
        answers = list(pool.map(lambda _: np.stack([p.semantic for p in half.predict(frames)]), range(6)))
    for got in answers:
        assert (got == expected).mean() > 0.99
        assert (got == answers[0]).all()


def test_process_and_worker_take_precision_into_the_model_config():
    import argparse

    from streamer.cli import common, worker

    parser = argparse.ArgumentParser()
    common.add_model_arguments(parser)
    assert common.model_config(parser.parse_args([])).precision == "auto"
    assert common.model_config(parser.parse_args(["--precision", "f32"])).precision == "f32"
    commands = argparse.ArgumentParser().add_subparsers()
    worker.add_parser(commands)
    (worker_parser,) = commands.choices.values()
    assert worker_parser.parse_args(["--redis", "redis://x", "--precision", "bf16"]).precision == "bf16"


def test_process_json_says_what_auto_chose_and_why(weights, monkeypatch, tmp_path, run_cli):
    """`--json` carries the choice `--precision auto` made for the model that ran, with its measurements (or says
    nothing where the model measured nothing: float32 is then the only precision on this CPU)."""
    from media import make_video

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    source = make_video(tmp_path / "in.mp4", frames=4, width=96, height=64)
    code, out, err = run_cli("process", source, "-o", tmp_path / "o.mp4", "--weights", weights["gray"], "--json")
    assert code == 0, err
    summary = json.loads(out)
    model = load(ModelConfig(weights=str(weights["gray"]), device="/CPU:0"))
    if model.precision_choice is None:
        assert "precision" not in summary
    else:
        chosen = summary["precision"]
        assert chosen["precision"] == model.precision and chosen["reason"] and set(chosen["seconds"]) == {"f32", "bf16"}
