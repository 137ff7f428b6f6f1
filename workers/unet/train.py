"""Training a segmentation model: `train(TrainConfig(...))`, the engine behind `streamer train unet`.

Adam + binary cross-entropy (sparse categorical for multi-class), fitted by Keras. After every epoch it
writes OUT/last.keras (with optimizer state, for resuming), OUT/best.keras (architecture and weights only;
best by validation IoU, or loss without a validation split) and OUT/state.json, the run folder shared with
the other model packages (workers/training.py): `resume=True` continues at the next epoch with the same
config.
"""

from __future__ import annotations

from pathlib import Path

from workers.training import RunLog, TrainResult, publish, read_state, result, start_run
from workers.unet.config import RESUMABLE, TrainConfig

LAST = "last.keras"
BEST = "best.keras"
REPORT_IMAGES = 4  # fixed validation images whose predictions the report shows after every epoch


def train(config: TrainConfig) -> TrainResult:
    """Train (or resume) per `config`; prints one line per epoch; returns the final state."""
    config.validate()
    out = Path(config.out)
    state = start_run(config, RESUMABLE, checkpoint=LAST)
    from workers.unet.data import training_data

    train_source, val_source = training_data(config)
    done = state["epoch"] if state else 0
    if done >= config.epochs:
        print(f"{out}: already trained {done} epochs (asked for {config.epochs}); pass a larger --epochs to continue")
        return result(out, state, out / BEST)

    import keras

    from workers.unet.data import SegmentationBatches

    keras.utils.set_random_seed(config.seed + done)
    size = (config.input_height, config.input_width)
    heads = 4 if config.deep_supervision else 1
    common = dict(
        size=size,
        batch_size=config.batch_size,
        seed=config.seed,
        classes=config.classes,
        outputs=heads,
        workers=config.workers,
    )
    train_batches = SegmentationBatches(train_source, train=True, steps=config.steps_per_epoch, epoch=done, **common)
    val_batches = SegmentationBatches(val_source, train=False, **common) if val_source is not None else None
    model = _model(config, out, resume=state is not None, total_steps=config.epochs * len(train_batches))
    validation = len(val_source) if val_source else 0
    print(
        f"training {config.arch} (width {config.width}, input {size[1]}x{size[0]}, {model.count_params():,} "
        f"parameters) on {config.data}: {len(train_source)} train / {validation} validation samples, "
        f"epochs {done + 1}..{config.epochs} → {out}",
        flush=True,
    )
    run = RunLog(config, state, monitor="val_iou" if val_batches is not None else "loss", log=_print)
    from workers.report import TrainingReport

    report = TrainingReport(out, f"U-Net training: {config.arch} on {config.data}", run.saved_config())
    shown = val_batches if val_batches is not None else train_batches
    samples = [shown.item(i) for i in range(min(REPORT_IMAGES, len(shown.source)))]
    model.fit(
        train_batches,
        validation_data=val_batches,
        epochs=config.epochs,
        initial_epoch=done,
        shuffle=False,
        verbose=0,
        callbacks=[_checkpoint_callback(run, report, samples)],
    )
    return result(out, read_state(out), out / BEST)


def _model(config: TrainConfig, out: Path, resume: bool, total_steps: int):
    """A fresh compiled model, or the last checkpoint with its optimizer (and schedule) state when resuming."""
    if resume:
        from workers.unet.weights import load_keras_model

        return load_keras_model(out / LAST, compile=True)
    import keras

    from workers.unet.models import build_model

    options = {"dropout": config.dropout}
    if config.arch == "unetpp":
        options["deep_supervision"] = config.deep_supervision
    shape = (config.input_height, config.input_width, 3)
    model = build_model(config.arch, shape, config.width, config.classes, **options)
    if config.init:
        from streamer.models import weights_path

        _start_from(model, weights_path("unet", config.init))
    if config.classes == 1:
        loss = keras.losses.BinaryCrossentropy()
        iou = keras.metrics.BinaryIoU(target_class_ids=[1], threshold=0.5, name="iou")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        iou = keras.metrics.IoU(config.classes, target_class_ids=[1], sparse_y_pred=False, name="iou")
    heads = len(model.outputs)
    rate = config.learning_rate
    if config.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=max(1, total_steps), alpha=0.05)
    model.compile(
        optimizer=keras.optimizers.Adam(rate),
        loss=loss if heads == 1 else [loss] * heads,
        metrics=[iou] if heads == 1 else [[] for _ in range(heads - 1)] + [[iou]],  # IoU of the final head
    )
    return model


def _start_from(model, path: str) -> None:
    """Give `model` the weights of the model file at `path`; StreamerError when the architectures differ."""
    from streamer.errors import StreamerError
    from workers.unet.weights import load_keras_model

    source = load_keras_model(Path(path))
    theirs, ours = source.get_weights(), model.get_weights()
    if [w.shape for w in theirs] != [w.shape for w in ours]:
        raise StreamerError(
            f"--init {path}: its layers differ from the model asked for ({source.count_params():,} vs "
            f"{model.count_params():,} parameters); give the same --arch, --width, --classes and --size it was "
            "trained with"
        )
    model.set_weights(theirs)


def _metric(logs: dict, name: str) -> float | None:
    """logs[name]; for "val_iou" also the single val_*iou key of multi-head models (e.g. val_head_4_iou)."""
    if name in logs:
        return float(logs[name])
    keys = [k for k in logs if k.startswith("val_") and k.endswith("iou")] if name == "val_iou" else []
    return float(logs[keys[0]]) if len(keys) == 1 else None


def _inference_copy(model):
    """The model rebuilt from its config, uncompiled (no optimizer state): what best.keras holds, ready to bundle."""
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def _print(line: str) -> None:
    print(line, flush=True)


def _prediction_grid(model, samples) -> tuple[list[list], list[str]]:
    """Rows of (image, ground truth, road probability, predicted mask) for the report's fixed images."""
    import numpy as np

    from workers.report import overlay

    if not samples:
        return [], []
    images = np.stack([image for image, _ in samples]).astype(np.float32) / 255.0
    output = model.predict(images, verbose=0)
    if isinstance(output, list | tuple):
        output = output[-1]
    output = np.asarray(output)
    probability = output[..., 0] if output.shape[-1] == 1 else output[..., 1]
    rows = []
    for (image, mask), p in zip(samples, probability):
        rows.append([image, overlay(image, mask == 1), (p * 255).astype(np.uint8), overlay(image, p > 0.5)])
    return rows, ["image", "ground truth", "road probability", "prediction"]


def _checkpoint_callback(run: RunLog, report=None, samples=()):
    """A Keras callback that, after each epoch, saves last.keras (and best.keras when the monitored metric
    improved), records the epoch in the run's state and rewrites the run's report (the class needs Keras,
    imported here)."""
    import keras

    class EpochCheckpoint(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            run.begin_epoch()

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            logs.setdefault("learning_rate", float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
            with publish(run.out / LAST) as tmp:
                self.model.save(tmp)
            value = _metric(logs, run.monitor)
            if run.improves(value):
                with publish(run.out / BEST) as tmp:
                    _inference_copy(self.model).save(tmp)
            run.end_epoch(epoch + 1, logs, LAST, value)
            if report is not None:
                report.epoch(run.history, _prediction_grid(self.model, samples))

    return EpochCheckpoint()
