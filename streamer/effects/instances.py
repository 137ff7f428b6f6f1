"""The `instances` effect: each instance's mask, outline, box, class name and score drawn on a frame."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np


def random_colors(count: int, bright: bool = True) -> list[tuple[int, int, int]]:
    """Distinct colours (uint8 RGB), deterministic for a given count (evenly spaced hues)."""
    brightness = 1.0 if bright else 0.7
    hsv = [((i * 0.618033988749895) % 1.0, 0.85, brightness) for i in range(count)]
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(*v)) for v in hsv]


def track_colors(track_ids) -> list[tuple[int, int, int]]:
    """One colour per track id, the same for an id in every frame (untracked instances, id < 0, are grey)."""
    hues = [((int(i) * 0.618033988749895) % 1.0) for i in track_ids]
    return [
        tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.85, 1.0)) if int(i) >= 0 else (160, 160, 160)
        for hue, i in zip(hues, track_ids)
    ]


def apply_mask(image: np.ndarray, mask: np.ndarray, color, alpha: float = 0.5) -> np.ndarray:
    """Blend `color` into `image` where mask (bool or 0/1 uint8) is set, in place; returns image."""
    tinted = cv2.addWeighted(image, 1.0 - alpha, np.full_like(image, color), alpha, 0.0)
    cv2.copyTo(tinted, mask.astype(np.uint8, copy=False), image)
    return image


def instances(frame: np.ndarray, prediction, options, colors=None, track_ids=None) -> np.ndarray:
    """frame uint8 H×W×3 RGB; prediction with masks [H,W,N], boxes [N,4], class_ids, scores.
    options: .alpha (mask opacity, default 0.5); optional .class_names (list indexed by class id),
    .show_boxes / .show_labels (default True). `colors`: one RGB colour per instance (default: by index
    within the frame); `track_ids`: shown in the labels (`--track`). Returns a new frame; the input is
    not modified."""
    out = np.array(frame, dtype=np.uint8, copy=True)
    masks = getattr(prediction, "masks", None)
    if masks is None or masks.shape[-1] == 0:
        return out
    alpha = float(getattr(options, "alpha", 0.5) if getattr(options, "alpha", None) is not None else 0.5)
    names = getattr(options, "class_names", None)
    show_boxes = getattr(options, "show_boxes", True)
    show_labels = getattr(options, "show_labels", True)
    count = masks.shape[-1]
    boxes = prediction.boxes if prediction.boxes is not None else np.zeros((count, 4), np.int32)
    class_ids = prediction.class_ids if prediction.class_ids is not None else np.zeros(count, np.int32)
    scores = prediction.scores
    colors = list(colors) if colors is not None else random_colors(count)
    h, w = out.shape[:2]
    scale = max(0.35, min(h, w) / 900.0)
    thickness = max(1, int(round(min(h, w) / 400.0)))
    for i in range(count):
        color = colors[i]
        # With boxes, each mask lies inside its box: blend and trace only that crop.
        cy1, cx1, cy2, cx2 = (0, 0, h, w) if prediction.boxes is None else _clipped(boxes[i], h, w)
        if cy2 > cy1 and cx2 > cx1:
            crop = masks[cy1:cy2, cx1:cx2, i].astype(np.uint8)
            apply_mask(out[cy1:cy2, cx1:cx2], crop, color, alpha)
            contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(cx1, cy1))
            cv2.drawContours(out, contours, -1, color, thickness)
        y1, x1, y2, x2 = (int(v) for v in boxes[i])
        if show_boxes and y2 > y1 and x2 > x1:
            cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), color, thickness, lineType=cv2.LINE_AA)
        if show_labels:
            cid = int(class_ids[i])
            name = names[cid] if names is not None and 0 <= cid < len(names) else f"class {cid}"
            if track_ids is not None and int(track_ids[i]) >= 0:
                name = f"{name} #{int(track_ids[i])}"
            label = name if scores is None else f"{name} {float(scores[i]):.2f}"
            (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
            ty = max(th + base, y1)
            cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), color, -1)
            white = (255, 255, 255)
            cv2.putText(out, label, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale, white, thickness, cv2.LINE_AA)
    return out


def _clipped(box, height: int, width: int) -> tuple[int, int, int, int]:
    y1, x1, y2, x2 = (int(v) for v in box)
    return max(y1, 0), max(x1, 0), min(y2, height), min(x2, width)
