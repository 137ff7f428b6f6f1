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
        """Keras calls this after each epoch: the next epoch gets a new order and new augmentations."""
        self.epoch += 1
