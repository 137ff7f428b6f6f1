"""The data of a run: `--data` specs, the datasets they name, and the training batches.

Datasets follow matterport's API (dataset.py); the loaders are shapes.py (generated images), via.py (VGG
Image Annotator folders) and coco.py (COCO instances files). Training batches hold the ground truth at the
model's input size, augmented with albumentations (masks follow the image), and the RPN targets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from streamer.errors import StreamerError

from .config import EvaluateConfig, TrainConfig
from .dataset import Dataset
from .image import minimize_mask, mold_image, resize_image, resize_mask

DATA_HELP = (
    "via:DIR (DIR/train, DIR/val with via_region_data.json) | coco:ANNOTATIONS.json:IMAGES_DIR | shapes | "
    "shapes-video (frames like `streamer sample shapes` through H.264, and shapes images) | "
    "video:VIDEO:ANNOTATIONS.json (from `streamer sample shapes --annotations`; evaluation only)"
)
SHAPES_TRAINING = 10000  # shapes: generated training images when --samples is not given
SHAPES_VALIDATION = 50
SHAPES_EVALUATION = 100  # shapes: generated evaluation images when --samples is not given
HELD_OUT = 1_000_003  # shapes: validation and evaluation images come from seed + HELD_OUT, never trained on
CHECKED = 500  # images of a via/coco data set loaded once before training starts


@dataclass
class Data:
    """The datasets of a run: `kind` (shapes | via | coco), training images (None for an evaluation) and
    validation (or evaluation) images."""

    kind: str
    train: Dataset | None
    val: Dataset | None

    @property
    def class_names(self) -> list[str]:
        """The class names, BG first."""
        return list((self.train or self.val).class_names)


def parse_data(spec: str) -> tuple[str, list[str]]:
    """'shapes' → ("shapes", []); 'via:DIR' → ("via", [DIR]); 'coco:ANN:IMAGES' → ("coco", [ANN, IMAGES])."""
    kind, _, rest = str(spec).partition(":")
    if kind in ("shapes", "shapes-video") and not rest:
        return kind, []
    if kind == "via" and rest:
        return "via", [rest]
    if kind == "video" and rest:
        from workers.annotations import parse_video_spec

        return "video", list(parse_video_spec(spec, DATA_HELP))
    if kind == "coco" and rest:
        annotations, sep, images = rest.rpartition(":")
        if not sep or not annotations or not images:
            raise StreamerError(f"--data {spec!r}: write coco:ANNOTATIONS.json:IMAGES_DIR")
        return "coco", [annotations, images]
    raise StreamerError(f"--data {spec!r} is not understood: use {DATA_HELP}")


def training_data(config: TrainConfig) -> Data:
    """Training and validation images of `config.data` (via/coco: checked to load, so training never starts on
    broken data). shapes: `samples` generated images; via: DIR/train and DIR/val; coco: a random
    `val_fraction` held out. `samples` keeps the first N training images of via/coco."""
    kind, parts = parse_data(config.data)
    if kind == "video":
        raise StreamerError(f"--data {config.data}: a video is for `streamer evaluate`; train on shapes, via or coco")
    if kind == "shapes":
        size = _shapes_size(config.overrides)
        train = _shapes(config.samples or SHAPES_TRAINING, size, config.seed)
        return Data(kind, train, _shapes(SHAPES_VALIDATION, size, config.seed + HELD_OUT))
    if kind == "shapes-video":  # the shapes model's settings, on video frames
        train = _video_frames(config.samples or SHAPES_TRAINING, config.seed)
        return Data("shapes", train, _video_frames(SHAPES_VALIDATION, config.seed + HELD_OUT))
    if kind == "via":
        splits = _via_splits(parts[0])
        if "train" not in splits:
            raise StreamerError(f"--data via:{parts[0]}: no train/ folder with via_region_data.json")
        train, val = splits["train"], splits.get("val", splits["train"])
    else:
        from .coco import load_coco

        train, val = load_coco(*parts).split(config.val_fraction, seed=config.seed)
    train = _first(train, config.samples)
    validate_dataset(train, f"training data {config.data}", limit=CHECKED)
    if val is not train:
        validate_dataset(val, f"validation data {config.data}", limit=CHECKED)
    return Data(kind, train, val)


def evaluation_data(config: EvaluateConfig) -> Data:
    """The images to evaluate on (in `val`): shapes: `samples` generated images from a stream training never
    uses; via: DIR/<split>; coco: every annotated image. `samples` keeps the first N of via/coco."""
    kind, parts = parse_data(config.data)
    if kind == "shapes":
        count = config.samples or SHAPES_EVALUATION
        return Data(kind, None, _shapes(count, _shapes_size(config.overrides), config.seed + HELD_OUT))
    if kind == "video":
        return Data(kind, None, VideoDataset(*parts, limit=config.samples))
    if kind == "shapes-video":
        return Data("shapes", None, _video_frames(config.samples or SHAPES_EVALUATION, config.seed + HELD_OUT))
    if kind == "via":
        splits = _via_splits(parts[0])
        dataset = splits.get(config.split) or splits.get("val") or splits["train"]
    else:
        from .coco import load_coco

        dataset = load_coco(*parts)
    return Data(kind, None, _first(dataset, config.samples))


def _shapes_size(overrides: dict) -> int:
    """Generated shapes are square images of IMAGE_MAX_DIM (--set), 128 by default as in shapes_config."""
    return int(overrides.get("IMAGE_MAX_DIM", 128))


def _shapes(count: int, size: int, seed: int) -> Dataset:
    from .shapes import ShapesDataset

    dataset = ShapesDataset()
    dataset.load_shapes(count, size, size, seed=seed)
    dataset.prepare()
    return dataset


class VideoDataset(Dataset):
    """The annotated frames of a video (`streamer sample … --annotations`), in frame order; one image per
    annotated frame, decoded in order (reading them in order decodes the video once)."""

    def __init__(self, video: str, annotations: str, limit: int | None = None):
        from workers.annotations import VideoFrames

        super().__init__()
        self.frames = VideoFrames(video, annotations, limit)
        for class_id, name in enumerate(self.frames.class_names[1:], start=1):
            self.add_class("video", class_id, name)
        for entry in self.frames.images:
            self.add_image(
                "video",
                entry["file_name"],
                video,
                frame=int(entry["frame"]),
                width=entry["width"],
                height=entry["height"],
            )
        self.prepare()

    def load_image(self, image_id):
        return self.frames.frame(int(image_id)).image

    def load_mask(self, image_id):
        frame = self.frames.frame(int(image_id))
        return frame.masks, frame.class_ids

    def load_mask_rles(self, image_id):
        """(COCO RLEs, class ids) of an image's ground truth, without decoding its masks."""
        frame = self.frames.frame(int(image_id))
        return frame.rles, frame.class_ids

    def image_reference(self, image_id):
        return f"{self.frames.video} frame {self.image_info[image_id]['frame']}"


