"""The data of a run: `--data` specs, the training / validation / evaluation sources they name, and the
training batches.

Sources (sources.py) are `kitti:DIR` folders or generated `synthetic-roads` scenes. Batches are a
keras.utils.PyDataset of (image float32 [0,1] B×H×W×3, mask) pairs; every sample's augmentation is seeded
by (seed, epoch, index), so a run (and a resumed run) sees the same data in the same order whatever the
number of loader threads. This module imports Keras only when batches are made, so a bad data spec fails
fast.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from streamer.errors import StreamerError
from workers.unet.config import EvaluateConfig, TrainConfig
from workers.unet.sources import DEFAULT_SCENES, SyntheticSource, kitti_source, limit, render_size

SYNTHETIC = "synthetic-roads"
VIDEO_FRAMES = "road-video"
DATA_HELP = (
    "synthetic-roads (generated scenes), road-video (generated scenes as `streamer sample road` videos show them: "
    "camera aspect ratios, through H.264), kitti:DIR (DIR/image_2/*.png + DIR/semantic/*.png) or, to evaluate, "
    "video:VIDEO:ANNOTATIONS.json (from `streamer sample road --annotations`)"
)
EVALUATION_SCENES = 200  # synthetic-roads evaluation scenes when --samples is not given


def parse_data(spec: str) -> tuple[str, Path | None]:
    """'kitti:DIR' → ("kitti", DIR); 'synthetic-roads' → ("synthetic", None); 'road-video' → ("road-video",
    None); 'video:VIDEO:ANN.json' → ("video", None) (see `video_spec`); anything else → StreamerError."""
    if spec == SYNTHETIC:
        return "synthetic", None
    if spec == VIDEO_FRAMES:
        return "road-video", None
    if spec.startswith("kitti:") and len(spec) > len("kitti:"):
        return "kitti", Path(spec[len("kitti:") :])
    if spec.startswith("video:"):
        video_spec(spec)
        return "video", None
    raise StreamerError(
        f"data {spec!r}: expected kitti:DIR (KITTI semantic layout), video:VIDEO:ANNOTATIONS.json (to evaluate), "
        f"{SYNTHETIC} or {VIDEO_FRAMES}"
    )


def video_spec(spec: str) -> tuple[str, str]:
    """'video:VIDEO:ANNOTATIONS.json' → (VIDEO, ANNOTATIONS.json)."""
    from workers.annotations import parse_video_spec

    return parse_video_spec(spec, DATA_HELP)


class VideoSource:
    """The annotated frames of a video (`streamer sample road --annotations`) as a source: (image, road mask,
    name), the mask the union of the annotations; frames decoded in order."""

    def __init__(self, video: str, annotations: str, limit: int | None = None):
        from workers.annotations import VideoFrames

        self.frames = VideoFrames(video, annotations, limit)

    def __len__(self) -> int:
        return len(self.frames)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        frame = self.frames.frame(index)
        return frame.image, frame.masks.any(axis=-1).astype(np.uint8), frame.name


def training_data(config: TrainConfig) -> tuple[object, object | None]:
    """(train source, validation source or None) of a training run."""
    size = (config.input_height, config.input_width)
    return training_sources(config.data, config.samples, config.val_fraction, config.seed, size)


def training_sources(
    spec: str, samples: int | None, val_fraction: float, seed: int, input_size: tuple[int, int]
) -> tuple[object, object | None]:
    """(train source, validation source or None) for a data spec.

    kitti:DIR uses the sorted pairs (the first `samples`), validating on the last `val_fraction` of them;
    synthetic-roads (and road-video) draws `samples` scenes, the validation ones from a disjoint stream of the
    same seed.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise StreamerError(f"validation fraction {val_fraction}: must be in [0, 1)")
    kind, path = parse_data(spec)
    if kind == "video":
        raise StreamerError(f"data {spec}: a video is for `streamer evaluate`; train on {SYNTHETIC} or kitti:DIR")
    if kind == "kitti":
        pairs = kitti_source(path)
        total = limit(len(pairs), samples)
        held = int(round(total * val_fraction))
        if total - held < 1:
            raise StreamerError(
                f"KITTI folder {path}: {total} pairs leave nothing to train on with --val-fraction {val_fraction}"
            )
        return pairs.subset(0, total - held), (pairs.subset(total - held, total) if held else None)
    total = limit(DEFAULT_SCENES if samples is None else samples, samples)
    held = int(round(total * val_fraction))
    if total - held < 1:
        raise StreamerError(f"samples {total}: nothing left to train on with --val-fraction {val_fraction}")
    video = kind == "road-video"
    size = render_size(input_size, video)
    train = SyntheticSource(total - held, seed, "train", size, video)
    return train, (SyntheticSource(held, seed, "val", size, video) if held else None)


