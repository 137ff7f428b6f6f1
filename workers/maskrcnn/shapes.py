"""Synthetic shapes (squares, circles, triangles) as a Dataset, and as a video of moving shapes."""

from __future__ import annotations

import math

import cv2
import numpy as np

from streamer.prediction import Prediction
from workers.h264 import encode_h264
from workers.samples import Sample

from .boxes import extract_bboxes, non_max_suppression
from .dataset import Dataset

SHAPES = ("square", "circle", "triangle")
CLASS_NAMES = ["BG", *SHAPES]


def draw_shape(image, shape, dims, color):
    x, y, s = dims
    color = tuple(int(c) for c in color) if isinstance(color, (tuple, list, np.ndarray)) else color
    if shape == "square":
        cv2.rectangle(image, (int(x - s), int(y - s)), (int(x + s), int(y + s)), color, -1)
    elif shape == "circle":
        cv2.circle(image, (int(x), int(y)), int(s), color, -1)
    elif shape == "triangle":
        half = s / math.sin(math.radians(60))
        points = np.array([[(x, y - s), (x - half, y + s), (x + half, y + s)]], dtype=np.int32)
        cv2.fillPoly(image, points, color)
    return image


def random_shape(rng, height, width):
    shape = SHAPES[rng.integers(0, 3)]
    color = tuple(int(c) for c in rng.integers(0, 256, 3))
    buffer = 20
    y = int(rng.integers(buffer, height - buffer))
    x = int(rng.integers(buffer, width - buffer))
    s = int(rng.integers(buffer, max(buffer + 1, height // 4 + 1)))
    return shape, color, (x, y, s)


def random_image_spec(rng, height, width):
    """Background colour and 1–4 shapes; shapes overlapping more than IoU 0.3 (boxes) are dropped."""
    background = tuple(int(c) for c in rng.integers(0, 256, 3))
    shapes = [random_shape(rng, height, width) for _ in range(int(rng.integers(1, 5)))]
    boxes = np.array([[y - s, x - s, y + s, x + s] for _, _, (x, y, s) in shapes], dtype=np.float64)
    keep = sorted(non_max_suppression(boxes, np.arange(len(shapes)), 0.3))
    return background, [shapes[i] for i in keep]


def render(height, width, background, shapes):
    """→ image uint8 [H,W,3], masks bool [H,W,N] (later shapes occlude earlier), class ids int32 [N]."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = np.array(background, dtype=np.uint8)
    masks = np.zeros((height, width, len(shapes)), dtype=np.uint8)
    for i, (shape, color, dims) in enumerate(shapes):
        draw_shape(image, shape, dims, color)
        layer = np.zeros((height, width), dtype=np.uint8)
        masks[:, :, i] = draw_shape(layer, shape, dims, 1)
    masks = masks.astype(bool)
    if len(shapes):
        visible = ~masks[:, :, -1]
        for i in range(len(shapes) - 2, -1, -1):
            masks[:, :, i] &= visible
            visible &= ~masks[:, :, i]
    class_ids = np.array([CLASS_NAMES.index(s[0]) for s in shapes], dtype=np.int32)
    return image, masks, class_ids


class ShapesDataset(Dataset):
    """`load_shapes(count, height, width, seed)`: images generated on the fly from a per-image seed."""

    def load_shapes(self, count, height, width, seed=0):
        for i, name in enumerate(SHAPES, start=1):
            self.add_class("shapes", i, name)
        for i in range(count):
            rng = np.random.default_rng([int(seed), i])
            background, shapes = random_image_spec(rng, height, width)
            self.add_image("shapes", i, None, width=width, height=height, bg_color=background, shapes=shapes)

    def load_image(self, image_id):
        info = self.image_info[image_id]
        return render(info["height"], info["width"], info["bg_color"], info["shapes"])[0]

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        _, masks, class_ids = render(info["height"], info["width"], info["bg_color"], info["shapes"])
        return masks, class_ids

    def image_reference(self, image_id):
        return self.image_info[image_id]["shapes"]


def shapes_frames(seed: int, width: int, height: int, fps: float, count: int):
    """Yield `count` frames (uint8 H×W×3 RGB, Prediction ground truth) of 3–6 shapes moving and
    bouncing over a background; shapes may overlap (later ones occlude earlier ones, and the
    ground-truth masks show only what is visible). Empty (fully hidden) instances are dropped."""
    for image, truth, _ in shapes_video(seed, width, height, fps, count):
        yield image, truth


def shapes_video(seed: int, width: int, height: int, fps: float, count: int):
    """As `shapes_frames`, with each visible shape's instance id (1-based, the same for one shape in every
    frame): yields (image, Prediction ground truth, instance ids int32 [N])."""
    for scene, instances in _scenes(seed, width, height, fps, count):
        image, truth, present = _frame(height, width, *scene)
        yield image, truth, instances[present]


def annotated_shapes_frames(seed: int, width: int, height: int, fps: float, count: int):
    """As `shapes_video`, with the ground truth a sample video records: (image, masks H×W×N, class ids [N],
    instance ids [N])."""
    for image, truth, instances in shapes_video(seed, width, height, fps, count):
        yield image, truth.masks, truth.class_ids, instances


SHAPES_SAMPLE = Sample("shapes", annotated_shapes_frames, tuple(SHAPES))


def _scenes(seed: int, width: int, height: int, fps: float, count: int):
    """The video's scene at each frame: ((background, shapes), instance ids), without drawing."""
    rng = np.random.default_rng(int(seed))
    scale = min(width, height)
    background = tuple(int(c) for c in rng.integers(0, 256, 3))
    movers = []
    for _ in range(int(rng.integers(3, 7))):
        shape = SHAPES[rng.integers(0, 3)]
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        size = float(rng.uniform(0.06, 0.16) * scale)
        pos = np.array([rng.uniform(size, width - size), rng.uniform(size, height - size)])
        speed = rng.uniform(0.15, 0.45) * scale  # px per second
        angle = rng.uniform(0, 2 * math.pi)
        velocity = np.array([math.cos(angle), math.sin(angle)]) * speed
        movers.append([shape, color, size, pos, velocity])
    instances = np.arange(1, len(movers) + 1, dtype=np.int32)
    dt = 1.0 / float(fps or 25)
    for _ in range(int(count)):
        shapes = [(m[0], m[1], (int(round(m[3][0])), int(round(m[3][1])), int(round(m[2])))) for m in movers]
        yield (background, shapes), instances
        for m in movers:
            m[3] = m[3] + m[4] * dt
            for axis, limit in ((0, width), (1, height)):
                if m[3][axis] < m[2] or m[3][axis] > limit - m[2]:
                    m[4][axis] = -m[4][axis]
                    m[3][axis] = min(max(m[3][axis], m[2]), limit - m[2])


def _frame(height, width, background, shapes):
    """→ (image, Prediction ground truth, which shapes are visible) of one scene; hidden shapes are dropped."""
    image, masks, class_ids = render(height, width, background, shapes)
    present = masks.reshape(-1, masks.shape[-1]).any(axis=0) if masks.shape[-1] else np.zeros(0, bool)
    masks, class_ids = masks[:, :, present], class_ids[present]
    truth = Prediction(
        masks=masks,
        class_ids=class_ids.astype(np.int32),
        scores=np.ones(len(class_ids), dtype=np.float32),
        boxes=extract_bboxes(masks),
    )
    return image, truth, present


# frame sizes (W, H) of the video-frame training images: the sample's 16:9 and other common shapes, scaled down
# (the demo model sees frames at IMAGE_MAX_DIM anyway; encoding artefacts survive at these sizes)
VIDEO_SIZES = ((320, 180), (384, 216), (448, 252), (256, 256), (320, 240), (180, 320), (400, 300), (512, 288))


class VideoFramesDataset(Dataset):
    """`load_frames(count, seed)`: frames like `streamer sample shapes` renders (3–6 shapes moving over a
    background, at a random frame of a random scene, at one of VIDEO_SIZES), through the H.264 encoder;
    a `single` fraction of the images are the 128×128 single images of `ShapesDataset` instead (so a model
    trained on them keeps both)."""

    def load_frames(self, count, seed=0, encode=True, single=0.4):
        for i, name in enumerate(SHAPES, start=1):
            self.add_class("shapes", i, name)
        for i in range(count):
            rng = np.random.default_rng([int(seed), i, 7])
            if rng.random() < single:
                background, shapes = random_image_spec(rng, 128, 128)
                self.add_image("shapes", i, None, width=128, height=128, scene=(background, shapes), encode=False)
                continue
            width, height = VIDEO_SIZES[int(rng.integers(len(VIDEO_SIZES)))]
            scene, index = int(rng.integers(2**31)), int(rng.integers(0, 300))
            self.add_image("shapes", i, None, width=width, height=height, scene=scene, index=index, encode=encode)
        self._cache = (None, None)

    def _render(self, image_id):
        if self._cache[0] == image_id:
            return self._cache[1]
        info = self.image_info[image_id]
        width, height = info["width"], info["height"]
        if isinstance(info["scene"], tuple):  # a single image
            background, shapes = info["scene"]
        else:
            *_, ((background, shapes), _) = _scenes(info["scene"], width, height, 30.0, info["index"] + 1)
        image, truth, _ = _frame(height, width, background, shapes)
        if info["encode"]:
            image = encode_h264(image)
        self._cache = (image_id, (image, truth))
        return image, truth

    def load_image(self, image_id):
        return self._render(image_id)[0]

    def load_mask(self, image_id):
        truth = self._render(image_id)[1]
        return truth.masks, truth.class_ids

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        if isinstance(info["scene"], tuple):
            return f"single shapes image {image_id}"
        return f"shapes video scene {info['scene']} frame {info['index']} at {info['width']}x{info['height']}"
