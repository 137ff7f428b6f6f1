"""What a segmentation model wants as input and gives as output: `Conventions`.

Input: each RGB pixel p (0..255) becomes x = (p · INPUT_SCALE − INPUT_MEAN) / INPUT_STD, per channel, in the
channel order CHANNEL_ORDER (rgb | bgr); the defaults give [0, 1] RGB. Output (OUTPUT): `probabilities`
(sigmoid or softmax applied), `logits` (not applied: a one-channel map goes through a sigmoid before
`--threshold`; more channels are compared as they are) or `indices` (a class index per pixel).

Where a file says it, it is read from it: a TFLite file's metadata (the input's NormalizationOptions, applied
to raw pixel values, and the output's label file packed in the model), an ONNX file's metadata_props
(INPUT_SCALE, INPUT_MEAN, INPUT_STD, CHANNEL_ORDER, OUTPUT, CLASS_NAMES or labels/names; also `mean`/`std`),
and indices from the model's output (an integer type, or an argmax as its last operation). The settings
`--set KEY=VALUE` override what the file says.
"""

from __future__ import annotations

import ast
import io
import json
import zipfile
from dataclasses import dataclass, replace

import numpy as np

from streamer.errors import StreamerError

KEYS = ("INPUT_SCALE", "INPUT_MEAN", "INPUT_STD", "CHANNEL_ORDER", "OUTPUT")
OUTPUTS = ("probabilities", "logits", "indices")
ORDERS = ("rgb", "bgr")
# operations that move or resize values without changing what they mean (looked through to the one that made them)
PASSING = {
    "transpose", "reshape", "resize", "resize_bilinear", "resize_nearest_neighbor", "identity", "squeeze",
    "unsqueeze", "upsample", "cast", "dequantize", "quantize", "expand_dims", "flatten",
}  # fmt: skip
INDICES = {"argmax", "arg_max"}


@dataclass(frozen=True)
class Conventions:
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    order: str = "rgb"
    output: str = "probabilities"
    class_names: tuple[str, ...] | None = None

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """uint8[..., C] RGB (C = 3, or 1 grey) → float32 model input."""
        x = pixels.astype(np.float32)
        if self.order == "bgr" and x.shape[-1] == 3:
            x = x[..., ::-1]
        return (x * np.float32(self.scale) - self._per_channel(self.mean, x)) / self._per_channel(self.std, x)

    def normalise_tf(self, pixels):
        """The same on a TensorFlow tensor (traced into the model's graph)."""
        import tensorflow as tf

        x = tf.cast(pixels, tf.float32)
        if self.order == "bgr" and pixels.shape[-1] == 3:
            x = tf.reverse(x, axis=[-1])
        return (x * self.scale - self._per_channel(self.mean, x)) / self._per_channel(self.std, x)

    @staticmethod
    def _per_channel(values: tuple[float, ...], x) -> np.ndarray:
        """One value per channel, or one for all (a grey model given an RGB mean takes their average)."""
        array = np.asarray(values, np.float32).reshape(-1)
        return array if array.size == x.shape[-1] else np.float32(array.mean())

    def check(self, channels: int, where: str) -> None:
        for name, values in (("INPUT_MEAN", self.mean), ("INPUT_STD", self.std)):
            if len(values) not in (1, channels, 3):
                raise StreamerError(f"{name} {list(values)} ({where}): give 1 value or {channels}, one per channel")
        if any(value == 0 for value in self.std):
            raise StreamerError(f"INPUT_STD {list(self.std)} ({where}): must not be 0")


def with_settings(conventions: Conventions, settings: dict, where: str = "--set") -> Conventions:
    """`conventions` with the KEYS of `settings` (--config/--set, or a file's metadata) applied; a key that is not
    one of KEYS, or a value of the wrong kind, is a StreamerError. A mean in pixel values (above 1, e.g.
    [123.675, 116.28, 103.53]) given without INPUT_SCALE applies to raw pixels: the scale becomes 1."""
    changes = {}
    for key, value in settings.items():
        name = str(key).upper()
        if name not in KEYS:
            raise StreamerError(
                f"{where}: {key} is not a setting of a semantic model; it takes {', '.join(KEYS)} "
                "(e.g. --set INPUT_MEAN=[0.485,0.456,0.406])"
            )
        if name == "INPUT_SCALE":
            changes["scale"] = _number(value, name, where)
        elif name in ("INPUT_MEAN", "INPUT_STD"):
            values = _numbers(value, name, where)
            changes["mean" if name == "INPUT_MEAN" else "std"] = values
        elif name == "CHANNEL_ORDER":
            order = str(value).strip().lower()
            if order not in ORDERS:
                raise StreamerError(f"{where}: CHANNEL_ORDER {value}: choose rgb or bgr")
            changes["order"] = order
        else:
            output = {"probability": "probabilities", "logit": "logits", "index": "indices", "classes": "indices"}
            kind = output.get(str(value).strip().lower(), str(value).strip().lower())
            if kind not in OUTPUTS:
                raise StreamerError(f"{where}: OUTPUT {value}: choose one of {', '.join(OUTPUTS)}")
            changes["output"] = kind
    upper = {str(key).upper() for key in settings}
    if "mean" in changes and "INPUT_SCALE" not in upper and max(map(abs, changes["mean"]), default=0) > 1.5:
        changes["scale"] = 1.0
    return replace(conventions, **changes)


