"""The bundled demo weights: small, load through the registry, and reach the model card's held-out IoU
on scenes generated fresh with a seed the card never used."""

import re

import numpy as np

from streamer.models import ModelConfig, load_model
from workers.unet.config import EvaluateConfig
from workers.unet.evaluate import evaluate
from workers.unet.weights import DEMO_WEIGHTS

CARD = DEMO_WEIGHTS.parent / "MODEL_CARD.md"
TOLERANCE = 0.03  # a 64-scene sample mean vs the card's 200-scene mean


def card_iou() -> float:
    match = re.search(r"held-out mean IoU[^|]*\|\s*\*\*([0-9.]+)\*\*", CARD.read_text())
    assert match, f"{CARD} has no 'held-out mean IoU | **value**' row"
    return float(match.group(1))


def test_demo_weights_are_bundled_and_small():
    assert DEMO_WEIGHTS.is_file()
    assert DEMO_WEIGHTS.stat().st_size < 10 * 2**20


def test_demo_model_segments_frames_at_their_size():
    model = load_model(ModelConfig(name="unet"))  # weights=None → the demo weights
    frames = np.zeros((3, 100, 177, 3), np.uint8)
    predictions = model.predict(frames)
    assert [p.semantic.shape for p in predictions] == [(100, 177)] * 3


def test_demo_weights_reach_the_model_card_iou_on_fresh_scenes():
    result = evaluate(EvaluateConfig(data="synthetic-roads", samples=64, seed=20260101))
    assert len(result.ious) == 64
    assert result.mean >= card_iou() - TOLERANCE, (result.mean, card_iou())
    assert np.median(result.ious) >= card_iou() - TOLERANCE


def card_video_iou() -> float:
    match = re.search(r"^measured_video_iou:\s*([0-9.]+)", CARD.read_text(), re.MULTILINE)
    assert match, f"{CARD} has no 'measured_video_iou:' line"
    return float(match.group(1))


def test_demo_weights_hold_on_a_fresh_sample_road_video(tmp_path, run_cli):
    """`streamer sample road` at its default 1280×720, a seed the card never used: the card's video IoU holds."""
    video, truth = tmp_path / "road.mp4", tmp_path / "road.json"
    code, _, err = run_cli("sample", "road", "-o", video, "--seconds", "0.4", "--seed", "8128", "--annotations", truth)
    assert code == 0, err
    result = evaluate(EvaluateConfig(data=f"video:{video}:{truth}"))
    assert len(result.ious) == 12
    assert result.mean >= card_video_iou() - TOLERANCE, (result.ious, card_video_iou())
