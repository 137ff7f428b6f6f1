"""`streamer train unet` and `streamer evaluate unet`: options parsed into a TrainConfig / EvaluateConfig,
then run (wired by streamer.cli).

`add_train_arguments(parser)` / `run_train(args) -> int` and `add_evaluate_arguments(parser)` /
`run_evaluate(args) -> int`. Failures raise StreamerError (the CLI prints them on one line).
"""

from __future__ import annotations

import argparse
import json

from streamer.cli.options import add
from workers.unet.config import EvaluateConfig, TrainConfig

SUPPRESS = argparse.SUPPRESS  # train options not given stay out of the namespace (so --resume reuses saved ones)
TRAIN = TrainConfig()
EVALUATE = EvaluateConfig()


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from workers.unet.data import DATA_HELP

    def option(name: str, text: str, **kwargs) -> None:
        parser.add_argument(name, default=SUPPRESS, help=text, **kwargs)

    option("--data", f"{DATA_HELP} (required unless --resume)")
    option("--samples", "synthetic: scenes to generate (default: 2000); kitti: use the first N pairs", type=int)
    option("--arch", f"unet | unetpp | mobilenet (default: {TRAIN.arch})")
    option("--width", f"filter multiplier; 1.0 = 64…1024 filters (default: {TRAIN.width})", type=float)
    option("--classes", f"1 = binary road mask (default: {TRAIN.classes})", type=int)
    option("--size", f"model input WIDTHxHEIGHT, multiples of 16 (default: {TRAIN.input_width}x{TRAIN.input_height})")
    option("--epochs", f"total epochs (default: {TRAIN.epochs})", type=int)
    option("--steps-per-epoch", "batches per epoch (default: one pass over the training samples)", type=int)
    add(
        parser,
        "batch",
        dest="batch_size",
        default=SUPPRESS,
        type=int,
        help=f"images per step (default: {TRAIN.batch_size})",
    )
    option("--learning-rate", f"Adam learning rate (default: {TRAIN.learning_rate})", type=float)
    option("--schedule", f"cosine | constant learning rate (default: {TRAIN.schedule})")
    option("--dropout", f"dropout at the bottom (default: {TRAIN.dropout})", type=float)
    option("--deep-supervision", "unetpp: train a head per nested decoder level", action="store_true")
    option(
        "--val-fraction", f"fraction of the samples held out for validation (default: {TRAIN.val_fraction})", type=float
    )
    option("--seed", f"random seed (default: {TRAIN.seed})", type=int)
    option("--init", "start from this model file's weights (a .keras file of the same architecture and size)")
    parser.add_argument("--out", default=TRAIN.out, help=f"run folder (default: {TRAIN.out})")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out at its next epoch, with its saved options"
    )


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the options describe (on --resume: the saved one, with any options given applied)."""
    from workers.training import config_from_options
    from workers.unet.data import DATA_HELP, parse_data

    adjusted = {}
    if getattr(args, "size", None) is not None:
        from streamer.cli.common import parse_size

        adjusted["input_width"], adjusted["input_height"] = parse_size(args.size)
    return config_from_options(TrainConfig, args, DATA_HELP, parse_data, **adjusted)


def run_train(args: argparse.Namespace) -> int:
    """Train a U-Net and print where the best checkpoint is."""
    from workers.training import print_result
    from workers.unet.train import train

    return print_result(train(train_config(args)))


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    from workers.unet.data import DATA_HELP

    parser.add_argument("--data", required=True, help=f"{DATA_HELP}; synthetic scenes come from a held-out stream")
    parser.add_argument("--weights", help="a .keras file from `streamer train unet` (default: bundled demo weights)")
    parser.add_argument(
        "--samples", type=int, help="synthetic: scenes (default: 200); kitti: first N pairs (default: all)"
    )
    parser.add_argument(
        "--seed", type=int, default=EVALUATE.seed, help=f"synthetic: scene seed (default: {EVALUATE.seed})"
    )
    height, width = EVALUATE.frame_size
    parser.add_argument(
        "--frame-size",
        default=f"{width}x{height}",
        help=f"synthetic: rendered WIDTHxHEIGHT (default: {width}x{height})",
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
        type=float,
        default=EVALUATE.threshold,
        help=f"road probability threshold (default: {EVALUATE.threshold})",
    )
    add(parser, "device", help="cpu, a GPU number (0, 1, …), cuda:N or /GPU:N (default: automatic)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def evaluate_config(args: argparse.Namespace) -> EvaluateConfig:
    from streamer.cli.common import parse_size
    from workers.unet.data import parse_data

    parse_data(args.data)
    width, height = parse_size(args.frame_size)
    return EvaluateConfig(
        data=args.data,
        weights=args.weights,
        samples=args.samples,
        seed=args.seed,
        frame_size=(height, width),
        batch_size=args.batch_size,
        threshold=args.threshold,
        device=args.device,
    )


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a U-Net and print per-image IoU and the mean (or JSON)."""
    from streamer.progress import ProgressBar, counted
    from workers.unet.evaluate import evaluate
    from workers.unet.weights import DEMO_WEIGHTS

    config = evaluate_config(args)
    with ProgressBar("evaluating") as progress:  # on stderr: stdout has the scores
        result = evaluate(config, progress=progress)
    if args.json:
        weights = config.weights or str(DEMO_WEIGHTS)
        print(json.dumps({"model": "unet", "weights": weights, "data": config.data, **result.to_dict()}, indent=2))
        return 0
    for name, value in zip(result.names, result.ious):
        print(f"{name}  {value:.4f}")
    print(f"mean IoU over {counted(len(result.ious), 'image')}: {result.mean:.4f}")
    return 0
