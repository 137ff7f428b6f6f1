"""`streamer export unet`: a segmentation model (the demo weights or a file) as a SavedModel, ONNX, OpenVINO or
TFLite file.

Every format takes what the Keras model takes, float32 NHWC images in [0, 1] at its input size, and gives its
per-pixel scores; `streamer process --model semantic --weights OUT` runs any of them.
"""

from __future__ import annotations

from pathlib import Path

from streamer.errors import StreamerError
from workers.runtimes.conventions import as_metadata
from workers.runtimes.export import (
    FORMATS,
    check_target,
    function_to_onnx,
    onnx_to_openvino,
    publish_file,
    publish_folder,
    with_metadata,
)
from workers.runtimes.int8 import Int8, quantized
from workers.unet.int8 import UNetInt8
from workers.unet.weights import DEMO_WEIGHTS, HINT, load_keras_model


def export(weights: str | None, format: str, out: str, overwrite: bool = False, int8: Int8 | None = None) -> Path:
    """Write the Keras model in `weights` (None: the demo weights) to `out` in `format`; with `int8`, quantized
    (ONNX or OpenVINO only; `weights` may then be an ONNX export) and written only within its bounds
    (workers/runtimes/int8.py)."""
    if format not in FORMATS:
        raise StreamerError(f"--format {format}: choose one of {', '.join(FORMATS)}")
    if int8 is not None and format not in ("onnx", "openvino"):
        raise StreamerError(f"--int8: for --format onnx or openvino (not {format})")
    target = check_target(out, overwrite)
    path = Path(weights) if weights else DEMO_WEIGHTS
    if int8 is not None and path.suffix.lower() == ".onnx":  # an ONNX export, quantized without TensorFlow
        if not path.is_file():
            raise StreamerError(f"--weights {path}: not found; give an ONNX file from `streamer export unet`")
        return _write_onnx(quantized(path.read_bytes(), int8, target, UNetInt8()), format, target)
    import tensorflow as tf

    from workers.runtimes.semantic import open_semantic

    semantic = open_semantic(path, "tf", keras_loader=load_keras_model, hint=HINT)
    model = semantic.keras_model
    if model is None:
        raise StreamerError(f"--weights {path}: export takes a Keras model (.keras or .h5); it is already exported")
    spec = [tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), tf.float32, name="image")]
    function = tf.function(lambda x: model(x, training=False), input_signature=spec)
    if format == "savedmodel":
        return publish_folder(target, lambda folder: model.export(str(folder), verbose=False))
    if format in ("onnx", "openvino"):
        # the file says how it reads pixels and what it gives, so that serving it needs no look at its graph
        data = with_metadata(function_to_onnx(function, spec, f"model {path}"), as_metadata(semantic.conventions))
        if int8 is not None:
            data = quantized(data, int8, target, UNetInt8())
        return _write_onnx(data, format, target)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return publish_file(target, converter.convert())


def _write_onnx(data: bytes, format: str, target: Path) -> Path:
    """The ONNX model `data` written as `format` (onnx, or openvino: OUT.xml and OUT.bin)."""
    return publish_file(target, data) if format == "onnx" else onnx_to_openvino(data, target)
