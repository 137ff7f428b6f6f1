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
    parser.add_argument(
        "--int8",
        action="store_true",
        help="unet, onnx/openvino: quantize to INT8 (ONNX Runtime's post-training quantization) on --calibrate's "
        "frames; the masks on held-out frames are compared with float32's and the report written to OUT.int8.json",
    )
    parser.add_argument("--calibrate", metavar="VIDEO", help="--int8: the video whose frames calibrate the model")
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=0.99,
        metavar="FRACTION",
        help="--int8: the least fraction of held-out mask pixels equal to float32's (default: 0.99)",
    )
    parser.add_argument("--force", action="store_true", help="--int8: write the model even below --min-agreement")
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
    if args.int8 and args.model != "unet":
        raise StreamerError("--int8: unet only for now; export maskrcnn in float32 (--format onnx)")
    if args.format is None:
        args.format = format_of(args.output)
    from streamer.models import weights_path

    args.weights = weights_path(args.model, args.weights)  # a URL or release name: fetched once into the cache
    if args.model == "unet":
        from workers.unet.export import export

        options = model_settings(args)
        if options["config_file"] or options["settings"] or options["class_names"] or options["exclude"]:
            raise StreamerError("--config/--set/--class-names/--exclude: unet export takes none (the file fixes them)")
        from workers.unet.int8 import Int8

        int8 = Int8(args.calibrate, args.min_agreement, args.force) if args.int8 else None
        out = export(args.weights, args.format, args.output, args.overwrite, int8)
    else:
        from workers.maskrcnn.export import export

        options = ModelConfig(name="maskrcnn", weights=args.weights, **model_settings(args))
        out = export(args.weights, args.format, args.output, args.overwrite, options)
    print(f"exported {args.model} ({args.format}) → {out}")
    return 0
