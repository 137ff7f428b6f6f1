"""`streamer export unet|maskrcnn --format savedmodel|onnx|openvino|tflite -o OUT`: a model in another format."""

from __future__ import annotations

import argparse

from streamer.cli.common import add_model_settings_arguments, model_settings
from streamer.models import ModelConfig

FORMATS = ("savedmodel", "onnx", "openvino", "tflite")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "export",
        help="write a model as a TensorFlow SavedModel, ONNX, OpenVINO or TFLite file",
        description="Write a model as a SavedModel folder, an ONNX, OpenVINO (.xml and .bin) or TFLite file "
        "(unet: all four; maskrcnn: SavedModel or ONNX). ONNX and OpenVINO files run in process, worker and batch "
        "without TensorFlow (--weights FILE).",
    )
    parser.add_argument("model", choices=("unet", "maskrcnn"), help="which model")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="savedmodel (a folder), onnx, openvino or tflite (default: from -o: .onnx, .xml, .tflite, or a folder "
        "name without one)",
    )
    parser.add_argument("-o", "--output", required=True, help="the folder (savedmodel) or file to write")
    parser.add_argument("-y", "--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--weights", help="the model's weights (default: its bundled demo weights)")
    int8 = parser.add_argument_group(
        "INT8 (--format onnx; unet also openvino)",
        "The model is quantized with ONNX Runtime's post-training static quantization, calibrated on frames of "
        "--calibrate's video. Both models then run on a held-out sample clip with ground truth (unet: a road "
        "clip, scored by its road IoU; maskrcnn: a shapes clip, scored by its mAP), rendered at the video's size; "
        "the report (agreement with float32, each score and its change, predict times and speed-up) is printed "
        "and written to OUT.int8.json. Outside the bounds nothing is written (exit 2) unless --force.",
    )
    int8.add_argument("--int8", action="store_true", help="quantize the exported model to INT8")
    int8.add_argument("--calibrate", metavar="VIDEO", help="the video whose frames calibrate the quantizer")
    int8.add_argument(
        "--max-drop",
        type=float,
        metavar="DELTA",
        help="the most the held-out score may drop from float32's: unet road IoU, maskrcnn mAP (default: 0.01)",
    )
    int8.add_argument(
        "--min-agreement",
        type=float,
        metavar="FRACTION",
        help="the least agreement with float32 on the held-out clip: unet, the fraction of mask pixels equal "
        "(default: 0.99); maskrcnn, detections matched one to one over the larger count (default: 0, no bound)",
    )
    int8.add_argument("--force", action="store_true", help="write the INT8 model even outside the bounds")
    add_model_settings_arguments(parser)
    parser.set_defaults(run=run)


def format_of(output: str) -> str:
    """The format an output's name asks for: .onnx, .tflite, or a name without extension (a SavedModel folder)."""
    from pathlib import PurePath

    from streamer.errors import StreamerError

    suffix = PurePath(output).suffix.lower()
    by_suffix = {".onnx": "onnx", ".xml": "openvino", ".tflite": "tflite", "": "savedmodel"}
    if suffix not in by_suffix:
        raise StreamerError(
            f"-o {output}: cannot tell the format from {suffix}; name it .onnx, .xml, .tflite or a folder "
            "(SavedModel), or give --format"
        )
    return by_suffix[suffix]


def run(args: argparse.Namespace) -> int:
    from streamer.errors import StreamerError

    if args.int8 != bool(args.calibrate):
        raise StreamerError("--int8 and --calibrate VIDEO go together: --int8 quantizes on the video's frames")
    int8 = int8_options(args)
    if args.exclude:
        raise StreamerError(
            "--exclude: export writes the whole model its weights hold; exclude layers when training or serving"
        )
    if args.format is None:
        args.format = format_of(args.output)
    from streamer.models import weights_path

    args.weights = weights_path(args.model, args.weights)  # a URL or release name: fetched once into the cache
    if args.model == "unet":
        from workers.unet.export import export

        options = model_settings(args)
        if options["config_file"] or options["settings"] or options["class_names"]:
            raise StreamerError("--config/--set/--class-names: unet export takes none (the file fixes them)")
        out = export(args.weights, args.format, args.output, args.overwrite, int8)
    else:
        from workers.maskrcnn.export import export

        options = ModelConfig(name="maskrcnn", weights=args.weights, **model_settings(args))
        out = export(args.weights, args.format, args.output, args.overwrite, options, int8)
    print(f"exported {args.model} ({args.format}) → {out}")
    return 0


def int8_options(args: argparse.Namespace):
    """--int8's options, or None without --int8."""
    from streamer.errors import StreamerError

    bounds = {"min_agreement": args.min_agreement, "max_drop": args.max_drop}
    if not args.int8:
        if args.force or any(value is not None for value in bounds.values()):
            raise StreamerError("--max-drop, --min-agreement and --force are --int8's bounds: add --int8 --calibrate")
        return None
    from workers.runtimes.int8 import Int8

    given = {name: value for name, value in bounds.items() if value is not None}  # the others: the model's default
    return Int8(args.calibrate, force=args.force, **given)
