"""`streamer evaluate unet --data ... [--weights FILE]`: per-image IoU and the mean, as text or JSON.

Models are looked up in EVALUATORS, so adding e.g. "maskrcnn" is one entry plus its own options.
"""

from __future__ import annotations

import argparse
import json
import os

from streamer.errors import StreamerError


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "evaluate", help="measure a segmentation model's IoU on synthetic roads or KITTI",
        description="Segment every image at its original size and compare with its road mask (IoU).",
    )
    parser.add_argument("model", help=f"which model to evaluate: {', '.join(EVALUATORS)}")
    parser.add_argument("--data", required=True,
                        help="synthetic-roads (held-out generated scenes) or kitti:DIR (image_2/ + semantic/)")
    parser.add_argument("--weights", help="a .keras file from `streamer train unet` (default: bundled demo weights)")
    parser.add_argument("--samples", type=int, help="synthetic: scenes (default: 200); kitti: first N pairs (default: all)")
    parser.add_argument("--seed", type=int, default=1000, help="synthetic: scene seed (default: 1000)")
    parser.add_argument("--frame-size", default="640x360", help="synthetic: rendered WIDTHxHEIGHT (default: 640x360)")
    parser.add_argument("--batch", type=int, default=4, help="frames per model call (default: 4)")
    parser.add_argument("--threshold", type=float, default=0.5, help="road probability threshold (default: 0.5)")
    parser.add_argument("--device", help="TensorFlow device, e.g. /CPU:0 or /GPU:0 (default: automatic)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    evaluator = EVALUATORS.get(args.model)
    if evaluator is None:
        raise StreamerError(f"unknown model {args.model!r} for evaluate: choose one of {', '.join(EVALUATORS)}")
    return evaluator(args)


def evaluate_unet(args: argparse.Namespace) -> int:
    from streamer.cli.train import parse_size
    from workers.unet.evaluate import EvaluateConfig, run as measure
    from workers.unet.sources import parse_data

    parse_data(args.data)
    width, height = parse_size(args.frame_size)
    config = EvaluateConfig(data=args.data, weights=args.weights, samples=args.samples, seed=args.seed,
                            frame_size=(height, width), batch_size=args.batch, threshold=args.threshold,
                            device=args.device)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    result = measure(config)
    if args.json:
        from workers.unet.modelfile import demo_weights

        weights = args.weights or str(demo_weights())
        print(json.dumps({"model": args.model, "weights": weights, "data": args.data, **result.to_dict()}, indent=2))
        return 0
    for name, value in zip(result.names, result.ious):
        print(f"{name}  {value:.4f}")
    print(f"mean IoU over {len(result.ious)} images: {result.mean:.4f}")
    return 0


EVALUATORS = {"unet": evaluate_unet}
