"""What every model package's predictor does the same way: `Predictor`, the base of workers.unet's and
workers.maskrcnn's predictors.

A package's predictor builds its model inside `self.building()` and implements `predict_batch(frames, size)`
for exactly `config.batch_size` frames. The base class

* sets up the GPUs once per process (before TensorFlow initialises them): memory growth, so several
  workers share a GPU, or a fixed `gpu_memory_limit` (MB) per process;
* checks the ModelConfig's threshold, in [0, 1] (None: the package's default), and device, one TensorFlow
  can see (ModelConfig itself checks the batch size);
* checks the frames (uint8[B,H,W,3] RGB), with a StreamerError saying what was wrong;
* cuts the frames into batches and pads a short last batch with copies of its last frame, so that one
  compiled graph serves a whole video; the answers for the padding are dropped;
* builds and runs the model on the configured device;
* builds it under Keras' global mixed_float16 policy when `mixed_precision` is set (float16 compute,
  float32 variables), on any device; the previous policy is restored afterwards;
* checks `precision` (auto | f32 | bf16): bf16 needs a package that offers it (`precisions`) and, on the CPU,
  bfloat16 instructions (avx512_bf16 or amx_bf16); "auto" measures (workers/precision.py).

A model exported for ONNX Runtime or OpenVINO (`tensorflow=False`) never imports TensorFlow: it runs on the
CPU, with no GPU set-up, device or Keras policy.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from streamer.errors import StreamerError
from streamer.models import ModelConfig
from streamer.prediction import Prediction

# Keras' dtype policy is global: models are built one at a time, so a float32 model built in one thread
# never picks up the float16 policy another thread set for its own model.
_BUILDING = threading.Lock()
log = logging.getLogger(__name__)
PRECISIONS = ("auto", "f32", "bf16")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with bfloat16 instructions


class Predictor:
    """Frame checks, batching with padding, device placement and mixed precision for a model package."""

    name = ""
    precisions: tuple[str, ...] = ("f32",)  # what --precision may ask of this package besides auto

    def __init__(self, config: ModelConfig, default_threshold: float, tensorflow: bool = True) -> None:
        """`tensorflow`: whether the model runs on TensorFlow (False: an exported model on ONNX Runtime or
        OpenVINO, on the CPU, with TensorFlow never imported)."""
        self.tensorflow = tensorflow
        if tensorflow:
            self.gpus = configure_gpus(config.gpu_memory_limit)
            configure_threads(config.threads)
            device = check_device(config.device)
        else:
            self.gpus = []
            device = check_cpu_device(config.device)
        threshold = default_threshold if config.threshold is None else config.threshold
        if not 0.0 <= threshold <= 1.0:
            raise StreamerError(f"threshold {threshold}: must be between 0 and 1")
        self.config = replace(config, threshold=float(threshold), device=device)
        self.check_precision()

    def on_cpu(self) -> bool:
        """Whether the model runs on the CPU: a CPU device is configured, or TensorFlow sees no GPU."""
        device = (self.config.device or "").upper()
        return "CPU" in device if device else not self.gpus

    def check_precision(self) -> None:
        """A StreamerError for a --precision this package or this CPU cannot give."""
        precision = self.config.precision
        if precision not in PRECISIONS:
            raise StreamerError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
        if precision != "bf16":
            return
        if self.config.mixed_precision:
            raise StreamerError("--precision bf16 and --mixed-precision (float16): choose one")
        if "bf16" not in self.precisions:
            raise StreamerError(f"--precision bf16: the {self.name} model computes in f32 only; use --precision f32")
        if self.on_cpu() and bf16_cpu() is None:
            raise StreamerError(
                "--precision bf16: this CPU has no bfloat16 instructions (avx512_bf16 or amx_bf16); "
                "use --precision f32 (or auto)"
            )

    def tries_bf16(self) -> bool:
        """Whether --precision auto should measure bfloat16: a package offering it, on a CPU that has it."""
        return (
            self.config.precision == "auto"
            and "bf16" in self.precisions
            and not self.config.mixed_precision
            and self.on_cpu()
            and bf16_cpu() is not None
        )

    @property
    def threshold(self) -> float:
        """The threshold in use: the configured one, or the package's default."""
        return self.config.threshold

    def predict(self, frames: np.ndarray, frame_size: tuple[int, int] | None = None) -> list[Prediction]:
        """frames: uint8[B,H,W,3] RGB → one Prediction per frame, at the frame's size (`frame_size` when the
        frames were resized to the size `takes_frames_at` gave for it)."""
        frames = check_frames(frames)
        size = self.config.batch_size
        predictions: list[Prediction] = []
        for start in range(0, len(frames), size):
            batch = frames[start : start + size]
            count = len(batch)
            if count < size:  # the same graph serves every batch of this frame size
                batch = np.concatenate([batch, np.repeat(batch[-1:], size - count, axis=0)])
            with self.on_device():
                predictions += self.predict_batch(batch, frame_size or batch.shape[1:3])[:count]
        return predictions

    def warm_up(self, height: int, width: int) -> None:
        """Build the graph for frames of height × width with one call on a black batch, so that the first frames
        of a stream do not wait for it."""
        size = self.takes_frames_at(height, width) or (height, width)
        self.predict(np.zeros((self.config.batch_size, *size, 3), np.uint8), frame_size=(height, width))

    def takes_frames_at(self, height: int, width: int) -> tuple[int, int] | None:
        """The smaller size this model resizes frames of height × width to itself (a package whose model has
        a fixed input says so), so that it may be handed them at that size; None: it takes full frames."""
        return None

    def predict_batch(self, frames: np.ndarray, frame_size: tuple[int, int]) -> list[Prediction]:
        """Exactly `config.batch_size` checked frames → one Prediction per frame, at `frame_size`."""
        raise NotImplementedError

    @contextlib.contextmanager
    def building(self, policy: str | None = None) -> Iterator[None]:
        """Build the model in here: on the configured device, under Keras' `policy` (e.g. mixed_bfloat16),
        or mixed_float16 when mixed precision is asked for."""
        import keras

        policy = policy or ("mixed_float16" if self.config.mixed_precision else None)
        with _BUILDING, self.on_device():
            if not policy:
                yield
                return
            previous = keras.config.dtype_policy()
            keras.config.set_dtype_policy(policy)
            try:
                yield
            finally:
                keras.config.set_dtype_policy(previous)

    def on_device(self) -> contextlib.AbstractContextManager:
        """tf.device(config.device), or nothing when TensorFlow places the ops (or runs no op)."""
        if not self.config.device or not self.tensorflow:
            return contextlib.nullcontext()
        import tensorflow as tf

        return tf.device(self.config.device)