def _video_frames(count: int, seed: int) -> Dataset:
    from .shapes import VideoFramesDataset

    dataset = VideoFramesDataset()
    dataset.load_frames(count, seed=seed)
    dataset.prepare()
    return dataset


def _via_splits(directory: str) -> dict[str, Dataset]:
    """{"train": …, "val": …}: DIR/train and DIR/val, or DIR itself as both."""
    from .via import load_via

    if not os.path.isdir(directory):
        raise StreamerError(f"--data via:{directory}: no such directory")
    splits = {}
    for split in ("train", "val"):
        sub = os.path.join(directory, split)
        if os.path.isdir(sub):
            splits[split] = load_via(sub)
    if not splits and os.path.isfile(os.path.join(directory, "via_region_data.json")):
        splits["train"] = splits["val"] = load_via(directory)
    if not splits:
        raise StreamerError(
            f"--data via:{directory}: expected {directory}/train and {directory}/val with via_region_data.json"
        )
    return splits


def _first(dataset: Dataset, count: int | None) -> Dataset:
    """The dataset's first `count` images (all for None)."""
    if count is None or count >= len(dataset.image_ids):
        return dataset
    return dataset.subset(range(count))


def default_augmentation(kind: str):
    """The albumentations pipeline for a data set kind: masks follow the image (flip); colour changes touch
    the image only; generated shapes are only flipped."""
    import albumentations

    if kind == "shapes":
        return albumentations.Compose([albumentations.HorizontalFlip(p=0.5)])
    return albumentations.Compose(
        [
            albumentations.HorizontalFlip(p=0.5),
            albumentations.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            albumentations.HueSaturationValue(hue_shift_limit=5, sat_shift_limit=15, val_shift_limit=10, p=0.3),
        ]
    )


