"""`streamer export maskrcnn --format onnx --int8 --calibrate VIDEO`: what the INT8 export
(workers/runtimes/int8.py) needs of a Mask R-CNN. Calibration frames are molded as the exported model's serving
path molds them (molding.py); the held-out clip is a `sample shapes` with its ground truth; the score is
`evaluate maskrcnn`'s mAP against it (COCO mask AP beside it), and the agreement the detections matched one
to one between float32 and INT8 (same class, box IoU ≥ 0.5) over the larger of their counts (no bound by
default: the mAP is).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.models import ModelConfig
from workers.runtimes.quantize import WEIGHTED

from .shapes import SHAPES_SAMPLE

BATCH = 4
MATCH_IOU = 0.5  # box IoU of an INT8 detection matching a float32 one (of the same class)


class MaskRCNNInt8:
    sample = SHAPES_SAMPLE
    score = "mAP"
    min_agreement = 0.0
    agreement_unit = "detections"
    ops = WEIGHTED  # backbone, FPN, RPN and heads; the box arithmetic between them stays float32

    def load(self, path: Path):
        from .predictor import MaskRCNNPredictor

        return MaskRCNNPredictor(ModelConfig(name="maskrcnn", weights=str(path), batch_size=BATCH))

    def calibration(self, predictor, frames: np.ndarray) -> list[dict[str, np.ndarray]]:
        from .boxes import norm_boxes
        from .molding import mold_inputs

        batches = []
        for i in range(0, len(frames), BATCH):
            molded, windows, _ = mold_inputs(predictor.model.config, frames[i : i + BATCH])
            windows = norm_boxes(windows, molded.shape[1:3]).astype(np.float32)
            batches.append({"images": molded.astype(np.float32), "windows": windows})
        return batches

    def evaluate(self, predictor, video: Path, annotations: Path) -> dict:
        from .config import EvaluateConfig
        from .evaluate import evaluate

        result = evaluate(EvaluateConfig(data=f"video:{video}:{annotations}", batch_size=BATCH), model=predictor)
        found = result.to_dict()
        return {"mAP": result.mean, **{key: found[key] for key in found if key.startswith("coco_")}}

    def agreement(self, f32: list, int8: list) -> dict:
        from .boxes import compute_overlaps
        from .evaluate import compute_matches

        matched = 0
        for a, b in zip(f32, int8, strict=True):
            overlaps = compute_overlaps(b.boxes, a.boxes)
            found = (b.boxes, b.class_ids, b.scores, None)
            f32_match, *_ = compute_matches(a.boxes, a.class_ids, None, *found, MATCH_IOU, overlaps=overlaps)
            matched += int((f32_match > -1).sum())
        counts = sum(len(p.class_ids) for p in f32), sum(len(p.class_ids) for p in int8)
        return {
            "agreement": matched / max(counts) if max(counts) else 1.0,
            "matched": matched,
            "f32_detections": counts[0],
            "int8_detections": counts[1],
        }

    def describe(self, report: dict) -> str:
        bound = report["bounds"]["min_agreement"]
        return (
            f"{report['matched']} detections matched one to one (same class, box IoU ≥ {MATCH_IOU:g}) of "
            f"{report['f32_detections']} f32 and {report['int8_detections']} int8"
            + (f" (bound {bound * 100:.1f}% of the larger count)" if bound else "")
        )
