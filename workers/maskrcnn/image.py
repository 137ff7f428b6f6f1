"""Image and mask geometry: resize modes, molding, mini-masks, pasting masks into frames."""

from __future__ import annotations

import cv2
import numpy as np


def resize_bilinear_zero(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """matterport's resize (scikit-image's order-1 resize, mode "constant", no anti-aliasing): bilinear with
    pixel centres aligned and zeros outside the image, computed in float64; uint8 images are clipped and
    truncated back to uint8 as matterport's `astype` does, float images stay float."""
    from scipy import ndimage

    source = np.asarray(image, dtype=np.float64)
    zoom = (height / source.shape[0], width / source.shape[1]) + (1.0,) * (source.ndim - 2)
    out = ndimage.zoom(source, zoom, order=1, mode="grid-constant", cval=0.0, grid_mode=True, prefilter=False)
    if image.dtype == np.uint8:
        return np.clip(out, 0, 255).astype(np.uint8)
    return out.astype(image.dtype if np.issubdtype(image.dtype, np.floating) else np.float64)


def resize_image(
    image: np.ndarray, min_dim=None, max_dim=None, min_scale=None, mode="square", rng=None, compat="opencv"
):
    """Resize keeping the aspect ratio (matterport's modes none/square/pad64/crop); `compat` "opencv" (area
    averaging when shrinking, bilinear when enlarging) or "matterport" (resize_bilinear_zero).

    Returns (image, window (y1, x1, y2, x2) of the image inside the result, scale, padding, crop)."""
    h, w = image.shape[:2]
    window = (0, 0, h, w)
    scale = 1.0
    padding = [(0, 0), (0, 0), (0, 0)]
    crop = None
    if mode == "none":
        return image, window, scale, padding, crop
    if min_dim:
        scale = max(1.0, min_dim / min(h, w))
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        if round(max(h, w) * scale) > max_dim:
            scale = max_dim / max(h, w)
    if scale != 1 and compat == "matterport":
        image = resize_bilinear_zero(image, max(1, round(h * scale)), max(1, round(w * scale)))
    elif scale != 1:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interpolation)
    h, w = image.shape[:2]
    if mode == "square":
        top = (max_dim - h) // 2
        left = (max_dim - w) // 2
        padding = [(top, max_dim - h - top), (left, max_dim - w - left), (0, 0)]
        image = np.pad(image, padding, mode="constant")
        window = (top, left, h + top, w + left)
    elif mode == "pad64":
        if min_dim and min_dim % 64:
            raise ValueError("pad64 needs IMAGE_MIN_DIM to be a multiple of 64")
        ph = (64 - h % 64) % 64
        pw = (64 - w % 64) % 64
        padding = [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)]
        image = np.pad(image, padding, mode="constant")
        window = (ph // 2, pw // 2, h + ph // 2, w + pw // 2)
    elif mode == "crop":
        rng = rng or np.random
        y = int(rng.randint(0, h - min_dim + 1))
        x = int(rng.randint(0, w - min_dim + 1))
        crop = (y, x, min_dim, min_dim)
        image = image[y : y + min_dim, x : x + min_dim]
        window = (0, 0, min_dim, min_dim)
    else:
        raise ValueError(f"unknown resize mode {mode!r}")
    return image, window, scale, padding, crop


def resize_mask(mask: np.ndarray, scale: float, padding, crop=None) -> np.ndarray:
    """Apply resize_image's scale, padding and crop to a bool [H,W,N] mask."""
    h, w = mask.shape[:2]
    count = mask.shape[-1]
    if scale != 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        out = np.zeros((size[1], size[0], count), dtype=bool)
        for i in range(count):
            out[:, :, i] = cv2.resize(mask[:, :, i].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        mask = out
    if crop is not None:
        y, x, ch, cw = crop
        mask = mask[y : y + ch, x : x + cw]
    else:
        mask = np.pad(mask, padding, mode="constant")
    return mask


def minimize_mask(bbox: np.ndarray, mask: np.ndarray, mini_shape) -> np.ndarray:
    """Crop each instance mask to its box and resize to mini_shape (bool [h,w,N])."""
    out = np.zeros(tuple(mini_shape) + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        crop = mask[y1:y2, x1:x2, i].astype(np.float32)
        if crop.size == 0:
            continue
        out[:, :, i] = cv2.resize(crop, (mini_shape[1], mini_shape[0]), interpolation=cv2.INTER_LINEAR) >= 0.5
    return out


def expand_mask(bbox: np.ndarray, mini_mask: np.ndarray, image_shape) -> np.ndarray:
    """Inverse of minimize_mask: paste mini masks back into full-size bool [H,W,N]."""
    out = np.zeros(tuple(image_shape[:2]) + (mini_mask.shape[-1],), dtype=bool)
    for i in range(mini_mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        if y2 <= y1 or x2 <= x1:
            continue
        m = cv2.resize(mini_mask[:, :, i].astype(np.float32), (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
        out[y1:y2, x1:x2, i] = m >= 0.5
    return out


def paste_masks(
    masks: np.ndarray, boxes: np.ndarray, image_shape, threshold: float = 0.5, compat: str = "opencv"
) -> np.ndarray:
    """Paste soft masks [N, h, w] (e.g. 28×28) into their pixel boxes [N, 4] (y1, x1, y2, x2; exclusive
    ends) of a bool [H, W, N] array. Only each box's crop is resized and written. `compat` "opencv":
    bilinear with the mask's edge replicated; "matterport": bilinear with zeros outside the mask
    (resize_bilinear_zero), so edge pixels fall below the threshold as in matterport's unmold_mask."""
    height, width = image_shape[:2]
    count = len(boxes)
    out = np.zeros((height, width, count), dtype=bool)
    for i in range(count):
        y1, x1, y2, x2 = (int(v) for v in boxes[i])
        if y2 <= y1 or x2 <= x1:
            continue
        if compat == "matterport":
            m = resize_bilinear_zero(np.asarray(masks[i], dtype=np.float32), y2 - y1, x2 - x1)
        else:
            m = cv2.resize(np.asarray(masks[i], dtype=np.float32), (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
        cy1, cx1 = max(y1, 0), max(x1, 0)
        cy2, cx2 = min(y2, height), min(x2, width)
        if cy2 <= cy1 or cx2 <= cx1:
            continue
        out[cy1:cy2, cx1:cx2, i] = m[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1] >= threshold
    return out


def mold_image(images: np.ndarray, config) -> np.ndarray:
    """Images minus MEAN_PIXEL as float32; the difference is taken in float64 and rounded once, as matterport's
    model receives it."""
    return (images.astype(np.float32) - np.asarray(config.MEAN_PIXEL, dtype=np.float64)).astype(np.float32)
