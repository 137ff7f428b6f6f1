"""`streamer inspect MODEL INPUT -o DIR`: pictures of what a model does on one image or video frame."""

from __future__ import annotations

import argparse

from streamer.cli.common import add_model_settings_arguments, model_settings
from streamer.cli.options import add
from streamer.progress import say

MODELS = {
    "maskrcnn": "anchors, RPN, proposals, box refinement, detections, mask head, activations, weight histograms",
    "unet": "input, road probability, mask, overlay, encoder/decoder activations",
}


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "inspect",
        help="pictures of a model's stages on one image or video frame (DIR/index.html)",
        description="Write PNG pictures of each stage of a model on one image or video frame, with DIR/index.html.",
    )
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, text in MODELS.items():
        model = models.add_parser(name, help=text, description=f"Pictures: {text}.")
        model.add_argument("input", metavar="INPUT", help="an image (PNG, JPEG, …) or a video file")
        model.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the pictures")
        model.add_argument("--weights", help="weights file (default: the bundled demo weights)")
        model.add_argument("--frame", type=int, default=0, help="video: frame index, from 0 (default: 0)")
        add(model, "device", help="cpu, a GPU number (0, 1, …), cuda:N or /GPU:N (default: automatic)")
        if name == "maskrcnn":  # what a matterport file does not say about itself, as `process` takes it
            add_model_settings_arguments(model)
        model.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.model == "maskrcnn":
        from workers.maskrcnn.inspect import inspect

        index = inspect(
            args.input, args.output, weights=args.weights, frame=args.frame, device=args.device, **model_settings(args)
        )
    else:
        from workers.unet.inspect import inspect

        index = inspect(args.input, args.output, weights=args.weights, frame=args.frame, device=args.device)
    say(f"pictures → {index}")
    return 0
