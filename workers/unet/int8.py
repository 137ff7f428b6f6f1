"""`streamer export unet --int8 --calibrate VIDEO`: what the INT8 export (workers/runtimes/int8.py) needs of
a U-Net. Calibration frames are resized and scaled as the predictor does; the held-out clip is a `sample
road` with its road ground truth; the score is `evaluate unet`'s mean road IoU against it, and the
agreement the fraction of mask pixels equal to float32's (at least 0.99 by default).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.models import ModelConfig
from workers.runtimes.quantize import CONVOLUTIONAL
from workers.unet.synthetic import ROAD_SAMPLE

BATCH = 4


class UNetInt8:
    sample = ROAD_SAMPLE
    score = "road_iou"
    min_agreement = 0.99
    agreement_unit = "mask pixels"
    ops = CONVOLUTIONAL  # the whole network

    def load(self, path: Path):
        from workers.unet.predictor import UNetPredictor

        return UNetPredictor(ModelConfig(name="unet", weights=str(path), precision="f32", batch_size=BATCH))

    def calibration(self, predictor, frames: np.ndarray) -> list[dict[str, np.ndarray]]:
        name = _input_name(predictor.path.read_bytes())
        shrunk = [predictor._to_input(predictor.shrink(frames[i : i + BATCH])) for i in range(0, len(frames), BATCH)]
        return [{name: batch} for batch in shrunk]

    def evaluate(self, predictor, video: Path, annotations: Path) -> dict:
        from workers.unet.config import EvaluateConfig
        from workers.unet.evaluate import evaluate

        result = evaluate(EvaluateConfig(data=f"video:{video}:{annotations}", batch_size=BATCH), model=predictor)
        return {"road_iou": result.mean}

    def agreement(self, f32: list, int8: list) -> dict:
        a, b = (np.stack([p.semantic for p in found]) for found in (f32, int8))
        return {"agreement": float((a == b).mean())}

    def describe(self, report: dict) -> str:
        return (
            f"masks agree with f32 on {report['agreement'] * 100:.3f}% of the pixels "
            f"(bound {report['bounds']['min_agreement'] * 100:.1f}%)"
        )


def _input_name(data: bytes) -> str:
    import onnx

    graph = onnx.load_from_string(data).graph
    constants = {item.name for item in graph.initializer}
    return next(item.name for item in graph.input if item.name not in constants)
