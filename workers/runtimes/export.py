"""Writing a model out in another format: `publish_folder` (a SavedModel folder appears whole) and the format
converters the model packages' export.py share."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from streamer.errors import StreamerError
from streamer.publish import atomic_path

FORMATS = ("savedmodel", "onnx", "openvino", "tflite")


def check_target(out: str | os.PathLike, overwrite: bool) -> Path:
    target = Path(out)
    if target.exists() and not overwrite:
        raise StreamerError(f"-o {target}: exists; pass -y to replace it")
    if not target.parent.is_dir():
        raise StreamerError(f"-o {target}: folder {target.parent} does not exist")
    return target


def publish_folder(target: Path, write: Callable[[Path], None]) -> Path:
    """`write(folder)` into a hidden folder beside `target`, then rename it to `target` (replacing it)."""
    staging = target.parent / f".{target.name}.{secrets.token_hex(4)}.part"
    try:
        write(staging)
        if target.exists():
            old = target.parent / f".{target.name}.{secrets.token_hex(4)}.old"
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def publish_file(target: Path, data: bytes) -> Path:
    with atomic_path(target) as partial:
        Path(partial).write_bytes(data)
    return target


def function_to_onnx(function, input_signature, what: str, opset: int = 17) -> bytes:
    """A tf.function with `input_signature` → ONNX bytes (tf2onnx); a StreamerError when an op does not convert."""
    try:
        import tf2onnx
    except ImportError:
        raise StreamerError("--format onnx: needs tf2onnx; install it with pip install 'streamer[onnx]'") from None
    try:
        proto, _ = tf2onnx.convert.from_function(function, input_signature=input_signature, opset=opset)
    except Exception as error:  # the converter's own failures, e.g. an op ONNX lacks
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise StreamerError(f"{what}: tf2onnx cannot convert it to ONNX ({reason})") from None
    return proto.SerializeToString()


def with_metadata(data: bytes, entries: dict[str, str]) -> bytes:
    """ONNX bytes with `entries` added to the model's metadata (read back by ONNX Runtime's get_modelmeta)."""
    import onnx

    model = onnx.load_from_string(data)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    return model.SerializeToString()


def onnx_to_openvino(data: bytes, target: Path) -> Path:
    """ONNX bytes → OpenVINO's files: `target` (.xml, the network) and the .bin beside it (the weights, float32);
    the .bin is written first, so a complete .xml always has its weights."""
    import tempfile

    from workers.runtimes.semantic import openvino_core

    openvino_core()  # imports OpenVINO without its usage report
    import openvino as ov

    if target.suffix != ".xml":
        raise StreamerError(f"-o {target}: an OpenVINO model is a .xml file (its weights go in a .bin beside it)")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as folder:
        source = Path(folder) / "model.onnx"
        source.write_bytes(data)
        try:
            network = ov.convert_model(str(source))
        except Exception as error:
            reason = " ".join(str(error).split())[:300] or type(error).__name__
            raise StreamerError(f"--format openvino: OpenVINO cannot convert the model ({reason})") from None
        staged = Path(folder) / "model.xml"
        ov.save_model(network, str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(staged, target)
    return target
