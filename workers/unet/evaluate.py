"""Measuring a model: IoU per image (as in the user's KITTI notebook) and its mean over a data set.

Images are segmented at their original size through the predictor, exactly as `streamer process`
would, and compared with the road mask (1 = road).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from streamer.errors import StreamerError

EVAL_FRAME = (360, 640)  # synthetic scenes are rendered at this (H, W) for evaluation


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
class EvaluateConfig:
    """What `streamer evaluate unet` measures (the CLI only parses into this)."""

    data: str = "synthetic-roads"
    weights: str | None = None  # None: the bundled demo weights
    samples: int | None = None  # synthetic: scenes (default 200); kitti: the first N pairs (default all)
    seed: int = 1000  # synthetic: scenes come from the held-out "test" stream of this seed
    frame_size: tuple[int, int] = EVAL_FRAME
    batch_size: int = 4
    threshold: float = 0.5
    device: str | None = None


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
        return {"images": [{"name": n, "iou": v} for n, v in zip(self.names, self.ious)], "mean_iou": self.mean,
                "count": len(self.ious)}


def evaluate(weights: str | None, data: str, samples: int | None = None, seed: int = 1000,
             frame_size: tuple[int, int] = EVAL_FRAME, batch_size: int = 4, threshold: float = 0.5,
             device: str | None = None, model=None) -> Evaluation:
    """Run the model (the predictor for `weights`, or `model` if given) on every image at its original size.

    For synthetic-roads, `samples` scenes (default 200) are drawn from the test stream of `seed` and
    rendered at `frame_size`; for kitti:DIR, the sorted pairs (the first `samples`).
    """
    source = _source(data, samples, seed, frame_size)
    if model is None:
        from streamer.models import ModelConfig
        from workers.unet.predictor import load

        model = load(ModelConfig(name="unet", weights=weights, batch_size=batch_size, threshold=threshold,
                                 device=device))
    result = Evaluation()
    for names, images, masks in _batches(source, batch_size):
        for name, mask, prediction in zip(names, masks, model.predict(np.stack(images))):
            result.names.append(name)
            result.ious.append(iou(mask == 1, prediction.semantic == 1))
    return result


def run(config: EvaluateConfig) -> Evaluation:
    """evaluate() with a config's fields."""
    return evaluate(**asdict(config))


def _source(data: str, samples: int | None, seed: int, frame_size: tuple[int, int]):
    """The evaluation images: KITTI pairs, or held-out synthetic scenes (the "test" stream)."""
    from workers.unet.sources import SyntheticSource, kitti_source, limit, parse_data

    kind, path = parse_data(data)
    if kind == "kitti":
        pairs = kitti_source(path)
        return pairs.subset(0, limit(len(pairs), samples))
    if frame_size[0] < 16 or frame_size[1] < 16:
        raise StreamerError(f"frame size {frame_size[1]}x{frame_size[0]}: at least 16x16")
    return SyntheticSource(limit(200 if samples is None else samples, samples), seed, "test", tuple(frame_size))


def _batches(source, batch_size: int) -> Iterator[tuple[list[str], list[np.ndarray], list[np.ndarray]]]:
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
