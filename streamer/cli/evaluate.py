"""`streamer evaluate MODEL ...`: each model package's cli.py defines the options and runs the evaluation."""

from __future__ import annotations

from workers.maskrcnn import cli as maskrcnn
from workers.unet import cli as unet

MODELS = {
    "unet": (
        unet,
        "per-image and mean IoU on synthetic roads or KITTI",
        "Segment every image at its original size and compare with its road mask.",
    ),
    "maskrcnn": (
        maskrcnn,
        "VOC mAP@0.5 on masks and COCO mask AP",
        "Detect on every image at its original size and score the masks against the annotations.",
    ),
}


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="measure a model: unet (IoU on roads) or maskrcnn (mAP on masks)",
    )
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, (package, help_text, description) in MODELS.items():
        model = models.add_parser(name, help=help_text, description=description)
        package.add_evaluate_arguments(model)
        model.set_defaults(run=package.run_evaluate)
