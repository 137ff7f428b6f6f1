"""Training a segmentation model: `train(TrainConfig(...))`, the engine behind `streamer train unet`.

Adam + binary cross-entropy (sparse categorical for multi-class). After every epoch it writes
OUT/last.keras (with optimizer state, for resuming), OUT/best.keras (architecture and weights only; best by
validation IoU, or loss without a validation split) and
OUT/state.json (epochs done, config, history), each to a temporary name renamed when complete,
so `resume=True` continues at the next epoch with the same config.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from streamer.errors import StreamerError

STATE = "state.json"
STATE_VERSION = 1
RESUMABLE = {"epochs", "resume", "out", "workers"}  # fields a resumed run may change


@dataclass
class TrainConfig:
    """Everything that defines a training run (the CLI only parses into this)."""

    arch: str = "unet"  # unet | unetpp | mobilenet
    width: float = 0.125  # filter multiplier: 1.0 = 64…1024 filters
    classes: int = 1  # 1 = binary road mask (sigmoid); N > 1 = softmax, class 1 = road
    input_height: int = 128
    input_width: int = 256
    data: str = "synthetic-roads"  # or kitti:DIR
    samples: int | None = None  # synthetic: scenes to draw (default 2000); kitti: use the first N pairs
    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-3
    val_fraction: float = 0.1
    out: str = "runs/unet"
    resume: bool = False
    seed: int = 0
    steps_per_epoch: int | None = None  # None: one pass over the training samples
    dropout: float = 0.5
    schedule: str = "cosine"  # learning rate: cosine decay to 5 % over the run, or constant
    deep_supervision: bool = False  # unetpp only: a head per nested decoder level
    workers: int = 2  # data loader threads

    def validate(self) -> None:
        """Reject values that cannot train, with the option to fix in the message."""
        checks = [
            (self.width > 0, f"--width {self.width}: must be positive"),
            (self.classes >= 1, f"--classes {self.classes}: must be at least 1"),
            (self.epochs >= 1, f"--epochs {self.epochs}: must be at least 1"),
            (self.batch_size >= 1, f"--batch {self.batch_size}: must be at least 1"),
            (self.learning_rate > 0, f"--lr {self.learning_rate}: must be positive"),
            (0 <= self.val_fraction < 1, f"--val {self.val_fraction}: must be in [0, 1)"),
            (self.steps_per_epoch is None or self.steps_per_epoch >= 1, "--steps: must be at least 1"),
            (0 <= self.dropout < 1, f"--dropout {self.dropout}: must be in [0, 1)"),
            (self.schedule in ("cosine", "constant"), f"--schedule {self.schedule}: choose cosine or constant"),
            (not self.deep_supervision or self.arch == "unetpp", "--deep-supervision needs --arch unetpp"),
            (self.workers >= 1, "workers: must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise StreamerError(message)


@dataclass
class TrainResult:
    """Where the run's files are and how it ended."""

    out: Path
    epochs_done: int
    best_metric: str
    best_value: float | None
    history: list[dict]


def resumed_config(out: str | Path, **explicit) -> TrainConfig:
    """The saved config of the run in `out`, with explicitly given options applied (checked by `train`)."""
    state = read_state(Path(out))
    if state is None:
        raise StreamerError(f"nothing to resume in {out}: no {STATE}; run without --resume to start a new run")
    saved = {k: v for k, v in state["config"].items() if k in {f.name for f in fields(TrainConfig)}}
    return TrainConfig(**{**saved, **explicit, "out": str(out), "resume": True})


def read_state(out: Path) -> dict | None:
    """The run's state.json, or None if there is none."""
    path = out / STATE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        state["epoch"], state["config"]  # noqa: B018 - both keys must exist
        return state
    except (ValueError, KeyError, TypeError) as error:
        raise StreamerError(f"training state {path}: unreadable ({error}); delete {out} to start over") from error


def train(config: TrainConfig) -> TrainResult:
    """Train (or resume) per `config`; prints one line per epoch; returns the final state."""
    config.validate()
    out = Path(config.out)
    state = _start_state(config, out)
    from workers.unet.sources import training_sources

    size = (config.input_height, config.input_width)
    train_source, val_source = training_sources(config.data, config.samples, config.val_fraction, config.seed, size)
    done = state["epoch"] if state else 0
    if done >= config.epochs:
        print(f"{out}: already trained {done} epochs (asked for {config.epochs}); pass a larger --epochs to continue")
        return _result(out, state)

    import keras

    from workers.unet.data import SegmentationBatches

    keras.utils.set_random_seed(config.seed + done)
    heads = 4 if config.deep_supervision else 1
    common = dict(size=size, batch_size=config.batch_size, seed=config.seed, classes=config.classes,
                  outputs=heads, workers=config.workers)
    train_batches = SegmentationBatches(train_source, train=True, steps=config.steps_per_epoch, epoch=done, **common)
    val_batches = SegmentationBatches(val_source, train=False, **common) if val_source is not None else None
    model = _model(config, out, resume=state is not None, total_steps=config.epochs * len(train_batches))
    print(
        f"training {config.arch} (width {config.width}, input {size[1]}x{size[0]}, {model.count_params():,} parameters) "
        f"on {config.data}: {len(train_source)} train / {len(val_source) if val_source else 0} validation samples, "
        f"epochs {done + 1}..{config.epochs} → {out}",
        flush=True,
    )
    checkpoint = _EpochCheckpoint(config, out, state, monitor="val_iou" if val_batches is not None else "loss")
    model.fit(train_batches, validation_data=val_batches, epochs=config.epochs, initial_epoch=done,
              shuffle=False, verbose=0, callbacks=[checkpoint])
    return _result(out, read_state(out))