def evaluation_data(config: EvaluateConfig):
    """The evaluation images at their own size: KITTI pairs (the first `samples`), or held-out synthetic
    scenes (the "test" stream of `seed`) rendered at `frame_size`."""
    kind, path = parse_data(config.data)
    if kind == "video":
        return VideoSource(*video_spec(config.data), limit=config.samples)
    if kind == "kitti":
        pairs = kitti_source(path)
        return pairs.subset(0, limit(len(pairs), config.samples))
    height, width = config.frame_size
    if height < 16 or width < 16:
        raise StreamerError(f"frame size {width}x{height}: at least 16x16")
    count = EVALUATION_SCENES if config.samples is None else config.samples
    return SyntheticSource(limit(count, config.samples), config.seed, "test", (height, width), kind == "road-video")


def __getattr__(name: str):
    """`SegmentationBatches`, a keras.utils.PyDataset subclass, is defined on first use (it needs Keras)."""
    if name == "SegmentationBatches":
        return _segmentation_batches()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _segmentation_batches():
    import keras

    from workers.unet.augment import augmentation

    class SegmentationBatches(keras.utils.PyDataset):
        """Batches of augmented (train) or resized (validation) samples from a source, reshuffled each epoch.

        Binary models (classes == 1) get float masks B×H×W×1; multi-class models get int32 class indices
        B×H×W. `outputs` > 1 repeats the target for each head (UNet++ deep supervision).
        """

        def __init__(
            self,
            source,
            size: tuple[int, int],
            batch_size: int,
            train: bool,
            seed: int,
            classes: int = 1,
            outputs: int = 1,
            steps: int | None = None,
            epoch: int = 0,
            workers: int = 1,
        ):
            super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=4)
            if len(source) == 0:
                raise StreamerError("no samples to train on: the data source is empty")
            self.source = source
            self.size = size
            self.batch_size = batch_size
            self.train = train
            self.seed = seed
            self.classes = classes
            self.outputs = outputs
            self.steps = steps
            self.epoch = epoch

        def __len__(self) -> int:
            return self.steps or math.ceil(len(self.source) / self.batch_size)

        def order(self) -> np.ndarray:
            """This epoch's sample order (training: a seeded permutation; validation: as stored)."""
            if not self.train:
                return np.arange(len(self.source))
            return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.source))

        def __getitem__(self, index: int):
            order = self.order()
            start = index * self.batch_size
            if self.steps is None:
                picks = order[start : start + self.batch_size]
            else:  # a fixed number of steps may wrap around the data
                picks = order[np.arange(start, start + self.batch_size) % len(order)]
            images, masks = zip(*(self.item(int(i)) for i in picks))
            x = np.stack(images).astype(np.float32) / 255.0
            y = np.stack(masks)
            y = y[..., None].astype(np.float32) if self.classes == 1 else y.astype(np.int32)
            return x, (y if self.outputs == 1 else tuple([y] * self.outputs))

        def item(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            """One (image uint8 H×W×3, mask uint8 H×W) at the model input size, augmented when training."""
            image, mask, _ = self.source.sample(index)
            seed = int(np.random.default_rng([self.seed, self.epoch, index]).integers(2**31))
            out = augmentation(image.shape, self.size, self.train, seed=seed)(image=image, mask=mask)
            return out["image"], out["mask"]

        def on_epoch_end(self) -> None:
            """Keras calls this after each epoch: the next epoch gets a new order and new augmentations."""
            self.epoch += 1

    return SegmentationBatches
