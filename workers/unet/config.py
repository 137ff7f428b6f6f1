"""What defines a U-Net training run (`TrainConfig`) and an evaluation (`EvaluateConfig`); the CLI only
parses options into these."""

from __future__ import annotations

from dataclasses import dataclass

from streamer.errors import StreamerError

DEFAULT_THRESHOLD = 0.5  # road probability above which a pixel is road
ROAD_CLASSES = ("BG", "road")  # the class names of a one-channel road model (class 1 = road)
EVAL_FRAME = (360, 640)  # synthetic scenes are rendered at this (H, W) for evaluation
RESUMABLE = {"epochs", "resume", "out", "workers"}  # TrainConfig fields a resumed run may change


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

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
    init: str | None = None  # start from this model file's weights (same architecture), e.g. the demo model

    def validate(self) -> None:
        """Reject values that cannot train, with the option to fix in the message."""
        checks = [
            (self.width > 0, f"--width {self.width}: must be positive"),
            (self.classes >= 1, f"--classes {self.classes}: must be at least 1"),
            (self.epochs >= 1, f"--epochs {self.epochs}: must be at least 1"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size}: must be at least 1"),
            (self.learning_rate > 0, f"--learning-rate {self.learning_rate}: must be positive"),
            (0 <= self.val_fraction < 1, f"--val-fraction {self.val_fraction}: must be in [0, 1)"),
            (self.steps_per_epoch is None or self.steps_per_epoch >= 1, "--steps-per-epoch: must be at least 1"),
            (0 <= self.dropout < 1, f"--dropout {self.dropout}: must be in [0, 1)"),
            (self.schedule in ("cosine", "constant"), f"--schedule {self.schedule}: choose cosine or constant"),
            (not self.deep_supervision or self.arch == "unetpp", "--deep-supervision needs --arch unetpp"),
            (self.workers >= 1, "workers: must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise StreamerError(message)


@dataclass
class EvaluateConfig:
    """What an evaluation measures: the model from `weights` on the images of `data`."""

    data: str = "synthetic-roads"  # or kitti:DIR
    weights: str | None = None  # None: the bundled demo weights
    samples: int | None = None  # synthetic: scenes (default 200); kitti: the first N pairs (default all)
    seed: int = 1000  # synthetic: scenes come from the held-out "test" stream of this seed
    frame_size: tuple[int, int] = EVAL_FRAME  # synthetic: (H, W) the scenes are rendered at
    batch_size: int = 4
    threshold: float = DEFAULT_THRESHOLD
    device: str | None = None
