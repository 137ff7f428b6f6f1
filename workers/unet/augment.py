"""Albumentations pipelines applied to image and mask together (so they stay aligned).

Training: HorizontalFlip, RandomSizedCrop (sized relative to the image), Resize to the model input,
RandomBrightnessContrast. Validation: Resize only. Images shrink with area averaging (like the
predictor's antialiased resize); masks use nearest neighbour.
"""

from __future__ import annotations

import albumentations
import cv2


def augmentation(
    image_shape: tuple[int, ...], size: tuple[int, int], train: bool, seed: int | None = None
) -> albumentations.Compose:
    """The pipeline for images of `image_shape` → model input `size` (H, W); `seed` makes it reproducible."""
    height, width = size
    resize = albumentations.Resize(height, width, interpolation=cv2.INTER_LINEAR, area_for_downscale="image")
    if not train:
        return albumentations.Compose([resize], seed=seed)
    rows, cols = image_shape[:2]
    return albumentations.Compose(
        [
            albumentations.HorizontalFlip(p=0.5),
            albumentations.RandomSizedCrop(
                min_max_height=(max(1, int(rows * 0.6)), rows),
                size=(height, width),
                w2h_ratio=cols / rows,
                interpolation=cv2.INTER_LINEAR,
                area_for_downscale="image",
                p=0.5,
            ),
            resize,
            albumentations.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=0.5),
        ],
        seed=seed,
    )
