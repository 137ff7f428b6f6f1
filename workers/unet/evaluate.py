"""Measuring a model: IoU per image (as in the user's KITTI notebook) and its mean over a data set.

Images are segmented at their original size through the predictor, exactly as `streamer process`
would, and compared with the road mask (1 = road).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from workers.unet.config import EvaluateConfig


def iou(target: np.ndarray, prediction: np.ndarray) -> float:
    """|target ∧ prediction| / |target ∨ prediction| of two boolean masks; 1.0 when both are empty."""
    target, prediction = np.asarray(target, bool), np.asarray(prediction, bool)
    if target.shape != prediction.shape:
        raise ValueError(f"iou: target {target.shape} and prediction {prediction.shape} differ in shape")
    union = np.logical_or(target, prediction).sum()
    if union == 0:
        return 1.0  # nothing to find and nothing found: a perfect answer
    return float(np.logical_and(target, prediction).sum()) / float(union)


@dataclass
class Evaluation:
    """Per-image IoU (name, value) and their mean."""

    names: list[str] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        """Mean of the per-image IoUs (NaN for no images)."""
        return float(np.mean(self.ious)) if self.ious else float("nan")

    def to_dict(self) -> dict:
        """JSON-ready: images [{name, iou}], mean_iou, count."""
        images = [{"name": n, "iou": v} for n, v in zip(self.names, self.ious)]
        return {"images": images, "mean_iou": self.mean, "count": len(self.ious)}


def evaluate(config: EvaluateConfig, model=None, progress=None) -> Evaluation:
    """Run the model (the predictor for `config.weights`, or `model` if given) on every image of `config.data`
    at its original size; see data.evaluation_data for the images. `progress(done, total)` is called after
    every batch."""
    from workers.unet.data import evaluation_data

    phase = getattr(progress, "phase", lambda name: None)
    phase("reading the data")
    source = evaluation_data(config)
    if model is None:
        phase("loading model unet")
        from streamer.models import ModelConfig
        from workers.unet.predictor import load

        model = load(
            ModelConfig(
                name="unet",
                weights=config.weights,
                batch_size=config.batch_size,
                threshold=config.threshold,
                device=config.device,
            )
        )
    phase("evaluating")
    result = Evaluation()
    for names, images, masks in same_size_batches(source, config.batch_size):
        for name, mask, prediction in zip(names, masks, model.predict(np.stack(images))):
            result.names.append(name)
            result.ious.append(iou(mask == 1, prediction.semantic == 1))
        if progress is not None:
            progress(len(result.ious), len(source))
    return result


def same_size_batches(source, batch_size: int) -> Iterator[tuple[list[str], list[np.ndarray], list[np.ndarray]]]:
    """Consecutive samples grouped into batches of equal image size (KITTI sizes vary slightly)."""
    names, images, masks = [], [], []
    for index in range(len(source)):
        image, mask, name = source.sample(index)
        if images and (len(images) == batch_size or image.shape != images[0].shape):
            yield names, images, masks
            names, images, masks = [], [], []
        names.append(name)
        images.append(image)
        masks.append(mask)
    if images:
        yield names, images, masks
