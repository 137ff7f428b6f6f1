"""Training a Mask R-CNN: `train(TrainConfig(...))`, the engine behind `streamer train maskrcnn`.

The loop (Trainer) runs one tf.function step per batch: SGD or Adam with gradient clipping and L2 weight
decay, then the validation loss after each epoch. After every epoch it writes a checkpoint
OUT/mask_rcnn_<name>_<epoch>.weights.h5 and OUT/state.json, the run folder shared with the other model
packages (workers/training.py): `resume=True` continues from the last checkpoint at the next epoch with the
same config. At the end the weights also go to `output` (default OUT/mask_rcnn_<name>.weights.h5).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import tensorflow as tf

from streamer.errors import StreamerError
from workers.training import RunLog, TrainResult, read_state, result, start_run

from .config import RESUMABLE, TrainConfig, model_config
from .data import data_generator, default_augmentation, training_data

# Settings taken from the weights file a run starts from (--init), or resumes from: they shape the layers.
ARCHITECTURE = (
    "BACKBONE",
    "BACKBONE_WIDTH",
    "TOP_DOWN_PYRAMID_SIZE",
    "RPN_CONV_DEPTH",
    "MASK_HEAD_DEPTH",
    "FPN_CLASSIF_FC_LAYERS_SIZE",
    "RPN_ANCHOR_RATIOS",
    "RPN_ANCHOR_STRIDE",
    "TRAIN_BN",
)
# the layers sized by the class count: not loaded from a --init file with another count (matterport's balloon
# sample excludes them by hand when it starts from COCO)
CLASS_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask")


def log_line(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def train(config: TrainConfig, log=log_line) -> TrainResult:
    """Train (or resume) per `config`; logs one line per epoch; returns the final state."""
    config.validate()
    if config.init:  # a release name (coco) or a URL: fetched once into the cache
        from streamer.models import weights_path

        config = replace(config, init=weights_path("maskrcnn", config.init))
    out = Path(config.out)
    state = start_run(config, RESUMABLE)
    data = training_data(config)
    start = out / state["checkpoint"] if state else config.init
    architecture = _architecture(start, config.backbone)
    settings = model_config(
        data.kind, data.class_names, config.backbone, config.batch_size, config.overrides, architecture
    )
    output = Path(config.output or out / f"mask_rcnn_{(settings.NAME or 'model').lower()}.weights.h5")
    done = state["epoch"] if state else 0
    if done >= config.epochs:
        log(f"{out}: already trained {done} epochs (asked for {config.epochs}); pass a larger --epochs to continue")
        return result(out, state, output)

    model = initial_model(settings, start if state else config.init, architecture, config.exclude, bool(state), log)
    if state:
        log(f"resumed from {start} (epoch {done})")
    layers = config.layers or ("heads" if config.init else "all")
    learning_rate = config.learning_rate or settings.LEARNING_RATE
    log(
        f"training {settings.NAME} ({settings.BACKBONE}, {len(data.class_names) - 1} classes) layers={layers} "
        f"epochs {done + 1}..{config.epochs} lr={learning_rate} → {out}"
    )
    validation_steps = settings.VALIDATION_STEPS if config.validation_steps is None else config.validation_steps
    run = RunLog(config, state, monitor="val_loss" if validation_steps > 0 else "loss", log=log)
    from workers.report import TrainingReport

    trainer = Trainer(model, out, log=log)
    trainer.report = TrainingReport(out, f"Mask R-CNN training: {settings.NAME} on {config.data}", run.saved_config())
    trainer.epoch = done
    started = time.time()
    trainer.train(
        data.train,
        data.val,
        learning_rate,
        config.epochs,
        layers,
        augmentation=default_augmentation(data.kind) if config.augment else None,
        seed=config.seed,
        steps_per_epoch=config.steps_per_epoch,
        validation_steps=validation_steps,
        run=run,
    )
    model.save_weights(output, extra={"epoch": trainer.epoch, "train_seconds": round(time.time() - started)})
    log(f"wrote {output}")
    return result(out, read_state(out), output)


def initial_model(settings, start, architecture: dict | None, exclude=(), resume: bool = False, log=log_line):
    """The MaskRCNN of `settings` with the weights of `start` (a checkpoint to resume from, or a --init file,
    loaded by layer name without `exclude`; none: as initialised). A --init file of another class count
    leaves out the class-sized layers (CLASS_LAYERS), as matterport's balloon sample does by hand."""
    from .model import MaskRCNN

    model = MaskRCNN(settings)
    if resume:
        model.load_weights(start)
    elif start:
        exclude = list(exclude)
        classes = (architecture or {}).get("NUM_CLASSES")
        if classes is not None and classes != settings.NUM_CLASSES:
            exclude += [name for name in CLASS_LAYERS if name not in exclude]
            log(
                f"not loading {', '.join(CLASS_LAYERS)} from {start}: it has {classes} classes, "
                f"the data {settings.NUM_CLASSES} ({', '.join(settings.class_names)})"
            )
        report = model.load_weights(start, by_name=True, exclude=exclude)
        loaded, excluded, skipped = (len(report[k]) for k in ("loaded", "excluded", "skipped"))
        log(f"loaded {loaded} layers from {start} (excluded {excluded}, not in model {skipped})")
    return model


