"""A live input's latency, arrival → encoded, is reported with its parts, and a frame does not queue behind
model calls: the model is handed the newest frame when it is free."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from media import make_video

from streamer.prediction import Prediction

pytestmark = pytest.mark.timeout(60)
MODEL_SECONDS = 0.2  # per model call; the input comes every 33 ms, so most frames are dropped


class Slower:
    name = "slower"

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        time.sleep(MODEL_SECONDS)
        return [Prediction(semantic=np.ones(frames.shape[1:3], np.uint8)) for _ in frames]


def slower(config) -> Slower:
    return Slower()


def test_live_latency_has_its_parts_and_no_frame_waits_for_a_model_call(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=75)  # 2.5 s at 30 fps, played as live (paced)
    code, out, err = run_cli(
        "process",
        source,
        "-o",
        tmp_path / "out.mp4",
        "--model",
        f"{__name__}:slower",
        "--live",
        "--batch",
        "4",  # live inputs take one frame per call whatever the batch
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    parts = summary["latency_parts"]
    assert set(parts) == {"total", "queue", "inference", "render", "encode"}
    assert parts["total"]["p95"] == pytest.approx(summary["latency_p95"])
    assert MODEL_SECONDS <= parts["inference"]["p50"] < MODEL_SECONDS + 0.1
    # the frame the model takes arrived at most about one frame interval (33 ms) before: never one that
    # waited behind a model call (≥ 200 ms), as a queue of two or more frames would have made it
    assert parts["queue"]["p95"] < MODEL_SECONDS
    assert summary["dropped"] > 20 and summary["frames"] + summary["dropped"] == 75
    assert parts["total"]["p50"] < 2 * MODEL_SECONDS
