"""Frames in and detections out of a Mask R-CNN graph, in NumPy: `detect(config, images, run)` molds the
frames (resized into the model's input, minus MEAN_PIXEL), calls `run(molded, windows)` (TensorFlow's graph or
an exported model) and unmolds each image's detections to its own size (boxes, class ids, scores, masks)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from streamer.errors import StreamerError

from .boxes import denorm_boxes, norm_boxes
from .image import mold_image, paste_masks, resize_image

# molded images float32 [B,H,W,3], windows float32 [B,4] normalised → detections [B,D,6], masks [B,D,mh,mw]
Run = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def detect(config, images, run: Run) -> list[dict]:
    """images: list or array of uint8 RGB images (any count) → one dict per image with rois [N,4] int32
    (y1,x1,y2,x2) on the original image, class_ids int32[N], scores float32[N], masks bool [H,W,N]."""
    if len(images) == 0:
        return []
    molded, windows, _ = mold_inputs(config, images)
    shape = molded.shape[1:3]
    detections, masks = run(molded, norm_boxes(windows, shape).astype(np.float32))
    return [
        unmold_detections(config, detections[i], masks[i], np.asarray(images[i]).shape, shape, windows[i])
        for i in range(len(images))
    ]


def mold_inputs(config, images):
    """uint8 RGB images → molded float batch, windows (px) and scales."""
    molded, windows, scales = [], [], []
    for image in images:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise StreamerError(f"detect wants RGB images H×W×3, got shape {image.shape}")
        resized, window, scale, _, _ = resize_image(
            image,
            min_dim=config.IMAGE_MIN_DIM,
            max_dim=config.IMAGE_MAX_DIM,
            min_scale=config.IMAGE_MIN_SCALE,
            mode="square" if config.IMAGE_RESIZE_MODE == "crop" else config.IMAGE_RESIZE_MODE,
            compat=config.RESIZE_COMPAT,
        )
        molded.append(mold_image(resized, config))
        windows.append(window)
        scales.append(scale)
    shapes = {m.shape for m in molded}
    if len(shapes) != 1:
        raise StreamerError(
            "images in one detect() call resize to different shapes: pass same-sized images "
            "or use IMAGE_RESIZE_MODE 'square'"
        )
    return np.stack(molded), np.array(windows, dtype=np.int32), np.array(scales)


def unmold_detections(config, detections, masks, original_shape, molded_shape, window) -> dict:
    """One image's detections [D,6] and masks [D,mh,mw] of the graph → the dict `detect` gives."""
    count = int(np.sum(detections[:, 4] > 0))
    boxes = detections[:count, :4]
    class_ids = detections[:count, 4].astype(np.int32)
    scores = detections[:count, 5].astype(np.float32)
    wy1, wx1, wy2, wx2 = norm_boxes(np.asarray(window, dtype=np.float32)[None], molded_shape)[0]
    scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1], dtype=np.float32)
    shift = np.array([wy1, wx1, wy1, wx1], dtype=np.float32)
    boxes = denorm_boxes((boxes - shift) / scale, original_shape[:2]).reshape(-1, 4)
    keep = np.flatnonzero((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0)
    boxes, class_ids, scores = boxes[keep], class_ids[keep], scores[keep]
    full = paste_masks(masks[:count][keep], boxes, original_shape, compat=config.RESIZE_COMPAT)
    return {"rois": boxes.astype(np.int32), "class_ids": class_ids, "scores": scores, "masks": full}
