"""`streamer export maskrcnn`: the inference graph of a Mask R-CNN as a SavedModel or an ONNX model.

The exported function is `serving_default(images, windows)`: molded images float32 [B, S, S, 3] (the frame
resized into an S×S square, S = IMAGE_MAX_DIM, minus MEAN_PIXEL; see MaskRCNN.mold_inputs) and each image's
window [B, 4] (y1, x1, y2, x2 of the frame inside the square, normalised as matterport's norm_boxes) →
`detections` [B, DETECTION_MAX_INSTANCES, 6] (y1, x1, y2, x2 normalised, class id, score; zero rows pad)
and `masks` [B, DETECTION_MAX_INSTANCES, 28, 28] (the detected class's mask probabilities). The anchors of
the S×S input are built in. The folder also holds `maskrcnn_config.json` (the Config, with CLASS_NAMES); an
ONNX file holds it in its metadata (`maskrcnn_config`), and `--model maskrcnn --weights FILE.onnx` serves it
on ONNX Runtime without TensorFlow (exported.py). `--int8` quantizes the ONNX model (int8.py), from the
weights or from an ONNX export given as --weights (then without TensorFlow).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.errors import StreamerError
from streamer.models import ModelConfig
from workers.maskrcnn.exported import CONFIG_KEY, is_exported
from workers.maskrcnn.int8 import MaskRCNNInt8
from workers.runtimes.export import (
    FORMATS,
    check_target,
    function_to_onnx,
    publish_file,
    publish_folder,
    with_metadata,
)
from workers.runtimes.int8 import Int8, quantized

CONFIG_FILE = "maskrcnn_config.json"


def check_onnx_inputs(data: bytes, wanted: list[str]) -> None:
    """A conversion that left other graph inputs (a tensor it could not compute) is not the model: refuse it."""
    import onnx

    graph = onnx.load_from_string(data).graph
    constants = {item.name for item in graph.initializer}
    inputs = [item.name for item in graph.input if item.name not in constants]
    if sorted(inputs) != sorted(wanted):
        extra = ", ".join(name for name in inputs if name not in wanted)
        raise StreamerError(
            f"--format onnx: tf2onnx did not convert Mask R-CNN's graph whole (it left the input(s) {extra} "
            "unconnected); export --format savedmodel instead"
        )


def export(
    weights: str | None,
    format: str,
    out: str,
    overwrite: bool = False,
    options: ModelConfig | None = None,
    int8: Int8 | None = None,
):
    """Write the model of `weights` (None: the demo weights; with `options`' settings and class names); with
    `int8`, an ONNX model quantized (of the weights, or of an ONNX export given as weights) and written only
    within its bounds (workers/runtimes/int8.py)."""
    if format not in FORMATS:
        raise StreamerError(f"--format {format}: choose one of {', '.join(FORMATS)}")
    if int8 is not None and format != "onnx":
        raise StreamerError(f"--int8: maskrcnn is quantized for --format onnx (not {format})")
    target = check_target(out, overwrite)
    from .weights import DEMO_WEIGHTS

    path = Path(weights) if weights else DEMO_WEIGHTS
    if not path.is_file():
        raise StreamerError(f"maskrcnn weights {path} not found: pass an existing .weights.h5 or .h5 file")
    if is_exported(path):
        if int8 is None:
            raise StreamerError(f"--weights {path}: already exported; export a .weights.h5 file, or add --int8")
        from .predictor import saved_settings

        saved_settings(path, options)  # refuses --config and --set: the exported graph fixes them
        return publish_file(target, quantized(path.read_bytes(), int8, target, MaskRCNNInt8()))
    import tensorflow as tf

    from .model import MaskRCNN
    from .predictor import saved_settings

    config = saved_settings(path, options).replace(GPU_COUNT=1, IMAGES_PER_GPU=1)
    if config.IMAGE_RESIZE_MODE not in ("square", "crop"):
        raise StreamerError(
            f"IMAGE_RESIZE_MODE {config.IMAGE_RESIZE_MODE}: export needs one input size; use --set "
            "IMAGE_RESIZE_MODE=square"
        )
    model = MaskRCNN(config)
    model.load_weights(path)
    side = int(config.IMAGE_MAX_DIM)
    anchors = np.asarray(model.get_anchors((side, side)), np.float32)
    signature = [
        tf.TensorSpec([None, side, side, int(config.IMAGE_CHANNEL_COUNT)], tf.float32, name="images"),
        tf.TensorSpec([None, 4], tf.float32, name="windows"),
    ]

    def serve(images, windows):
        # a constant of the graph (a captured tensor would become an input of the ONNX model)
        detections, masks = model.inference_graph(images, windows, tf.constant(anchors))
        return {"detections": detections, "masks": masks}

    function = tf.function(serve, input_signature=signature)
    if format == "savedmodel":
        module = tf.Module()
        # the variables, not the Keras model itself (whose own call functions saving would trace again)
        module.weights = [getattr(v, "value", v) for v in model.keras_model.weights]
        module.serve = function

        def write(folder: Path) -> None:
            tf.saved_model.save(module, str(folder), signatures={"serving_default": function})
            (folder / CONFIG_FILE).write_text(config.to_json())

        return publish_folder(target, write)
    if format == "onnx":
        data = function_to_onnx(function, signature, f"Mask R-CNN {path}")
        check_onnx_inputs(data, ["images", "windows"])
        data = with_metadata(data, {CONFIG_KEY: config.to_json()})
        if int8 is not None:
            data = quantized(data, int8, target, MaskRCNNInt8())
        return publish_file(target, data)
    if format == "openvino":
        raise StreamerError(
            "--format openvino: OpenVINO cannot convert Mask R-CNN's detection ops (Loop, TopK, GatherElements); "
            "export --format onnx, which runs on ONNX Runtime without TensorFlow"
        )
    raise StreamerError("--format tflite: Mask R-CNN's detection ops have no TFLite form; export savedmodel or onnx")
