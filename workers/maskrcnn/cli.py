"""`streamer train maskrcnn` and `streamer evaluate maskrcnn`: options parsed into a TrainConfig /
EvaluateConfig, then run (wired by streamer.cli).

`add_train_arguments(parser)` / `run_train(args) -> int` and `add_evaluate_arguments(parser)` /
`run_evaluate(args) -> int`. Failures raise StreamerError (the CLI prints them on one line).
"""

from __future__ import annotations

import argparse
import json
import sys

from streamer.cli.options import add
from streamer.errors import StreamerError

from .config import BACKBONES, EvaluateConfig, TrainConfig, user_settings

SUPPRESS = argparse.SUPPRESS  # train options not given stay out of the namespace (so --resume reuses saved ones)
TRAIN = TrainConfig()
EVALUATE = EvaluateConfig()
SET_HELP = "override a Config setting, e.g. --set IMAGE_MAX_DIM=512 (JSON values); repeatable"
CONFIG_HELP = (
    "Config settings with matterport's names: JSON, YAML, or the KEY value listing of config.display() "
    "(--set overrides them)"
)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from .data import DATA_HELP, SHAPES_TRAINING

    def option(name: str, text: str, **kwargs) -> None:
        parser.add_argument(name, default=SUPPRESS, help=text, **kwargs)

    option("--data", f"{DATA_HELP} (required unless --resume)")
    option(
        "--samples",
        f"shapes: generated training images (default: {SHAPES_TRAINING}); via/coco: use the first N",
        type=int,
    )
    option("--backbone", "default: light for shapes, resnet50 otherwise, or the --init file's", choices=BACKBONES)
    option("--set", SET_HELP, action="append", metavar="KEY=VALUE", dest="overrides")
    option("--config", CONFIG_HELP, metavar="FILE", dest="config_file")
    option("--layers", "heads | 3+ | 4+ | 5+ | all | REGEX (default: heads with --init, all without)")
    option("--epochs", f"train up to this epoch (default: {TRAIN.epochs})", type=int)
    option("--steps-per-epoch", "batches per epoch (default: the Config's STEPS_PER_EPOCH)", type=int)
    option("--validation-steps", "validation batches per epoch (default: the Config's VALIDATION_STEPS)", type=int)
    add(
        parser, "batch", dest="batch_size", default=SUPPRESS, type=int, help="images per step (default: IMAGES_PER_GPU)"
    )
    option("--learning-rate", "default: the Config's LEARNING_RATE", type=float)
    option(
        "--val-fraction",
        f"coco: fraction of images held out for validation (default: {TRAIN.val_fraction})",
        type=float,
    )
    option("--seed", f"random seed: shapes generation, shuffling (default: {TRAIN.seed})", type=int)
    option("--init", "initial weights: our .weights.h5 or a matterport/Keras 2 .h5")
    option("--exclude", "comma-separated layer names to skip when loading --init")
    option("--no-augment", "turn off albumentations augmentation", action="store_false", dest="augment")
    add(
        parser,
        "final weights",
        dest="output",
        default=SUPPRESS,
        help="final weights (default: OUT/mask_rcnn_NAME.weights.h5)",
    )
    parser.add_argument("--out", default=TRAIN.out, help=f"run folder: checkpoints and state (default: {TRAIN.out})")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out at its next epoch, with its saved options"
    )


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the options describe (on --resume: the saved one, with any options given applied)."""
    from workers.training import config_from_options

    from .data import DATA_HELP, parse_data

    adjusted = {}
    if "overrides" in vars(args) or "config_file" in vars(args):
        given = {**settings_file(vars(args).get("config_file")), **parse_overrides(vars(args).get("overrides"))}
        adjusted["overrides"] = user_settings(given)
    if "exclude" in vars(args):
        adjusted["exclude"] = [name.strip() for name in args.exclude.split(",") if name.strip()]
    return config_from_options(TrainConfig, args, DATA_HELP, parse_data, **adjusted)


def run_train(args: argparse.Namespace) -> int:
    """Train a Mask R-CNN and print where its weights are."""
    from workers.training import print_result

    from .train import train

    return print_result(train(train_config(args)))


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    from .data import DATA_HELP, SHAPES_EVALUATION

    parser.add_argument("--data", required=True, help=DATA_HELP)
    parser.add_argument("--weights", help="weights file (default: the bundled shapes demo weights)")
    parser.add_argument(
        "--samples",
        type=int,
        help=f"shapes: generated images (default: {SHAPES_EVALUATION}); via/coco: the first N (default: all)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=EVALUATE.seed,
        help=f"shapes: image seed, a stream training never uses (default: {EVALUATE.seed})",
    )
    parser.add_argument(
        "--split",
        choices=("val", "train"),
        default=EVALUATE.split,
        help=f"via: which folder (default: {EVALUATE.split})",
    )
    add(
        parser,
        "batch",
        dest="batch_size",
        type=int,
        default=EVALUATE.batch_size,
        help=f"frames per model call (default: {EVALUATE.batch_size})",
    )
    parser.add_argument(
        "--threshold",
        "--min-confidence",
        dest="threshold",
        type=float,
        help="minimum detection confidence (default: the weights' DETECTION_MIN_CONFIDENCE)",
    )
    add(parser, "device", help="cpu, a GPU number (0, 1, …), cuda:N or /GPU:N (default: automatic)")
    parser.add_argument(
        "--backbone",
        choices=BACKBONES,
        help="for weights without a saved Config (matterport files): the backbone (default: light "
        "for shapes, resnet50 otherwise)",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides", help=SET_HELP)
    parser.add_argument("--config", dest="config_file", metavar="FILE", help=CONFIG_HELP)
    parser.add_argument(
        "--iou",
        type=float,
        default=EVALUATE.iou_threshold,
        help=f"IoU threshold for the VOC-style mAP (default: {EVALUATE.iou_threshold})",
    )
    parser.add_argument("--no-coco", action="store_false", dest="coco", help="skip the pycocotools mask AP")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def evaluate_config(args: argparse.Namespace) -> EvaluateConfig:
    from .data import parse_data

    parse_data(args.data)
    return EvaluateConfig(
        data=args.data,
        weights=args.weights,
        samples=args.samples,
        seed=args.seed,
        split=args.split,
        backbone=args.backbone,
        overrides=user_settings({**settings_file(args.config_file), **parse_overrides(args.overrides)}),
        iou_threshold=args.iou,
        coco=args.coco,
        batch_size=args.batch_size,
        threshold=args.threshold,
        device=args.device,
    )


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a Mask R-CNN and print its mAP (and COCO mask AP), or JSON."""
    from streamer.progress import ProgressBar

    from .evaluate import evaluate
    from .weights import DEMO_WEIGHTS

    config = evaluate_config(args)
    with ProgressBar("evaluating") as progress:  # on stderr: stdout has the scores
        result = evaluate(config, progress=progress)
    if args.json:
        weights = config.weights or str(DEMO_WEIGHTS)
        print(json.dumps({"model": "maskrcnn", "weights": weights, "data": config.data, **result.to_dict()}))
        return 0
    print(f"images: {len(result.aps)}  mAP@{config.iou_threshold:g} (masks, VOC): {result.mean:.4f}")
    if result.coco_ap is not None:
        print(
            f"COCO mask AP@[.5:.95]: {result.coco_ap:.4f}  AP50: {result.coco_ap50:.4f}  AP75: {result.coco_ap75:.4f}"
        )
    print(
        f"detect: {result.ms_per_image:.1f} ms/image; {len(result.aps)} images in {result.elapsed:.1f} s, "
        f"{result.seconds:.1f} s of it inference"
    )
    sys.stdout.flush()
    return 0


def settings_file(path: str | None) -> dict:
    """The settings of a --config file ({} without one), as written (user_settings reads them for Config)."""
    from streamer.settings import read_settings_file

    return read_settings_file(path) if path else {}


def parse_overrides(items) -> dict:
    """--set KEY=VALUE items → {KEY: VALUE}; values are JSON when they parse as JSON, else strings."""
    out = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise StreamerError(f"--set {item!r}: write KEY=VALUE, e.g. --set IMAGE_MAX_DIM=512")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
