"""`streamer export unet|maskrcnn --format savedmodel|onnx|tflite -o OUT`: a model in another format."""

from __future__ import annotations

import argparse

from streamer.cli.common import add_model_settings_arguments, model_settings
from streamer.models import ModelConfig

FORMATS = ("savedmodel", "onnx", "tflite")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "export",
        help="write a model as a TensorFlow SavedModel, ONNX or TFLite file",
        description="Write a model as a SavedModel folder, an ONNX or a TFLite file (unet: all three; maskrcnn: "
        "SavedModel or ONNX).",
    )
    parser.add_argument("model", choices=("unet", "maskrcnn"), help="which model")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="savedmodel (a folder), onnx or tflite (default: from -o: .onnx, .tflite, or a folder name without one)",
    )
    parser.add_argument("-o", "--output", required=True, help="the folder (savedmodel) or file to write")
    parser.add_argument("-y", "--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--weights", help="the model's weights (default: its bundled demo weights)")
    add_model_settings_arguments(parser)
    parser.set_defaults(run=run)


def format_of(output: str) -> str:
    """The format an output's name asks for: .onnx, .tflite, or a name without extension (a SavedModel folder)."""
    from pathlib import PurePath

    from streamer.errors import StreamerError

    suffix = PurePath(output).suffix.lower()
    by_suffix = {".onnx": "onnx", ".tflite": "tflite", "": "savedmodel"}
    if suffix not in by_suffix:
        raise StreamerError(
            f"-o {output}: cannot tell the format from {suffix}; name it .onnx, .tflite or a folder (SavedModel), "
            "or give --format"
        )
    return by_suffix[suffix]


def run(args: argparse.Namespace) -> int:
    if args.format is None:
        args.format = format_of(args.output)
    from streamer.models import weights_path

    args.weights = weights_path(args.model, args.weights)  # a URL or release name: fetched once into the cache
    if args.model == "unet":
        from workers.unet.export import export

        options = model_settings(args)
        if options["config_file"] or options["settings"] or options["class_names"] or options["exclude"]:
            from streamer.errors import StreamerError

            raise StreamerError("--config/--set/--class-names/--exclude: unet export takes none (the file fixes them)")
        out = export(args.weights, args.format, args.output, args.overwrite)
    else:
        from workers.maskrcnn.export import export

        options = ModelConfig(name="maskrcnn", weights=args.weights, **model_settings(args))
        out = export(args.weights, args.format, args.output, args.overwrite, options)
    print(f"exported {args.model} ({args.format}) → {out}")
    return 0
