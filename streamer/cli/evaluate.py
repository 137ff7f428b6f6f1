"""`streamer evaluate unet --data ... [--weights FILE]`: per-image IoU and the mean, as text or JSON.

Each model is a subcommand with its own options: `streamer evaluate unet …`, `streamer evaluate maskrcnn …`.
"""

from __future__ import annotations

import argparse
import json

from workers.maskrcnn.commands import add_evaluate_arguments, run_evaluate


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "evaluate", help="measure a model: unet (IoU on roads) or maskrcnn (mAP on masks)",
    )
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    unet = models.add_parser("unet", help="per-image and mean IoU on synthetic roads or KITTI",
                             description="Segment every image at its original size and compare with its road mask.")
    unet.add_argument("--data", required=True,
                      help="synthetic-roads (held-out generated scenes) or kitti:DIR (image_2/ + semantic/)")
    unet.add_argument("--weights", help="a .keras file from `streamer train unet` (default: bundled demo weights)")
    unet.add_argument("--samples", type=int, help="synthetic: scenes (default: 200); kitti: first N pairs (default: all)")
    unet.add_argument("--seed", type=int, default=1000, help="synthetic: scene seed (default: 1000)")
    unet.add_argument("--frame-size", default="640x360", help="synthetic: rendered WIDTHxHEIGHT (default: 640x360)")
    unet.add_argument("--batch", type=int, default=4, help="frames per model call (default: 4)")
    unet.add_argument("--threshold", type=float, default=0.5, help="road probability threshold (default: 0.5)")
    unet.add_argument("--device", help="TensorFlow device, e.g. /CPU:0 or /GPU:0 (default: automatic)")
    unet.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    unet.set_defaults(run=evaluate_unet)
    maskrcnn = models.add_parser("maskrcnn", help="VOC mAP@0.5 on masks and COCO mask AP",
                                 description="Detect on every image and score the masks against the annotations.")
    add_evaluate_arguments(maskrcnn)
    maskrcnn.set_defaults(run=run_evaluate)


def evaluate_unet(args: argparse.Namespace) -> int:
    """Evaluate a U-Net and print per-image IoU and the mean (or JSON)."""
    from streamer.cli.common import parse_size
    from workers.unet.evaluate import EvaluateConfig, run as measure
    from workers.unet.sources import parse_data

    parse_data(args.data)
    width, height = parse_size(args.frame_size)
    config = EvaluateConfig(data=args.data, weights=args.weights, samples=args.samples, seed=args.seed,
                            frame_size=(height, width), batch_size=args.batch, threshold=args.threshold,
                            device=args.device)
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

