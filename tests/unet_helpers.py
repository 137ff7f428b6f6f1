"""Small builders shared by the U-Net tests: tiny saved models with known behaviour and KITTI folders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def save_tiny_unet(path: Path, classes: int = 1) -> Path:
    """An untrained U-Net (width 1/16, 32×64 input) saved as our trainer would."""
    from workers.unet.models import unet

    unet((32, 64, 3), width=0.0625, classes=classes).save(path)
    return path


def save_gray_model(path: Path, size: tuple[int, int] = (32, 64)) -> Path:
    """A 'segmentation' model whose road probability is the pixel's grey level (mean of R, G, B in [0, 1]):
    a hidden layer `gray` computes it (in float16 under mixed precision), the output layer `head` passes it on."""
    import keras

    inputs = keras.Input((*size, 3))
    gray = keras.layers.Conv2D(1, 1, name="gray")
    head = keras.layers.Conv2D(1, 1, name="head")
    model = keras.Model(inputs, head(gray(inputs)))
    gray.set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32), np.zeros(1, np.float32)])
    head.set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    model.save(path)
    return path


def save_channel_model(path: Path, size: tuple[int, int] = (32, 64)) -> Path:
    """A 3-class model whose class scores are the R, G, B channels (argmax = the dominant colour)."""
    import keras

    inputs = keras.Input((*size, 3))
    layer = keras.layers.Conv2D(3, 1, activation="softmax", name="head")
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3) * 10, np.zeros(3, np.float32)])
    model.save(path)
    return path


def write_kitti(root: Path, count: int = 3, size: tuple[int, int] = (40, 120)) -> list[np.ndarray]:
    """KITTI layout (image_2/*.png, semantic/*.png label ids) whose road (label 7) is the bottom-left block;
    returns the expected road masks."""
    (root / "image_2").mkdir(parents=True)
    (root / "semantic").mkdir()
    rng = np.random.default_rng(0)
    masks = []
    for i in range(count):
        height, width = size
        label = np.full(size, 8, np.uint8)  # sidewalk
        label[: height // 3] = 23  # sky
        label[height // 2 :, : width // 2 + 10 * i] = 7  # road
        image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        name = f"{i:06d}_10.png"
        cv2.imwrite(str(root / "image_2" / name), image)
        cv2.imwrite(str(root / "semantic" / name), label)
        masks.append((label == 7).astype(np.uint8))
    return masks
