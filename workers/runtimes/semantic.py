"""A segmentation model from a file in any common format, on a chosen runtime: `open_semantic(path, runtime)`.

Formats: a Keras 3 `.keras` file, a Keras 2 `.h5` full model (`model.save("unet.h5")`), a TensorFlow
SavedModel folder, an ONNX `.onnx` file, an OpenVINO `.xml` file (its weights in the `.bin` beside it) and a
TFLite `.tflite` file; ONNX and OpenVINO files load without TensorFlow. What the model takes and gives is read
from the file: input size, channels (3: RGB, 1: grey) and output classes (1: a probability per pixel, more:
one per class, or a class index per pixel). Inputs are frames as the model's `Conventions` say (range, mean and
std, channel order; by default RGB scaled to [0, 1]: workers/runtimes/conventions.py), NHWC or (ONNX) NCHW.

Runtimes: "tf" (Keras or TensorFlow; a TFLite file on tf.lite.Interpreter), "onnx" (ONNX Runtime; Keras and
SavedModel files are converted with tf2onnx first; `pip install "streamer[onnx]"`) and "openvino" (OpenVINO at
float32 precision, or bfloat16 through `recompile("bf16")`, from ONNX; `pip install "streamer[openvino]"`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from streamer.errors import StreamerError
from workers.runtimes.conventions import (
    Conventions,
    keras_conventions,
    metadata_settings,
    onnx_conventions,
    tflite_conventions,
    with_settings,
)

RUNTIMES = ("tf", "onnx", "openvino")
FORMATS = ".keras, .h5 (Keras 2 full model), a SavedModel folder, .onnx, .xml (OpenVINO) or .tflite"
EXPORTED = ("onnx", "openvino")  # formats that run without TensorFlow
EXTRAS = {"onnx": "onnx", "openvino": "openvino", "tf2onnx": "onnx"}


@dataclass
class SemanticModel:
    """A loaded segmentation model. Exactly one of `keras_model`, `tf_call` (TensorFlow tensors in and out)
    and `run` (numpy in and out) is set; all take a float32 NHWC batch in [0, 1] and give NHWC scores."""

    path: Path
    format: str  # keras | h5 | savedmodel | onnx | tflite
    runtime: str
    input_size: tuple[int, int] | None  # (height, width); None: any size (frames are rounded up to 32)
    channels: int
    classes: int
    keras_model: object | None = None
    tf_call: Callable | None = None
    run: Callable[[np.ndarray], np.ndarray] | None = None
    recompile: Callable[[str], Callable[[np.ndarray], np.ndarray]] | None = None  # OpenVINO: precision → a new run
    conventions: Conventions = field(default_factory=Conventions)  # its input range and output, as the file says


def file_format(path: Path) -> str:
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise StreamerError(f"weights {path}: a folder without saved_model.pb; give {FORMATS}")
    if not path.is_file():
        raise StreamerError(f"weights file {path}: not found; give {FORMATS}")
    suffix = path.suffix.lower()
    formats = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".onnx": "onnx", ".xml": "openvino", ".tflite": "tflite"}
    if suffix not in formats:
        raise StreamerError(f"weights file {path}: {suffix or 'no extension'} is not a model format; give {FORMATS}")
    return formats[suffix]


def check_shapes(path, input_shape, output_shape, channels_first: bool = False):
    """(input size or None, channels, classes) of a model with these shapes; a StreamerError naming the
    mismatch for anything that is not an image → per-pixel map model."""
    shape_in = [None if not isinstance(v, int) or v < 0 else int(v) for v in input_shape]
    shape_out = [None if not isinstance(v, int) or v < 0 else int(v) for v in output_shape]
    if len(shape_in) != 4:
        raise StreamerError(
            f"weights {path}: not a segmentation model: its input has shape {list(input_shape)}, "
            "expected (batch, height, width, channels)"
        )
    if channels_first:
        shape_in = [shape_in[0], shape_in[2], shape_in[3], shape_in[1]]
        if len(shape_out) == 4:
            shape_out = [shape_out[0], shape_out[2], shape_out[3], shape_out[1]]
    if len(shape_out) == 3:  # a class index per pixel, (batch, height, width)
        shape_out = [*shape_out, 1]
    channels = shape_in[3]
    if channels not in (1, 3):
        raise StreamerError(
            f"weights {path}: its input has {channels} channels (shape {list(input_shape)}); an image model takes 3 "
            "(RGB) or 1 (grey)"
        )
    size = tuple(shape_in[1:3]) if None not in shape_in[1:3] else None
    if (
        len(shape_out) != 4
        or not shape_out[3]
        or (size and None not in shape_out[1:3] and tuple(shape_out[1:3]) != size)
    ):
        raise StreamerError(
            f"weights {path}: not a segmentation model: input {list(input_shape)} but output {list(output_shape)}; "
            "expected a per-pixel map (batch, height, width, classes) of the input's size"
        )
    return size, channels, int(shape_out[3])


def _missing(package: str, runtime: str) -> StreamerError:
    extra = EXTRAS.get(package, package)
    return StreamerError(f"--runtime {runtime}: needs {package}; install it with pip install 'streamer[{extra}]'")


def open_semantic(
    path, runtime: str = "tf", keras_loader: Callable | None = None, hint: str = "", threads: int | None = None
) -> SemanticModel:
    """The model in `path` (any of FORMATS) ready on `runtime`; `keras_loader(path)` loads `.keras` files
    (default: keras.saving.load_model); `hint` ends every error message about the file. `threads`: the CPU
    threads of one call on ONNX Runtime, OpenVINO and TFLite (TensorFlow's are set for the whole process)."""
    try:
        return _open(Path(path), runtime, keras_loader, threads)
    except StreamerError as error:
        if hint and hint not in str(error):
            raise StreamerError(f"{error}; {hint}") from None
        raise


def _open(path: Path, runtime: str, keras_loader: Callable | None, threads: int | None) -> SemanticModel:
    if runtime not in RUNTIMES:
        raise StreamerError(f"--runtime {runtime}: choose one of {', '.join(RUNTIMES)}")
    kind = file_format(path)
    if kind in ("keras", "h5"):
        model = (keras_loader if kind == "keras" and keras_loader else _load_keras)(path)
        size, channels, classes = check_shapes(path, tuple(model.inputs[0].shape), tuple(model.outputs[0].shape))
        conventions = keras_conventions(model)
        if runtime == "tf":
            return SemanticModel(path, kind, runtime, size, channels, classes, model, conventions=conventions)
        return _on_onnx_runtime(path, kind, runtime, _keras_to_onnx(model, runtime), threads, conventions)
    if kind == "savedmodel":
        function, spec, output_spec = _saved_model(path)
        size, channels, classes = check_shapes(path, tuple(spec.shape), tuple(output_spec.shape))
        conventions = Conventions(output="indices" if output_spec.dtype.is_integer else "probabilities")
        if runtime == "tf":
            return SemanticModel(path, kind, runtime, size, channels, classes, None, function, conventions=conventions)
        onnx_bytes = _function_to_onnx(function, spec, runtime)
        return _on_onnx_runtime(path, kind, runtime, onnx_bytes, threads, conventions)
    if kind == "tflite":
        if runtime == "tf":
            return _tflite(path, threads)
        try:
            import tf2onnx
        except ImportError:
            raise _missing("tf2onnx", runtime) from None
        try:
            proto, _ = tf2onnx.convert.from_tflite(str(path))
        except Exception as error:  # the converter's own failures
            raise StreamerError(f"weights {path}: tf2onnx cannot convert it ({_reason(error)})") from None
        conventions = _tflite(path, threads).conventions  # what the file's metadata says
        return _on_onnx_runtime(path, kind, runtime, proto.SerializeToString(), threads, conventions)
    if kind == "openvino":  # our exported U-Net's conventions (frames scaled to [0, 1], probabilities out)
        if runtime == "onnx":
            raise StreamerError(f"weights {path}: an OpenVINO file runs on OpenVINO; drop --runtime onnx")
        return _on_onnx_runtime(path, kind, "openvino", None, threads, Conventions())
    # ONNX
    if runtime == "tf":
        runtime = "onnx"  # an ONNX file runs on ONNX Runtime unless OpenVINO is asked for
    return _on_onnx_runtime(path, kind, runtime, path.read_bytes(), threads)


def _reason(error: Exception) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__


def _load_keras(path: Path):
    import keras

    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise StreamerError(f"weights file {path}: not a Keras archive; give {FORMATS}")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # any failure here means the file is not a usable Keras model
        expected = "" if path.suffix == ".keras" else f"; expected a .keras file or a model in {FORMATS}"
        raise StreamerError(f"weights file {path}: Keras could not load it ({_reason(error)}){expected}") from None


def _saved_model(path: Path):
    """The serving function of a SavedModel (tensor → tensor), its input spec and its output spec."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:
        raise StreamerError(f"weights {path}: TensorFlow could not load the SavedModel ({_reason(error)})") from None
    signatures = dict(getattr(loaded, "signatures", {}))
    signature = signatures.get("serving_default") or next(iter(signatures.values()), None)
    if signature is None:
        raise StreamerError(f"weights {path}: the SavedModel has no serving signature; export it with one")
    _, inputs = signature.structured_input_signature
    outputs = signature.structured_outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise StreamerError(
            f"weights {path}: not a segmentation model: its signature takes {len(inputs)} inputs and gives "
            f"{len(outputs)} outputs, expected one image in and one map out"
        )
    (input_name, spec), (output_name, output_spec) = next(iter(inputs.items())), next(iter(outputs.items()))

    def function(x):
        return signature(**{input_name: tf.cast(x, spec.dtype)})[output_name]

    function.keep = loaded  # the signature's variables live as long as the loaded object
    return function, spec, output_spec


def _tflite(path: Path, threads: int | None) -> SemanticModel:
    """A TFLite file on tf.lite.Interpreter; an interpreter is not thread-safe, so each thread that calls the model
    gets its own (made on its first call; the model's memory is mapped, not copied)."""
    import warnings

    import tensorflow as tf

    def interpreter():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its deprecation notice: the interpreter is still TensorFlow's
            try:
                return tf.lite.Interpreter(model_path=str(path), num_threads=threads)
            except Exception as error:
                raise StreamerError(f"weights {path}: not a TFLite model ({_reason(error)})") from None

    first = interpreter()
    source, target = first.get_input_details(), first.get_output_details()
    if len(source) != 1 or len(target) != 1:
        raise StreamerError(
            f"weights {path}: not a segmentation model: {len(source)} inputs and {len(target)} outputs, "
            "expected one image in and one map out"
        )
    input_shape = [int(v) for v in source[0].get("shape_signature", source[0]["shape"])]
    output_shape = [int(v) for v in target[0].get("shape_signature", target[0]["shape"])]
    size, channels, classes = check_shapes(path, input_shape, output_shape)
    kind_in, (scale_in, zero_in) = source[0]["dtype"], source[0].get("quantization", (0.0, 0))
    kind_out, (scale_out, zero_out) = target[0]["dtype"], target[0].get("quantization", (0.0, 0))
    local = threading.local()
    local.interpreter, local.shape = first, None

    def run(x: np.ndarray) -> np.ndarray:
        if getattr(local, "interpreter", None) is None:
            local.interpreter, local.shape = interpreter(), None
        own = local.interpreter
        if local.shape != x.shape:
            own.resize_tensor_input(source[0]["index"], list(x.shape))
            own.allocate_tensors()
            local.shape = x.shape
        if np.issubdtype(kind_in, np.integer):  # a quantised input: the normalised values in its integer steps
            limits = np.iinfo(kind_in)
            x = np.clip(np.rint(x / scale_in + zero_in) if scale_in else np.rint(x), limits.min, limits.max)
        own.set_tensor(source[0]["index"], x.astype(kind_in))
        own.invoke()
        out = own.get_tensor(target[0]["index"]).astype(np.float32)
        if np.issubdtype(kind_out, np.integer) and scale_out:
            out = (out - zero_out) * scale_out
        return out[..., None] if out.ndim == 3 else out

    conventions = tflite_conventions(path, first)
    if np.issubdtype(kind_in, np.integer) and not scale_in and conventions.scale != 1.0:
        conventions = replace(conventions, scale=1.0)  # integer pixels, as they are
    return SemanticModel(path, "tflite", "tf", size, channels, classes, run=run, conventions=conventions)


def _function_to_onnx(function, spec, runtime: str) -> bytes:
    import tensorflow as tf

    try:
        import tf2onnx
    except ImportError:
        raise _missing("tf2onnx", runtime) from None
    signature = [tf.TensorSpec([None] + list(spec.shape[1:]), tf.float32, name="image")]
    wrapped = tf.function(lambda x: function(x), input_signature=signature)
    try:
        proto, _ = tf2onnx.convert.from_function(wrapped, input_signature=signature, opset=17)
    except Exception as error:  # the converter's own failures, e.g. an op ONNX lacks
        raise StreamerError(f"tf2onnx cannot convert the model for --runtime {runtime} ({_reason(error)})") from None
    return proto.SerializeToString()


def _keras_to_onnx(model, runtime: str) -> bytes:
    return _function_to_onnx(lambda x: model(x, training=False), model.inputs[0], runtime)


def openvino_core():
    """OpenVINO's Core, imported without its usage report: OpenVINO reports its import to a web service from a
    forked process unless its telemetry package is missing; a worker makes no such call (and that process
    could keep this one from exiting)."""
    sys.modules.setdefault("openvino_telemetry", None)
    try:
        import openvino as ov
    except ImportError:
        raise _missing("openvino", "openvino") from None
    return ov.Core()


def _read_openvino(core, path: Path, onnx_bytes: bytes | None):
    """The network in `onnx_bytes`, or (None) in the OpenVINO file `path`."""
    if onnx_bytes is None:
        return core.read_model(str(path))
    with tempfile.TemporaryDirectory() as folder:
        file = os.path.join(folder, "model.onnx")
        with open(file, "wb") as f:
            f.write(onnx_bytes)
        return core.read_model(file)


def _on_onnx_runtime(
    path: Path,
    kind: str,
    runtime: str,
    onnx_bytes: bytes | None,
    threads: int | None,
    conventions: Conventions | None = None,
) -> SemanticModel:
    """An ONNX model (bytes; None: the OpenVINO file `path`) on ONNX Runtime or OpenVINO; NCHW models are
    transposed around the call. Its conventions are `conventions` (those of the file it was converted from),
    else read from the ONNX model."""
    if conventions is None and runtime == "openvino":
        conventions = _file_conventions(path, onnx_bytes)
    if runtime == "openvino":
        core = openvino_core()
        try:
            network = _read_openvino(core, path, onnx_bytes)
            call = _openvino_call(core, network, "f32", threads)
        except Exception as error:
            raise StreamerError(f"weights {path}: OpenVINO cannot read it ({_reason(error)})") from None
        input_shape = [d.get_length() if d.is_static else None for d in network.inputs[0].get_partial_shape()]
        output_shape = [d.get_length() if d.is_static else None for d in network.outputs[0].get_partial_shape()]

        def recompile(precision: str):
            return _wrap(_openvino_call(core, network, precision, threads))
    else:
        recompile = None
        try:
            import onnxruntime
        except ImportError:
            raise _missing("onnxruntime", runtime) from None
        options = onnxruntime.SessionOptions()
        # no busy-waiting threads: TensorFlow's resizing runs in the same process between calls, and several
        # workers may share the machine (spinning made calls 2x slower on a busy 2-core machine)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        # tensors allocated op by op rather than one planned block per call: with two calls at once (parallel
        # batches) the planned blocks held more, for no speed
        options.enable_mem_pattern = False
        try:
            session = onnxruntime.InferenceSession(onnx_bytes, options, providers=onnxruntime.get_available_providers())
        except Exception as error:
            raise StreamerError(f"weights {path}: ONNX Runtime cannot load it ({_reason(error)})") from None
        if len(session.get_inputs()) != 1:
            raise StreamerError(
                f"weights {path}: not a segmentation model: {len(session.get_inputs())} inputs, expected one image"
            )
        input_shape, output_shape = session.get_inputs()[0].shape, session.get_outputs()[0].shape
        name = session.get_inputs()[0].name
        if conventions is None:
            conventions = _file_conventions(path, onnx_bytes, session.get_modelmeta().custom_metadata_map)

        def call(x):
            return session.run(None, {name: x})[0]

    dims = [v if isinstance(v, int) else None for v in input_shape]
    channels_first = len(dims) == 4 and dims[1] in (1, 3) and dims[3] not in (1, 3)
    size, channels, classes = check_shapes(path, dims, output_shape, channels_first)
    one_by_one = dims[0] == 1  # a model made for one frame at a time takes a batch's frames one by one

    def _wrap(call):
        def run(x: np.ndarray) -> np.ndarray:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2) if channels_first else x, dtype=np.float32)
            if one_by_one and len(x) > 1:
                out = np.concatenate([np.asarray(call(x[i : i + 1]), dtype=np.float32) for i in range(len(x))])
            else:
                out = np.asarray(call(x), dtype=np.float32)
            if out.ndim == 3:  # a class index per pixel
                return out[..., None]
            return out.transpose(0, 2, 3, 1) if channels_first else out

        return run

    return SemanticModel(
        path, kind, runtime, size, channels, classes, run=_wrap(call), recompile=recompile, conventions=conventions
    )