def load_image_gt(dataset, config, image_id, augmentation=None, rng=None):
    """→ image uint8 (molded size), class ids int32[N], boxes int32[N,4], masks bool [h,w,N]
    (mini masks when USE_MINI_MASK). Instances that vanish after resize/augmentation are dropped."""
    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask(image_id)
    image, window, scale, padding, crop = resize_image(
        image,
        min_dim=config.IMAGE_MIN_DIM,
        min_scale=config.IMAGE_MIN_SCALE,
        max_dim=config.IMAGE_MAX_DIM,
        mode=config.IMAGE_RESIZE_MODE,
        rng=rng,
    )
    mask = resize_mask(mask, scale, padding, crop)
    if augmentation is not None and mask.shape[-1]:
        masks = [mask[:, :, i].astype(np.uint8) for i in range(mask.shape[-1])]
        out = augmentation(image=image, masks=masks)
        image = out["image"]
        mask = np.stack([np.asarray(m) > 0 for m in out["masks"]], axis=-1)
    keep = mask.reshape(-1, mask.shape[-1]).any(axis=0) if mask.shape[-1] else np.zeros(0, bool)
    mask = mask[:, :, keep]
    class_ids = np.asarray(class_ids, dtype=np.int32)[keep]
    from .boxes import extract_bboxes

    boxes = extract_bboxes(mask)
    if config.USE_MINI_MASK:
        mask = minimize_mask(boxes, mask, config.MINI_MASK_SHAPE)
    return image, class_ids, boxes, mask


def data_generator(dataset, config, anchors, shuffle=True, augmentation=None, seed=0):
    """Endless batches: dict of numpy arrays ready for the training step."""
    from .targets import build_rpn_targets

    rng = np.random.RandomState(seed)
    ids = np.copy(dataset.image_ids)
    batch_size = config.BATCH_SIZE
    max_gt = int(config.MAX_GT_INSTANCES)
    mh, mw = config.MINI_MASK_SHAPE if config.USE_MINI_MASK else config.IMAGE_SHAPE[:2]
    index = -1
    while True:
        images, matches, deltas, gids, gboxes, gmasks = [], [], [], [], [], []
        while len(images) < batch_size:
            index = (index + 1) % len(ids)
            if shuffle and index == 0:
                rng.shuffle(ids)
            image, class_ids, boxes, masks = load_image_gt(dataset, config, ids[index], augmentation, rng)
            if not np.any(class_ids > 0):
                continue  # matterport skips images without instances
            match, bbox = build_rpn_targets(anchors, class_ids, boxes, config, rng)
            if len(class_ids) > max_gt:
                pick = rng.choice(np.arange(len(class_ids)), max_gt, replace=False)
                class_ids, boxes, masks = class_ids[pick], boxes[pick], masks[:, :, pick]
            n = len(class_ids)
            ids_pad = np.zeros([max_gt], np.int32)
            ids_pad[:n] = class_ids
            boxes_pad = np.zeros([max_gt, 4], np.int32)
            boxes_pad[:n] = boxes
            masks_pad = np.zeros([mh, mw, max_gt], bool)
            masks_pad[:, :, :n] = masks
            images.append(mold_image(image, config))
            matches.append(match)
            deltas.append(bbox)
            gids.append(ids_pad)
            gboxes.append(boxes_pad)
            gmasks.append(masks_pad)
        yield {
            "images": np.stack(images).astype(np.float32),
            "rpn_match": np.stack(matches),
            "rpn_bbox": np.stack(deltas),
            "gt_class_ids": np.stack(gids),
            "gt_boxes": np.stack(gboxes).astype(np.float32),
            "gt_masks": np.stack(gmasks),
        }


def validate_dataset(dataset, name="dataset", limit=None):
    """Load every image and mask once (or the first `limit`): training never starts on broken data."""
    if len(dataset.image_ids) == 0:
        raise StreamerError(f"{name} has no images with annotations: add annotated images")
    problems = []
    usable = 0
    for image_id in list(dataset.image_ids)[:limit]:
        try:
            image = dataset.load_image(image_id)
            masks, class_ids = dataset.load_mask(image_id)
            if masks.shape[:2] != image.shape[:2] and masks.shape[-1]:
                reference = dataset.image_reference(image_id)
                problems.append(f"{reference}: mask size {masks.shape[:2]} ≠ image size {image.shape[:2]}")
            if np.any(np.asarray(class_ids) > 0):
                usable += 1
        except StreamerError as error:
            problems.append(str(error))
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise StreamerError(f"{name} has broken entries: " + "; ".join(problems[:5]) + more)
    if not usable:
        raise StreamerError(f"{name} has no image with at least one object: check the annotations")