def configure_gpus(memory_limit_mb: int | None = None) -> list:
    """Memory growth on every visible GPU (TensorFlow otherwise takes all of a GPU's memory for one process),
    or a fixed limit of `memory_limit_mb` per GPU. Takes effect only before TensorFlow initialises the GPUs
    (the first model of the process); later calls keep what is set. Returns the GPUs found."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            if memory_limit_mb:
                config = tf.config.LogicalDeviceConfiguration(memory_limit=int(memory_limit_mb))
                tf.config.set_logical_device_configuration(gpu, [config])
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError) as error:  # already initialised by an earlier model of this process
            log.debug("GPU %s keeps its memory settings: %s", gpu.name, error)
    return gpus


def configure_threads(threads: int | None) -> None:
    """TensorFlow's threads for one op (intra-op), the same for the whole process: set by its first model,
    before TensorFlow starts; a later model asking for another number is told it keeps the first's."""
    if threads is None:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow has started: the setting is fixed for this process
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            log.warning(
                "--threads %d: TensorFlow has started in this process with --threads %s; keeping that",
                threads,
                current or "(every core)",
            )


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where that cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as file:
            for line in file.read(1 << 20).splitlines():  # the first CPU's block is enough
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def bf16_cpu() -> str | None:
    """The CPU's bfloat16 instruction set (amx_bf16 or avx512_bf16), or None when it has none."""
    flags = cpu_flags()
    return next((flag for flag in BF16_FLAGS if flag in flags), None)


def check_cpu_device(device: str | None) -> str | None:
    """None, or a CPU device name: an exported model runs on the CPU (ONNX Runtime, OpenVINO)."""
    if device and "CPU" not in device.upper():
        raise StreamerError(
            f"--device {device}: an exported model (ONNX, OpenVINO) runs on the CPU here; drop --device, or run "
            "the .keras / .weights.h5 model on TensorFlow for a GPU"
        )
    return device


def check_frames(frames) -> np.ndarray:
    """frames as a uint8[B,H,W,3] array; a StreamerError naming what was given otherwise."""
    try:
        array = np.asarray(frames)
    except ValueError as error:  # e.g. a list of frames of different sizes
        raise StreamerError(f"frames must be uint8[B,H,W,3] RGB of one size ({error})") from None
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise StreamerError(f"frames must be uint8[B,H,W,3] RGB; got {array.dtype}{list(array.shape)}")
    if len(array) and 0 in array.shape[1:3]:
        raise StreamerError(f"frames must be at least 1x1 pixels; got {array.shape[2]}x{array.shape[1]}")
    return array


def check_device(device: str | None) -> str | None:
    """None, or a device TensorFlow can see (e.g. "/GPU:0"); otherwise a StreamerError listing the visible ones."""
    if not device:
        return None
    import tensorflow as tf

    try:
        wanted = tf.DeviceSpec.from_string(device)
    except (ValueError, TypeError) as error:
        raise StreamerError(f"device {device!r}: not a device name ({error}); use e.g. /CPU:0 or /GPU:0") from error
    visible = [tf.DeviceSpec.from_string(d.name) for d in tf.config.list_logical_devices()]
    for spec in visible:
        if spec.device_type == (wanted.device_type or "").upper() and spec.device_index == (wanted.device_index or 0):
            return device
    names = ", ".join(f"/{s.device_type}:{s.device_index}" for s in visible)
    raise StreamerError(f"device {device!r}: not available here; visible devices: {names}")