def _file_conventions(path: Path, onnx_bytes: bytes, properties: dict | None = None) -> Conventions:
    """An ONNX file's conventions: its metadata (`properties` where the runtime has read them), over what its graph
    shows; the graph is read (with the onnx package) only when the metadata does not say what the output is."""
    if properties is None or not any(key.upper() == "OUTPUT" for key in properties):
        conventions, properties = onnx_conventions(onnx_bytes)
    else:
        conventions = Conventions()
    settings, names = metadata_settings(properties)
    conventions = with_settings(conventions, settings, f"weights {path} metadata")
    return replace(conventions, class_names=names) if names else conventions


def _openvino_call(core, network, precision: str, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """`network` compiled for the CPU at `precision` (f32 | bf16), on `threads` CPU threads (None: every core):
    a call numpy → numpy that any number of threads may make at once (each thread has its own infer request)."""
    settings = {"INFERENCE_PRECISION_HINT": precision}
    if threads:
        settings["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(network, "CPU", settings)
    output = compiled.outputs[0]
    requests = threading.local()

    def call(x: np.ndarray) -> np.ndarray:
        request = getattr(requests, "request", None)
        if request is None:
            request = requests.request = compiled.create_infer_request()
        return request.infer({0: x})[output].copy()  # the request's own buffer is reused by its next call

    return call
