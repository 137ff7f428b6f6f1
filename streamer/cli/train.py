"""`streamer train unet --data synthetic-roads|kitti:DIR ...`: parses into a TrainConfig and trains.

Each model is a subcommand with its own options: `streamer train unet …`, `streamer train maskrcnn …`.
"""

from __future__ import annotations

import argparse

from streamer.cli.common import parse_size
from streamer.errors import StreamerError
from workers.maskrcnn.commands import add_train_arguments, run_train

SUPPRESS = argparse.SUPPRESS  # options not given stay out of the namespace (so --resume can reuse saved ones)


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train", help="train a model: unet (road segmentation) or maskrcnn (instance segmentation)",
        description="Train a model; checkpoints are written after every epoch and --resume continues a run.",
    )
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    unet = models.add_parser("unet", help="U-Net road segmentation on synthetic roads or KITTI",
                             description="Checkpoints go to OUT/last.keras and OUT/best.keras after every epoch.")
    unet.add_argument("--data", default=SUPPRESS,
                      help="synthetic-roads (generated scenes) or kitti:DIR (DIR/image_2/*.png + DIR/semantic/*.png)")
    unet.add_argument("--samples", type=int, default=SUPPRESS,
                      help="synthetic: scenes to generate (default: 2000); kitti: use the first N pairs")
    unet.add_argument("--arch", default=SUPPRESS, help="unet | unetpp | mobilenet (default: unet)")
    unet.add_argument("--width", type=float, default=SUPPRESS,
                      help="filter multiplier; 1.0 = 64…1024 filters (default: 0.125)")
    unet.add_argument("--classes", type=int, default=SUPPRESS, help="1 = binary road mask (default: 1)")
    unet.add_argument("--size", default=SUPPRESS, help="model input WIDTHxHEIGHT, multiples of 16 (default: 256x128)")
    unet.add_argument("--epochs", type=int, default=SUPPRESS, help="total epochs (default: 10)")
    unet.add_argument("--steps", type=int, default=SUPPRESS,
                      help="batches per epoch (default: one pass over the training samples)")
    unet.add_argument("--batch", type=int, default=SUPPRESS, help="batch size (default: 8)")
    unet.add_argument("--lr", type=float, default=SUPPRESS, help="Adam learning rate (default: 0.001)")
    unet.add_argument("--schedule", default=SUPPRESS, help="cosine | constant learning rate (default: cosine)")
    unet.add_argument("--dropout", type=float, default=SUPPRESS, help="dropout at the bottom (default: 0.5)")
    unet.add_argument("--deep-supervision", action="store_true", default=SUPPRESS,
                      help="unetpp: train a head per nested decoder level")
    unet.add_argument("--val", type=float, default=SUPPRESS, help="validation fraction (default: 0.1)")
    unet.add_argument("--seed", type=int, default=SUPPRESS, help="random seed (default: 0)")
    unet.add_argument("--out", default="runs/unet", help="run folder (default: runs/unet)")
    unet.add_argument("--resume", action="store_true",
                      help="continue the run in --out at its next epoch, with its saved options")
    unet.set_defaults(run=train_unet)
    maskrcnn = models.add_parser("maskrcnn", help="Mask R-CNN on VIA, COCO or generated shapes",
                                 description="A checkpoint per epoch in --out; --resume continues from the last.")
    add_train_arguments(maskrcnn)
    maskrcnn.set_defaults(run=run_train)


# CLI option → TrainConfig field
FIELDS = {
    "data": "data", "samples": "samples", "arch": "arch", "width": "width", "classes": "classes",
    "epochs": "epochs", "steps": "steps_per_epoch", "batch": "batch_size", "lr": "learning_rate",
    "schedule": "schedule", "dropout": "dropout", "deep_supervision": "deep_supervision", "val": "val_fraction",
    "seed": "seed",
}


def unet_config(args: argparse.Namespace):
    """The TrainConfig the options describe (on --resume: the saved one, with any options given applied)."""
    from workers.unet.sources import parse_data
    from workers.unet.train import TrainConfig, resumed_config

    given = {field: getattr(args, option) for option, field in FIELDS.items() if hasattr(args, option)}
    if hasattr(args, "size"):
        given["input_width"], given["input_height"] = parse_size(args.size)
    if args.resume:
        return resumed_config(args.out, **given)
    if "data" not in given:
        raise StreamerError("--data: required; give synthetic-roads or kitti:DIR")
    parse_data(given["data"])
    return TrainConfig(**given, out=args.out)


def train_unet(args: argparse.Namespace) -> int:
    """Train a U-Net and print where the best checkpoint is."""
    from workers.unet.train import train

    result = train(unet_config(args))
    best = f"{result.best_metric} {result.best_value:.4f}" if result.best_value is not None else "n/a"
    print(f"done: {result.epochs_done} epochs; best {best} → {result.out / 'best.keras'}")
    return 0

