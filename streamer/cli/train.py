"""`streamer train MODEL ...`: each model package's cli.py defines the options and runs the training."""

from __future__ import annotations

from workers.maskrcnn import cli as maskrcnn
from workers.unet import cli as unet

MODELS = {
    "unet": (
        unet,
        "U-Net road segmentation on synthetic roads or KITTI",
        "Checkpoints go to OUT/last.keras and OUT/best.keras after every epoch; --resume continues a run.",
    ),
    "maskrcnn": (
        maskrcnn,
        "Mask R-CNN on VIA, COCO or generated shapes",
        "A checkpoint per epoch in --out; --resume continues a run from the last one.",
    ),
}


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train",
        help="train a model: unet (road segmentation) or maskrcnn (instance segmentation)",
        description="Train a model; checkpoints are written after every epoch and --resume continues a run.",
    )
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, (package, help_text, description) in MODELS.items():
        model = models.add_parser(name, help=help_text, description=description)
        package.add_train_arguments(model)
        model.set_defaults(run=package.run_train)
