"""Training: ground-truth preparation, a batch generator with augmentation, and the training loop
(one tf.function step, SGD/Adam with gradient clipping and L2 weight decay, a checkpoint per epoch,
resume from the last checkpoint)."""

from __future__ import annotations

import glob
import json
import os
import queue
import re
import threading
import time

import numpy as np
import tensorflow as tf

from streamer.errors import StreamerError

from .boxes import extract_bboxes
from .image import minimize_mask, mold_image, resize_image, resize_mask
from .targets import build_rpn_targets


def default_augmentation(kind: str = "photo"):
    """albumentations pipeline; masks follow the image (flip); colour changes touch the image only."""
    import albumentations as A

    if kind == "shapes":
        return A.Compose([A.HorizontalFlip(p=0.5)])
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.HueSaturationValue(hue_shift_limit=5, sat_shift_limit=15, val_shift_limit=10, p=0.3),
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
    boxes = extract_bboxes(mask)
    if config.USE_MINI_MASK:
        mask = minimize_mask(boxes, mask, config.MINI_MASK_SHAPE)
    return image, class_ids, boxes, mask


def data_generator(dataset, config, anchors, shuffle=True, augmentation=None, seed=0):
    """Endless batches: dict of numpy arrays ready for the training step."""
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


def _prefetch(generator, size=3):
    """Run a generator in a background thread (NumPy/OpenCV release the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def work():
        try:
            for item in generator:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as error:  # surfaced in the consumer
            q.put(error)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


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
                problems.append(f"{dataset.image_reference(image_id)}: mask size {masks.shape[:2]} ≠ image size {image.shape[:2]}")
            if np.any(np.asarray(class_ids) > 0):
                usable += 1
        except StreamerError as error:
            problems.append(str(error))
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise StreamerError(f"{name} has broken entries: " + "; ".join(problems[:5]) + more)
    if not usable:
        raise StreamerError(f"{name} has no image with at least one object: check the annotations")


class Trainer:
    """Trains a MaskRCNN; checkpoints to `out_dir/mask_rcnn_<name>_<epoch>.weights.h5`."""

    def __init__(self, model, out_dir, log=print):
        self.model = model
        self.config = model.config
        self.out_dir = str(out_dir)
        self.log = log
        self.epoch = 0
        self.optimizer = None
        self._step = None

    # -------------------------------------------------------------- checkpoints
    def checkpoint_path(self, epoch):
        name = (self.config.NAME or "model").lower()
        return os.path.join(self.out_dir, f"mask_rcnn_{name}_{epoch:04d}.weights.h5")

    def find_last(self):
        name = (self.config.NAME or "model").lower()
        found = []
        for path in glob.glob(os.path.join(self.out_dir, f"mask_rcnn_{name}_*.weights.h5")):
            m = re.search(r"_(\d{4})\.weights\.h5$", path)
            if m:
                found.append((int(m.group(1)), path))
        return max(found) if found else (0, None)

    def resume(self):
        epoch, path = self.find_last()
        if path is None:
            raise StreamerError(f"--resume: no checkpoint in {self.out_dir}: train without --resume first")
        self.model.load_weights(path)
        self.epoch = epoch
        self.log(f"resumed from {path} (epoch {epoch})")
        return path

    # -------------------------------------------------------------- step
    def _make_optimizer(self, learning_rate):
        import keras

        if self.config.OPTIMIZER == "adam":
            return keras.optimizers.Adam(learning_rate=learning_rate)
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=self.config.LEARNING_MOMENTUM)

    def _build_step(self, anchors, variables):
        model, config = self.model, self.config
        weights = config.LOSS_WEIGHTS
        decay = [v for v in variables if "gamma" not in v.path and "beta" not in v.path and v.trainable]
        anchors_t = tf.constant(anchors)
        optimizer = self.optimizer

        def step(images, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks):
            with tf.GradientTape() as tape:
                losses = model.training_graph(images, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks, anchors_t)
                total = tf.add_n([losses[k] * float(weights.get(k, 1.0)) for k in losses])
                l2 = tf.add_n(
                    [tf.reduce_sum(tf.square(v)) / tf.cast(tf.size(v), tf.float32) for v in decay]
                ) * float(config.WEIGHT_DECAY) if decay else 0.0
                objective = total + l2
            grads = tape.gradient(objective, variables)
            grads = [g if g is not None else tf.zeros_like(v) for g, v in zip(grads, variables)]
            grads, _ = tf.clip_by_global_norm(grads, float(config.GRADIENT_CLIP_NORM))
            optimizer.apply_gradients(zip(grads, variables))
            losses["loss"] = total
            return losses

        return tf.function(step)

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers, augmentation=None, seed=0,
              steps_per_epoch=None, validation_steps=None):  # fmt: skip
        """Train until `epochs` (absolute, as matterport: continues from self.epoch)."""
        config = self.config
        self.model.set_trainable(layers)
        variables = self.model.trainable_variables()
        image_shape = (int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1]))
        anchors_px = self.model.get_anchors(image_shape)
        from .anchors import get_anchors

        anchors_pixels = get_anchors(config, image_shape, normalized=False)
        self.optimizer = self._make_optimizer(learning_rate)
        step = self._build_step(anchors_px, variables)
        steps = int(steps_per_epoch or config.STEPS_PER_EPOCH)
        vsteps = int(validation_steps if validation_steps is not None else config.VALIDATION_STEPS)
        tf.random.set_seed(seed)
        batches = _prefetch(data_generator(train_dataset, config, anchors_pixels, True, augmentation, seed + self.epoch))
        os.makedirs(self.out_dir, exist_ok=True)
        history = []
        started = time.time()
        for epoch in range(self.epoch + 1, int(epochs) + 1):
            t0 = time.time()
            sums = {}
            for i in range(steps):
                batch = next(batches)
                out = step(**batch)
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                if (i + 1) % max(1, steps // 5) == 0:
                    self.log(f"epoch {epoch} step {i + 1}/{steps} loss {sums['loss'] / (i + 1):.4f}")
            means = {k: v / steps for k, v in sums.items()}
            record = {"epoch": epoch, "seconds": round(time.time() - t0, 1), **{k: round(v, 5) for k, v in means.items()}}
            if val_dataset is not None and vsteps > 0:
                record["val_loss"] = round(self.validation_loss(val_dataset, anchors_px, anchors_pixels, vsteps, seed), 5)
            history.append(record)
            path = self.model.save_weights(self.checkpoint_path(epoch), extra={"epoch": epoch, "history": record})
            self.epoch = epoch
            self.log(json.dumps(record) + f" → {path}")
        self.log(f"trained {len(history)} epoch(s) in {time.time() - started:.0f} s")
        return history

    def validation_loss(self, dataset, anchors_norm, anchors_pixels, steps, seed):
        """Mean total loss over `steps` batches in training mode without updates (BN in inference mode)."""
        model = self.model
        fn = getattr(self, "_val_fn", None)
        if fn is None:
            anchors_t = tf.constant(anchors_norm)

            def val(images, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks):
                losses = model.training_graph(
                    images, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks, anchors_t, training=False
                )
                return tf.add_n(list(losses.values()))

            fn = self._val_fn = tf.function(val)
        gen = data_generator(dataset, self.config, anchors_pixels, shuffle=False, seed=seed)
        return float(np.mean([float(fn(**next(gen))) for _ in range(steps)]))
