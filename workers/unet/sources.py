"""Where training and evaluation images come from: `kitti:DIR` folders or generated `synthetic-roads`
scenes (data.py turns a --data spec into these).

A source is a sized, indexable collection of (RGB uint8 image, uint8 road mask, name) at the
image's own size; no TensorFlow here, so bad data specs fail fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.errors import StreamerError
from workers.h264 import encode_h264
from workers.unet.synthetic import RoadScene

KITTI_ROAD = 7  # the KITTI / Cityscapes label id for road
SPLITS = {"train": 0, "val": 1, "test": 2}  # synthetic streams: disjoint scene sets for one seed
DEFAULT_SCENES = 2000  # synthetic-roads training scenes when --samples is not given


@dataclass(frozen=True)
class KittiSource:
    """Paired KITTI semantic files: DIR/image_2/*.png with DIR/semantic/*.png (label ids; 7 = road)."""

    images: tuple[Path, ...]
    labels: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        image = cv2.imread(str(self.images[index]), cv2.IMREAD_COLOR)
        if image is None:
            raise StreamerError(f"image {self.images[index]}: not a readable image; check the KITTI folder")
        label = cv2.imread(str(self.labels[index]), cv2.IMREAD_UNCHANGED)
        if label is None or label.ndim != 2:
            got = "unreadable" if label is None else f"{label.shape[2]} channels"
            raise StreamerError(
                f"label {self.labels[index]}: expected a single-channel PNG of label ids (KITTI semantic/), got {got}"
            )
        if label.shape != image.shape[:2]:
            raise StreamerError(
                f"label {self.labels[index]}: size {label.shape[1]}x{label.shape[0]} differs from its image "
                f"{self.images[index]} ({image.shape[1]}x{image.shape[0]})"
            )
        mask = (label == KITTI_ROAD).astype(np.uint8)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), mask, self.images[index].stem

    def subset(self, start: int, stop: int) -> KittiSource:
        """The pairs [start:stop]."""
        return KittiSource(self.images[start:stop], self.labels[start:stop])


# width / height of `road-video` training frames: the sample's 16:9 and other common camera shapes
VIDEO_ASPECTS = (16 / 9, 16 / 9, 4 / 3, 2.0, 21 / 9, 3 / 2)


@dataclass(frozen=True)
class SyntheticSource:
    """`count` procedural road scenes from (seed, split), each rendered at `size` (H, W) at a random time.

    `video`: frames as `streamer sample road` videos show them: at one of VIDEO_ASPECTS (height `size[0]`)
    and through the H.264 encoder at a random quality."""

    count: int
    seed: int
    split: str = "train"
    size: tuple[int, int] = (360, 640)
    video: bool = False

    def __len__(self) -> int:
        return self.count

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
        scene = RoadScene.random(rng)
        t = float(rng.uniform(0.0, 60.0))
        if not self.video:
            image, mask = scene.render(*self.size, t=t)
            return image, mask, f"{self.split}-{self.seed}-{index:05d}"
        height = self.size[0]
        width = 2 * round(height * VIDEO_ASPECTS[int(rng.integers(len(VIDEO_ASPECTS)))] / 2)
        image, mask = scene.render(height, width, t=t)
        image = encode_h264(image, crf=int(rng.integers(18, 31)))
        return image, mask, f"{self.split}-{self.seed}-{index:05d}-video"


def kitti_source(directory: str | Path) -> KittiSource:
    """Sorted, paired KITTI files; StreamerError naming the path when folders are missing, empty or unequal."""
    root = Path(directory)
    if not root.is_dir():
        raise StreamerError(f"KITTI folder {root}: not found; pass kitti:DIR with DIR/image_2 and DIR/semantic")
    for sub in ("image_2", "semantic"):
        if not (root / sub).is_dir():
            raise StreamerError(
                f"KITTI folder {root / sub}: missing; expected DIR/image_2/*.png and DIR/semantic/*.png"
            )
    found = {sub: tuple(sorted((root / sub).glob("*.png"))) for sub in ("image_2", "semantic")}
    for sub, files in found.items():
        if not files:
            raise StreamerError(f"KITTI folder {root / sub}: no .png files")
    images, labels = found["image_2"], found["semantic"]
    if len(images) != len(labels):
        raise StreamerError(
            f"KITTI folder {root}: {len(images)} images in image_2 but {len(labels)} labels in semantic; "
            "each image needs a label with the same name"
        )
    unpaired = [(image.name, label.name) for image, label in zip(images, labels) if image.name != label.name]
    if unpaired:
        image, label = unpaired[0]
        raise StreamerError(f"KITTI folder {root}: image {image} is paired with label {label}; names must match")
    return KittiSource(images, labels)


def limit(count: int, samples: int | None) -> int:
    """How many items to use: all, or the first `samples` (validated)."""
    if samples is None:
        return count
    if samples < 1:
        raise StreamerError(f"samples {samples}: must be at least 1")
    return min(count, samples)


def render_size(input_size: tuple[int, int], video: bool = False) -> tuple[int, int]:
    """Synthetic training frames: dashcam 16:9, ~1.4× the model input height (crops then shrink to the input).
    `road-video` frames: 2.8× (360 rows for a 128-row input), so that shrinking them to the input averages
    lane marks, road edges and textures over as many pixels as it does for a 720p `streamer sample road`
    video, closer to what the model sees there."""
    height = 2 * round(input_size[0] * (2.8 if video else 1.4) / 2)
    return height, 2 * round(height * 16 / 9 / 2)
