"""Training / validation batches as keras.utils.PyDataset: (image float32 [0,1] B×H×W×3, mask) pairs.

Every sample's augmentation is seeded by (seed, epoch, index), so a run (and a resumed run) sees the
same data in the same order whatever the number of loader threads.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from streamer.errors import StreamerError
from workers.unet.augment import augmentation
from workers.unet.sources import KittiSource, SyntheticSource, kitti_source, limit, parse_data

DEFAULT_SCENES = 2000  # synthetic-roads scenes when --samples is not given


class SegmentationBatches(keras.utils.PyDataset):
    """Batches of augmented (train) or resized (validation) samples from a source, reshuffled each epoch.

    Binary models (classes == 1) get float masks B×H×W×1; multi-class models get int32 class indices
    B×H×W. `outputs` > 1 repeats the target for each head (UNet++ deep supervision).
    """

    def __init__(self, source, size: tuple[int, int], batch_size: int, train: bool, seed: int,
                 classes: int = 1, outputs: int = 1, steps: int | None = None, epoch: int = 0, workers: int = 1):
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
            picks = order[start:start + self.batch_size]
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
        self.epoch += 1


def training_sources(spec: str, samples: int | None, val_fraction: float, seed: int,
                     input_size: tuple[int, int]) -> tuple[object, object | None]:
    """(train source, validation source or None) for a data spec.

    kitti:DIR uses the sorted pairs (the first `samples`), validating on the last `val_fraction` of them;
    synthetic-roads draws `samples` scenes, the validation ones from a disjoint stream of the same seed.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise StreamerError(f"validation fraction {val_fraction}: must be in [0, 1)")
    kind, path = parse_data(spec)
    if kind == "kitti":
        pairs: KittiSource = kitti_source(path)
        total = limit(len(pairs), samples)
        held = int(round(total * val_fraction))
        if total - held < 1:
            raise StreamerError(f"KITTI folder {path}: {total} pairs leave nothing to train on with --val {val_fraction}")
        return pairs.subset(0, total - held), (pairs.subset(total - held, total) if held else None)
    total = limit(DEFAULT_SCENES if samples is None else samples, samples)
    held = int(round(total * val_fraction))
    if total - held < 1:
        raise StreamerError(f"samples {total}: nothing left to train on with --val {val_fraction}")
    size = render_size(input_size)
    train = SyntheticSource(total - held, seed, "train", size)
    return train, (SyntheticSource(held, seed, "val", size) if held else None)


def render_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """Synthetic training frames: dashcam 16:9, ~1.4× the model input height (crops then shrink to the input)."""
    height = 2 * round(input_size[0] * 1.4 / 2)
    return height, 2 * round(height * 16 / 9 / 2)