def _architecture(path, backbone: str | None = None) -> dict | None:
    """The ARCHITECTURE settings and NUM_CLASSES of the weights file a run starts from: saved in one of our
    files, or read from the layers of a matterport / Keras 2 file (ResNet-101 or -50, layer sizes, classes);
    None without a file. A `backbone` (--backbone) other than the file's is an error."""
    if not path:
        return None
    from .weights import architecture_from_keras2, read_config

    saved = read_config(path)
    if saved is None:
        saved = architecture_from_keras2(path, backbone_only=True)
    found = {key: saved[key] for key in (*ARCHITECTURE, "NUM_CLASSES") if key in saved}
    if backbone and found.get("BACKBONE", backbone) != backbone:
        raise StreamerError(
            f"--backbone {backbone}: the --init file {path} holds a {found['BACKBONE']} backbone; drop --backbone "
            f"or give --backbone {found['BACKBONE']}"
        )
    return found


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


class Trainer:
    """Trains a MaskRCNN; checkpoints to `out_dir/mask_rcnn_<name>_<epoch>.weights.h5`."""

    def __init__(self, model, out_dir, log=print):
        self.model = model
        self.config = model.config
        self.out_dir = str(out_dir)
        self.log = log
        self.epoch = 0
        self.optimizer = None
        self.report = None  # a workers.report.TrainingReport, rewritten after every epoch

    def checkpoint_path(self, epoch):
        name = (self.config.NAME or "model").lower()
        return os.path.join(self.out_dir, f"mask_rcnn_{name}_{epoch:04d}.weights.h5")

    def _make_optimizer(self, learning_rate):
        import keras

        if self.config.OPTIMIZER == "adam":
            return keras.optimizers.Adam(learning_rate=learning_rate)
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=self.config.LEARNING_MOMENTUM)

    def _build_step(self, anchors, variables):
        model, config = self.model, self.config
        weights = config.LOSS_WEIGHTS
        decay = [v for v in variables if "gamma" not in v.path and "beta" not in v.path and v.trainable]
        anchors_constant = tf.constant(anchors)
        optimizer = self.optimizer

        def step(images, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks):
            with tf.GradientTape() as tape:
                losses = model.training_graph(
                    images, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks, anchors_constant
                )
                total = tf.add_n([losses[k] * float(weights.get(k, 1.0)) for k in losses])
                objective = total
                if decay:
                    squares = [tf.reduce_sum(tf.square(v)) / tf.cast(tf.size(v), tf.float32) for v in decay]
                    objective += tf.add_n(squares) * float(config.WEIGHT_DECAY)
            grads = tape.gradient(objective, variables)
            grads = [g if g is not None else tf.zeros_like(v) for g, v in zip(grads, variables)]
            grads, _ = tf.clip_by_global_norm(grads, float(config.GRADIENT_CLIP_NORM))
            optimizer.apply_gradients(zip(grads, variables))
            losses["loss"] = total
            return losses

        return tf.function(step)

    def train(
        self,
        train_dataset,
        val_dataset,
        learning_rate,
        epochs,
        layers,
        augmentation=None,
        seed=0,
        steps_per_epoch=None,
        validation_steps=None,
        run: RunLog | None = None,
    ):
        """Train until `epochs` (absolute, as matterport: continues from self.epoch); after each epoch a
        checkpoint, recorded in `run` (the run's state.json) when given."""
        config = self.config
        self.model.set_trainable(layers)
        variables = self.model.trainable_variables()
        image_shape = (int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1]))
        anchors_norm = self.model.get_anchors(image_shape)
        from .anchors import get_anchors

        anchors_pixels = get_anchors(config, image_shape, normalized=False)
        self.optimizer = self._make_optimizer(learning_rate)
        step = self._build_step(anchors_norm, variables)
        steps = int(steps_per_epoch or config.STEPS_PER_EPOCH)
        vsteps = int(validation_steps if validation_steps is not None else config.VALIDATION_STEPS)
        tf.random.set_seed(seed)
        batches = _prefetch(
            data_generator(train_dataset, config, anchors_pixels, True, augmentation, seed + self.epoch)
        )
        os.makedirs(self.out_dir, exist_ok=True)
        history = []
        started = time.time()
        for epoch in range(self.epoch + 1, int(epochs) + 1):
            if run is not None:
                run.begin_epoch()
            sums = {}
            for i in range(steps):
                out = step(**next(batches))
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                if (i + 1) % max(1, steps // 5) == 0:
                    self.log(f"epoch {epoch} step {i + 1}/{steps} loss {sums['loss'] / (i + 1):.4f}")
            record = {k: round(v / steps, 5) for k, v in sums.items()}
            if val_dataset is not None and vsteps > 0:
                losses = self.validation_losses(val_dataset, anchors_norm, anchors_pixels, vsteps, seed)
                record.update({f"val_{k}": round(v, 5) for k, v in losses.items()})
            record["learning_rate"] = float(learning_rate)
            path = self.model.save_weights(self.checkpoint_path(epoch), extra={"epoch": epoch, "history": record})
            self.epoch = epoch
            history.append({"epoch": epoch, **record})
            if run is not None:
                run.end_epoch(epoch, record, os.path.basename(path), record.get(run.monitor))
                if self.report is not None:
                    self.report.epoch(run.history, self.prediction_grid(val_dataset or train_dataset))
        self.log(f"trained {len(history)} epoch(s) in {time.time() - started:.0f} s")
        return history

    def validation_losses(self, dataset, anchors_norm, anchors_pixels, steps, seed) -> dict[str, float]:
        """Mean of each loss component and of their sum ("loss") over `steps` validation batches."""
        model = self.model
        fn = getattr(self, "_val_fn", None)
        if fn is None:
            anchors_constant = tf.constant(anchors_norm)

            def val(images, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks):
                losses = model.training_graph(
                    images, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks, anchors_constant, training=False
                )
                losses["loss"] = tf.add_n(list(losses.values()))
                return losses

            fn = self._val_fn = tf.function(val)
        batches = data_generator(dataset, self.config, anchors_pixels, shuffle=False, seed=seed)
        results = [fn(**next(batches)) for _ in range(steps)]
        return {k: float(np.mean([float(r[k]) for r in results])) for k in results[0]}

    def prediction_grid(self, dataset, count: int = 4):
        """Rows of (image, ground truth, detections) on the first `count` images of `dataset` (the same images
        after every epoch), for the report."""
        from workers.report import overlay

        ids = list(dataset.image_ids)[:count]
        if not ids:
            return None
        images = [dataset.load_image(i) for i in ids]
        rows = []
        for image_id, image in zip(ids, images):
            masks, _ = dataset.load_mask(image_id)
            found = self.model.detect([image])[0]
            rows.append([image, overlay(image, masks), overlay(image, found["masks"])])
        return rows, ["image", "ground truth", "detections"]
