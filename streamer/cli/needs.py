"""What each command needs beyond `pip install streamer`, checked before it does any work.

One table: the optional dependency groups of pyproject.toml by the top-level modules they install, and the
modules a command run with given options imports. A missing one is a one-line error naming the extra to
install (exit 2), not a failure after an epoch of training.
"""

from __future__ import annotations

import argparse
import importlib.util

from streamer.errors import StreamerError

# Top-level module → the extra (pyproject.toml) that installs it.
EXTRAS = {
    "tensorflow": "models",
    "keras": "models",
    "albumentations": "models",
    "h5py": "models",
    "matplotlib": "plots",
    "onnxruntime": "onnx",
    "tf2onnx": "onnx",
    "onnx": "onnx",
    "openvino": "openvino",
}

MODEL_STACK = ("tensorflow", "keras", "h5py")
BUILT_IN_MODELS = ("unet", "maskrcnn", "semantic")  # the models that run on the model stack
RUNTIMES = {"onnx": ("onnxruntime",), "openvino": ("openvino",)}


def needed(args: argparse.Namespace) -> tuple[str, ...]:
    """The optional modules the parsed command will import."""
    command = getattr(args, "command", None)
    if command == "train":
        return (*MODEL_STACK, "albumentations", "matplotlib")  # the run's report.html has plots
    if command == "inspect":
        return (*MODEL_STACK, "matplotlib")
    if command == "evaluate":  # an ONNX export runs on ONNX Runtime
        return RUNTIMES["onnx"] if str(getattr(args, "weights", None) or "").lower().endswith(".onnx") else MODEL_STACK
    if command == "export":
        from streamer.cli.export import format_of

        format = args.format or format_of(args.output)
        onnx = ("tf2onnx", "onnx") + (("openvino",) if format == "openvino" else ())
        int8 = ("onnxruntime",) if getattr(args, "int8", False) else ()
        if int8 and str(getattr(args, "weights", None) or "").lower().endswith(".onnx"):
            return ("onnx", *int8)  # quantizing an ONNX export: no TensorFlow
        return (*MODEL_STACK, *onnx, *int8) if format in ("onnx", "openvino") else MODEL_STACK
    if command in ("process", "batch", "worker"):
        if command != "worker" and getattr(args, "redis", None) and not getattr(args, "workers", 0):
            return ()  # the workers elsewhere run the model
        from streamer.distributed.spawn import spawned_model

        spawned = spawned_model() if command == "worker" else None
        if spawned is not None:  # a worker started by `process --workers N` serves the model it was handed
            return _model_needs(spawned.name, spawned.weights, spawned.runtime)
        model, weights = getattr(args, "model", None), getattr(args, "weights", None)
        return _model_needs(model, weights, getattr(args, "runtime", "tf"))
    return ()


def _model_needs(name: str | None, weights: str | None, runtime: str) -> tuple[str, ...]:
    """The optional modules serving the model `name` from `weights` on `runtime` imports."""
    if name not in BUILT_IN_MODELS:
        return ()  # identity, or a model of the user's own: its imports are its own
    weights = str(weights or "").lower()
    if weights.endswith(".xml"):  # an exported model: its runtime alone, no TensorFlow
        return RUNTIMES["openvino"]
    if weights.endswith(".onnx"):
        return RUNTIMES["openvino" if runtime == "openvino" else "onnx"]
    return RUNTIMES[runtime] if runtime in RUNTIMES else MODEL_STACK  # (converting a Keras file: said then)


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_installed(args: argparse.Namespace) -> None:
    """A StreamerError naming the extras to install when a module the command needs is not installed."""
    missing = [module for module in needed(args) if not installed(module)]
    if not missing:
        return
    extras = sorted({EXTRAS[module] for module in missing})
    command = " ".join(word for word in (args.command, _subject(args)) if word)
    raise StreamerError(
        f"{command} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed: "
        f"pip install 'streamer[{','.join(extras)}]'"
    )


def _subject(args: argparse.Namespace) -> str:
    """The model of train/evaluate/inspect/export (their second word)."""
    if args.command in ("train", "evaluate", "inspect", "export"):
        return getattr(args, "model", "") or ""
    return ""