def _start_state(config: TrainConfig, out: Path) -> dict | None:
    """The saved state to resume from (same config required), or None for a fresh run in an unused `out`."""
    state = read_state(out)
    if not config.resume:
        if state is not None:
            raise StreamerError(
                f"{out} already holds a training run ({state['epoch']} epochs done); pass --resume to continue it "
                "or choose another --out"
            )
        return None
    if state is None:
        raise StreamerError(f"nothing to resume in {out}: no {STATE}; run without --resume to start a new run")
    if not (out / "last.keras").exists():
        raise StreamerError(f"nothing to resume in {out}: last.keras is missing; delete {out} to start over")
    mine = {k: v for k, v in asdict(config).items() if k not in RESUMABLE}
    theirs = {k: v for k, v in state["config"].items() if k not in RESUMABLE}
    changed = [f"{k}: run has {theirs.get(k)!r}, asked {v!r}" for k, v in mine.items() if theirs.get(k) != v]
    if changed:
        raise StreamerError(f"cannot resume {out} with a different config ({'; '.join(changed)}); only --epochs may change")
    return state


def _model(config: TrainConfig, out: Path, resume: bool, total_steps: int):
    """A fresh compiled model, or the last checkpoint with its optimizer (and schedule) state when resuming."""
    if resume:
        from workers.unet.modelfile import load_keras_model

        return load_keras_model(out / "last.keras", compile=True)
    import keras

    from workers.unet.models import build_model

    options = {"dropout": config.dropout}
    if config.arch == "unetpp":
        options["deep_supervision"] = config.deep_supervision
    model = build_model(config.arch, (config.input_height, config.input_width, 3), config.width, config.classes,
                        **options)
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


def _metric(logs: dict, name: str) -> float | None:
    """logs[name]; for "val_iou" also the single val_*iou key of multi-head models (e.g. val_head_4_iou)."""
    if name in logs:
        return float(logs[name])
    keys = [k for k in logs if k.startswith("val_") and k.endswith("iou")] if name == "val_iou" else []
    return float(logs[keys[0]]) if len(keys) == 1 else None


def _atomic_write(path: Path, write) -> None:
    """Write via `write(tmp_path)` to a temporary name, then rename over `path`."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def _inference_copy(model):
    """The model rebuilt from its config, uncompiled (no optimizer state): what best.keras holds, ready to bundle."""
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def _result(out: Path, state: dict) -> TrainResult:
    """TrainResult from a state.json dict."""
    best = state.get("best", {})
    return TrainResult(out, state["epoch"], best.get("metric", ""), best.get("value"), state.get("history", []))


def _callback_class():
    """The checkpoint callback class (defined on first use so this module imports without Keras)."""
    import keras

    class EpochCheckpoint(keras.callbacks.Callback):
        """After each epoch: print metrics, save last.keras / best.keras, write state.json."""

        def __init__(self, config: TrainConfig, out: Path, state: dict | None, monitor: str) -> None:
            super().__init__()
            self.config = config
            self.out = out
            self.monitor = monitor
            self.history = list(state.get("history", [])) if state else []
            self.best = (state or {}).get("best", {"metric": monitor, "value": None})
            self.started = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None):
            """Start the epoch clock."""
            self.started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            seconds = time.monotonic() - self.started
            self.out.mkdir(parents=True, exist_ok=True)
            last = self.out / "last.keras"
            _atomic_write(last, self.model.save)
            value = _metric(logs, self.monitor)
            higher = "iou" in self.monitor
            improved = value is not None and (
                self.best.get("value") is None or (value > self.best["value"] if higher else value < self.best["value"])
            )
            if improved:
                self.best = {"metric": self.monitor, "value": value, "epoch": epoch + 1}
                _atomic_write(self.out / "best.keras", _inference_copy(self.model).save)
            self.history.append({"epoch": epoch + 1, "seconds": round(seconds, 1), **logs})
            state = {"version": STATE_VERSION, "epoch": epoch + 1, "config": asdict(self.config),
                     "best": self.best, "history": self.history}
            _atomic_write(self.out / STATE, lambda tmp: tmp.write_text(json.dumps(state, indent=2)))
            shown = "  ".join(f"{k} {v:.4g}" for k, v in logs.items())
            mark = "  *best" if improved else ""
            print(f"epoch {epoch + 1}/{self.config.epochs}  {shown}  ({seconds:.0f} s){mark}", flush=True)

    return EpochCheckpoint


def _EpochCheckpoint(config: TrainConfig, out: Path, state: dict | None, monitor: str):  # noqa: N802
    """Build the per-epoch checkpoint callback (its class needs Keras, imported lazily)."""
    return _callback_class()(config, out, state, monitor)