def _number(value, name: str, where: str) -> float:
    if isinstance(value, str):
        value = _parse(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise StreamerError(f"{where}: {name} {value!r}: give a number, e.g. 0.00392 or 1/255")


def _numbers(value, name: str, where: str) -> tuple[float, ...]:
    if isinstance(value, str):
        value = _parse(value)
    items = list(value) if isinstance(value, list | tuple | np.ndarray) else [value]
    try:
        return tuple(_number(item, name, where) for item in items) if items else ()
    except StreamerError:
        example = "e.g. [0.485,0.456,0.406]"
        raise StreamerError(f"{where}: {name} {value!r}: give a number or one per channel, {example}") from None


def _parse(text: str):
    """'0.5', '[1, 2]', '[123.7 116.8 103.9]', '1/255', '127.5,127.5,127.5' → numbers."""
    from streamer.settings import parse_value

    text = text.strip()
    if "/" in text and all(part.strip().replace(".", "", 1).isdigit() for part in text.split("/", 1)):
        top, bottom = (float(part) for part in text.split("/", 1))
        return top / bottom if bottom else text
    if "," in text and not text.startswith(("[", "(")):
        text = f"[{text}]"
    return parse_value(text)


def class_names_from(value) -> tuple[str, ...] | None:
    """Class names as metadata holds them: a JSON or Python list, a dict {index: name}, comma- or line-separated."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(text)
                break
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
        else:
            value = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    if isinstance(value, dict):
        ordered = sorted(value.items(), key=lambda item: int(item[0]))
        value = [name for _, name in ordered]
    if isinstance(value, list | tuple) and value and all(isinstance(name, str | int) for name in value):
        return tuple(str(name) for name in value)
    return None


def output_kind(operation: str | None, integer: bool) -> str:
    """The OUTPUT a model's last operation shows: an integer output or an argmax gives indices; anything else is
    taken as probabilities (a one-channel model that gives logits says so: metadata or --set OUTPUT=logits; for
    more channels it makes no difference, the largest score wins either way)."""
    return "indices" if integer or (operation or "").lower() in INDICES else "probabilities"


def keras_conventions(model) -> Conventions:
    """A Keras model's output kind, from its output's type."""
    outputs = getattr(model, "outputs", None) or []
    return Conventions(output=output_kind(None, bool(outputs) and "int" in str(outputs[0].dtype)))


def as_metadata(conventions: Conventions) -> dict[str, str]:
    """The file metadata (KEYS, CLASS_NAMES) that reads back as `conventions`: what an exported file says of itself,
    so that loading it needs no look at its graph."""
    entries = {
        "INPUT_SCALE": repr(conventions.scale),
        "INPUT_MEAN": json.dumps(list(conventions.mean)),
        "INPUT_STD": json.dumps(list(conventions.std)),
        "CHANNEL_ORDER": conventions.order,
        "OUTPUT": conventions.output,
    }
    if conventions.class_names:
        entries["CLASS_NAMES"] = json.dumps(list(conventions.class_names))
    return entries


def onnx_conventions(onnx_bytes: bytes) -> tuple[Conventions, dict]:
    """An ONNX model's conventions: the output kind from its graph, and its metadata_props (the raw settings)."""
    try:
        import onnx

        model = onnx.load_from_string(onnx_bytes)
    except Exception:  # no onnx package, or not an ONNX model (which the runtime then says)
        return Conventions(), {}
    properties = {entry.key: entry.value for entry in model.metadata_props}
    graph = model.graph
    producers = {name: node for node in graph.node for name in node.output}
    output = graph.output[0]
    integer = output.type.tensor_type.elem_type in (6, 7, 2, 3, 4, 5, 12, 13)  # int32, int64, uint8, int8, …
    node, seen = producers.get(output.name), 0
    while node is not None and node.op_type.lower() in PASSING and node.input and seen < 50:
        node, seen = producers.get(node.input[0]), seen + 1
    conventions = Conventions(output=output_kind(node.op_type if node is not None else None, integer))
    return conventions, properties


def metadata_settings(properties: dict) -> tuple[dict, tuple[str, ...] | None]:
    """(settings among KEYS, class names) from a file's key/value metadata (`mean`/`std` taken as INPUT_MEAN/STD)."""
    settings, names = {}, None
    for key, value in properties.items():
        upper = key.upper()
        if upper in KEYS:
            settings[upper] = value
        elif upper in ("MEAN", "STD"):
            settings[f"INPUT_{upper}"] = value
        elif upper in ("CLASS_NAMES", "LABELS", "NAMES", "CLASSES"):
            names = class_names_from(value)
    return settings, names


# -- TFLite metadata (the TFLITE_METADATA buffer: a ModelMetadata flatbuffer, metadata_schema.fbs of tflite-support)

NORMALIZATION = 1  # ProcessUnitOptions.NormalizationOptions
LABEL_FILES = (2, 3)  # AssociatedFileType TENSOR_AXIS_LABELS, TENSOR_VALUE_LABELS


def tflite_conventions(path, interpreter) -> Conventions:
    """A TFLite file's conventions: NormalizationOptions of its input (on raw pixel values) and the label file of
    its output, from its metadata; the output kind from the operation that makes the output."""
    data = open(path, "rb").read()
    output = interpreter.get_output_details()[0]
    integer = np.issubdtype(output["dtype"], np.integer) and not output.get("quantization", (0.0, 0))[0]
    operation = None
    try:
        details = {index: op for op in interpreter._get_ops_details() for index in op["outputs"]}
        op, seen = details.get(output["index"]), 0
        while op is not None and op["op_name"].lower() in PASSING and seen < 50:
            op, seen = details.get(op["inputs"][0]), seen + 1
        operation = op["op_name"] if op is not None else None
    except Exception:  # an interpreter without the op listing: the output kind stays the default
        pass
    conventions = Conventions(output=output_kind(operation, integer))
    metadata = _tflite_metadata(data)
    if metadata is None:
        return conventions
    mean, std, label_file = metadata
    if mean is not None and std is not None:
        conventions = replace(conventions, scale=1.0, mean=tuple(mean), std=tuple(std))
    if label_file:
        names = _packed_file(data, label_file)
        if names:
            conventions = replace(conventions, class_names=class_names_from(names))
    return conventions


def _tflite_metadata(data: bytes):
    """(mean, std, label file name) from the model's TFLITE_METADATA, or None when it has none."""
    import flatbuffers
    from flatbuffers.table import Table
    from tensorflow.lite.python import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAs(data, 0)
        buffer = None
        for i in range(model.MetadataLength()):
            if model.Metadata(i).Name() == b"TFLITE_METADATA":
                buffer = model.Buffers(model.Metadata(i).Buffer()).DataAsNumpy()
        if buffer is None or not hasattr(buffer, "tobytes"):
            return None
        raw = bytearray(buffer.tobytes())
        root = Table(raw, flatbuffers.encode.Get(flatbuffers.packer.uoffset, raw, 0))
        subgraph = _tables(root, 3)[0]
        mean = std = label = None
        for unit in _tables(_tables(subgraph, 2)[0], 4):
            if _byte(unit, 0) == NORMALIZATION:
                options = _union(unit, 1)
                mean, std = _floats(options, 0), _floats(options, 1)
        for file in _tables(_tables(subgraph, 3)[0], 6):
            if _byte(file, 2) in LABEL_FILES and label is None:
                label = _string(file, 0)
        return mean, std, label
    except (IndexError, ValueError, TypeError, AttributeError):  # no or malformed metadata: as if it had none
        return None


def _field(table, index: int) -> int:
    return table.Offset(4 + 2 * index)


def _tables(table, index: int) -> list:
    from flatbuffers.table import Table

    offset = _field(table, index)
    if not offset:
        return []
    start, count = table.Vector(offset), table.VectorLen(offset)
    return [Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(count)]


def _byte(table, index: int) -> int:
    from flatbuffers import number_types

    offset = _field(table, index)
    return int(table.Get(number_types.Uint8Flags, offset + table.Pos)) if offset else 0


def _union(table, index: int):
    from flatbuffers.table import Table

    offset = _field(table, index)
    inner = Table(bytearray(), 0)
    table.Union(inner, offset)
    return inner


def _floats(table, index: int) -> list[float] | None:
    from flatbuffers import number_types

    offset = _field(table, index)
    return [float(v) for v in table.GetVectorAsNumpy(number_types.Float32Flags, offset)] if offset else None


def _string(table, index: int) -> str | None:
    offset = _field(table, index)
    return table.String(offset + table.Pos).decode("utf8", "replace") if offset else None


def _packed_file(data: bytes, name: str) -> str | None:
    """A file packed into the model (a zip appended to it), as text."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as packed:
            return packed.read(name).decode("utf8", "replace")
    except (zipfile.BadZipFile, KeyError, OSError):
        return None
