"""The U-Net road model behind the registry's `predict(frames) -> list[Prediction]` interface.

A batch goes: one resize of each uint8 frame to the model's input (OpenCV, area averaging when shrinking),
the model (one compiled call: normalise as its conventions say, run, average deep-supervision heads), its
scores quantised to uint8 at model size, and one uint8 resize of those back to the frame size, thresholded
there (binary) or compared class by class (multi-class); a class index map is resized by nearest neighbour.
No float map at frame size is ever made.
Frame checks, batching, device, mixed precision and bf16 are the shared Predictor's (workers/predictor.py).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from pathlib import Path

import cv2
import numpy as np

from streamer.errors import StreamerError
from streamer.models import ModelConfig, weights_path
from streamer.prediction import Prediction
from workers import precision
from workers.precision import Choice
from workers.predictor import Predictor
from workers.unet.config import DEFAULT_THRESHOLD, ROAD_CLASSES
from workers.unet.weights import DEMO_NOTE, DEMO_WEIGHTS, HINT, load_keras_model

STRIDE = 32  # a model of any input size gets frames rounded up to a multiple of this
GREY = np.array([0.2989, 0.5870, 0.1140], np.float32)  # tf.image.rgb_to_grayscale's weights
log = logging.getLogger(__name__)


def load(config: ModelConfig) -> UNetPredictor:
    """Registry factory: the model from config.weights (None → bundled demo weights), ready to predict."""
    return UNetPredictor(config)


class UNetPredictor(Predictor):
    """A loaded segmentation model plus its compiled per-batch function; semantic 1 = road (binary).

    The model may be any file workers.runtimes.semantic opens (.keras, Keras 2 .h5, SavedModel, ONNX, TFLite),
    on the runtime `config.runtime`; its input size, channels and classes come from the file.
    `precision` is what it computes in: "f32", "bf16" or "mixed_float16"."""

    name = "unet"
    precisions = ("f32", "bf16")

    def __init__(self, config: ModelConfig) -> None:
        from workers.runtimes.semantic import EXPORTED, file_format, open_semantic

        self.path = Path(weights_path(self.name, config.weights)) if config.weights else DEMO_WEIGHTS
        if not config.weights:
            logging.getLogger(__name__).warning(DEMO_NOTE)
        try:
            exported = file_format(self.path) in EXPORTED  # ONNX, OpenVINO: TensorFlow is never imported
        except StreamerError as error:
            raise StreamerError(f"{error}; {HINT}") from None
        super().__init__(config, default_threshold=DEFAULT_THRESHOLD, tensorflow=not exported)
        with self.building() if not exported else contextlib.nullcontext():
            self.semantic = open_semantic(
                self.path, config.runtime, keras_loader=load_keras_model, hint=HINT, threads=config.threads
            )
            model = self.semantic.keras_model
            if model is not None and self.config.mixed_precision:
                model = _under_policy(model)
        self.model = model
        self.input_size = self.semantic.input_size
        self.channels = self.semantic.channels
        self.classes = self.semantic.classes
        from workers.runtimes.conventions import with_settings

        self.conventions = with_settings(self.semantic.conventions, config.all_settings(), "--config/--set")
        self.conventions.check(self.channels, f"weights {self.path}")
        self.indices = self.conventions.output == "indices"
        if config.exclude:
            raise StreamerError(f"--exclude: the {self.name} model loads its file {self.path} whole; drop --exclude")
        if config.class_names is not None:
            wanted = max(self.classes, 2)  # a one-channel (binary) map has background and one class
            if len(config.class_names) != wanted and not self.indices:
                raise StreamerError(
                    f"--class-names gives {len(config.class_names)} names but {self.path} has {wanted} classes: "
                    f"give {wanted} names, background first"
                )
            self.class_names = tuple(config.class_names)
        elif (names := self.conventions.class_names) and (self.indices or len(names) == max(self.classes, 2)):
            self.class_names = tuple(names)  # the names the file carries
        elif self.path == DEMO_WEIGHTS or (config.name == "unet" and self.classes == 1):
            self.class_names = ROAD_CLASSES  # the road model's one class (a file of another: --class-names)
        # binary maps: uint8 score q = round(255 p), and p > threshold ⇔ q > floor(255 threshold)
        self._cut = min(255, math.floor(self.threshold * 255 + 1e-9))
        self._run = self.semantic.run
        self._infer = None
        if self._run is None:  # Keras or TensorFlow: one compiled graph
            import tensorflow as tf

            self._infer = tf.function(self._infer_batch)
        self._graph_lock = threading.Lock()
        self.precision = "mixed_float16" if self.config.mixed_precision and model is not None else "f32"
        self.precision_choice: Choice | None = None  # what --precision auto measured, and why it chose
        self._choose_precision()
        log.info("%s computes in %s on %s", self.path.name, self.precision, self.semantic.runtime)

    # -- the per-batch path ------------------------------------------------------------------------------

    def predict_batch(self, frames: np.ndarray, frame_size: tuple[int, int]) -> list[Prediction]:
        """uint8[B,h,w,3] → one Prediction per frame with a `frame_size` uint8 `semantic` map."""
        height, width = frame_size
        scores = self.scores(self.shrink(frames))
        return [Prediction(semantic=self.labels(score, height, width)) for score in scores]

    def takes_frames_at(self, height: int, width: int) -> tuple[int, int] | None:
        """The model's size for frames it shrinks (a frame it enlarges is taken as it is)."""
        size = self.model_size(height, width)
        return size if size[0] <= height and size[1] <= width and size != (height, width) else None

    def model_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) the model takes frames of this size at."""
        if self.input_size is not None:
            return tuple(self.input_size)
        return (height + STRIDE - 1) // STRIDE * STRIDE, (width + STRIDE - 1) // STRIDE * STRIDE

    def shrink(self, frames: np.ndarray) -> np.ndarray:
        """uint8[B,H,W,3] → uint8[B,h,w,3] at the model's size, resized once per frame in uint8 (OpenCV): area
        averaging when shrinking (every source pixel counts, as with an antialiased filter), bilinear when
        enlarging. A shrink by a fractional factor goes through the nearest whole factor first (OpenCV's fast
        block average, e.g. 1280×720 → 256×144 → 256×128), which costs about half of one fractional resize."""
        height, width = frames.shape[1:3]
        size = self.model_size(height, width)
        if (height, width) == size:
            return frames
        out = np.empty((len(frames), *size, frames.shape[3]), np.uint8)
        if not (size[0] <= height and size[1] <= width):
            for frame, target in zip(frames, out, strict=True):
                cv2.resize(frame, (size[1], size[0]), dst=target, interpolation=cv2.INTER_LINEAR)
            return out
        step = (height // _whole_factor(height, size[0]), width // _whole_factor(width, size[1]))
        for frame, target in zip(frames, out, strict=True):
            if step != (height, width) and step != size:
                frame = cv2.resize(frame, (step[1], step[0]), interpolation=cv2.INTER_AREA)
            cv2.resize(frame, (size[1], size[0]), dst=target, interpolation=cv2.INTER_AREA)
        return out

    def scores(self, small: np.ndarray) -> np.ndarray:
        """uint8[B,h,w,3] at model size → uint8[B,h,w,C] scores: binary 255 × probability; multi-class the
        frame's scores mapped linearly onto 0..255 (which keeps the class order of every interpolation)."""
        if self._run is None:  # Keras or TensorFlow: one graph, run by one thread at a time (a graph's rewritten
            with self._graph_lock:  # per-step temporaries are not re-entrant); resizing around it overlaps
                raw = self._infer(small).numpy()
        else:  # another runtime, on numpy arrays
            raw = self._run(self._to_input(small))
        return self._quantise(np.asarray(raw, np.float32))

    def labels(self, score: np.ndarray, height: int, width: int) -> np.ndarray:
        """uint8[h,w,C] scores at model size → uint8[H,W] class index at the frame's size: one bilinear uint8
        resize (OpenCV), then the threshold (binary) or the largest score (multi-class)."""
        if self.indices:  # a class index per pixel: the nearest one
            if score.shape[:2] != (height, width):
                return cv2.resize(score[..., 0], (width, height), interpolation=cv2.INTER_NEAREST)
            return np.ascontiguousarray(score[..., 0])
        if score.shape[:2] != (height, width):
            score = cv2.resize(score, (width, height), interpolation=cv2.INTER_LINEAR)
        if score.ndim == 2:  # OpenCV drops a single channel
            score = score[..., None]
        if self.classes == 1:
            return cv2.threshold(score[..., 0], self._cut, 1, cv2.THRESH_BINARY)[1]
        best = score[..., 0].copy()
        index = np.zeros((height, width), np.uint8)
        for label in range(1, score.shape[-1]):
            channel = score[..., label]
            better = channel > best  # ties keep the lower class, as argmax does
            index[better] = label
            np.maximum(best, channel, out=best)
        return index

    def _infer_batch(self, small, model=None):
        """Traced once per model size: uint8[B,h,w,3] → float32[B,h,w,C] scores."""
        import tensorflow as tf

        x = tf.cast(small, tf.float32)
        if self.channels == 1:
            x = tf.image.rgb_to_grayscale(x)
        x = self.conventions.normalise_tf(x)
        if model is None:
            model = self.model
        outputs = model(x, training=False) if model is not None else self.semantic.tf_call(x)
        if isinstance(outputs, (list, tuple)):  # deep supervision: average the heads
            outputs = tf.add_n([tf.cast(o, tf.float32) for o in outputs]) / len(outputs)
        outputs = tf.cast(outputs, tf.float32)
        return outputs[..., None] if outputs.shape.rank == 3 else outputs

    def _to_input(self, small: np.ndarray) -> np.ndarray:
        x = (small.astype(np.float32) @ GREY)[..., None] if self.channels == 1 else small
        return self.conventions.normalise(x)

    def _quantise(self, raw: np.ndarray) -> np.ndarray:
        """Raw model output → uint8 scores (see `scores`); class indices as they are (0..255)."""
        if self.indices:
            return np.clip(np.rint(raw), 0, 255).astype(np.uint8)
        if self.classes == 1:
            if self.conventions.output == "logits":
                raw = 1.0 / (1.0 + np.exp(-np.clip(raw, -60.0, 60.0)))
            return (np.clip(raw, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
        low = raw.min(axis=(1, 2, 3), keepdims=True)
        span = np.maximum(raw.max(axis=(1, 2, 3), keepdims=True) - low, 1e-12)
        return ((raw - low) * (255 / span) + 0.5).astype(np.uint8)

    # -- precision ---------------------------------------------------------------------------------------

    def _choose_precision(self) -> None:
        """Switch to bfloat16 compute when --precision bf16 asks for it; with --precision auto, time float32
        and bfloat16 on a probe batch (once per machine and model, workers/precision.py) and keep the faster
        one whose masks agree with float32's."""
        wanted = self.config.precision
        if wanted == "f32" or self.config.mixed_precision:
            return
        if wanted == "bf16":
            bf16 = self._bf16_model(explicit=True)
            if bf16 is not None:
                self._use(bf16)
            return
        if not self.tries_bf16() or (self.model is None and self.semantic.recompile is None):
            return  # float32 is the only precision here: nothing to measure
        made = {}

        def make_bf16():
            made["bf16"] = self._bf16_model(explicit=False)
            return None if made["bf16"] is None else lambda probe: self._masks(probe, made["bf16"])

        probe = self.probe()
        choice, _ = precision.choose(
            lambda frames: self._masks(frames, None),
            {"bf16": make_bf16},
            probe,
            self.path,
            {"runtime": self.semantic.runtime, "batch": self.config.batch_size, "threads": self.config.threads},
        )
        self.precision_choice = choice
        log.info("%s", choice.describe())
        if choice.precision == "bf16":
            bf16 = made.get("bf16") or self._bf16_model(explicit=False)
            if bf16 is not None:
                self._use(bf16)

    def _bf16_model(self, explicit: bool):
        """(Keras twin computing in bfloat16, its compiled per-batch function) or (None, the runtime's bf16
        call); None (or, when asked for explicitly, a StreamerError) where this model has no bf16 path."""
        if self.model is not None:
            import tensorflow as tf

            with self.building(policy="mixed_bfloat16"):
                twin = _under_policy(self.semantic.keras_model)
            return twin, tf.function(lambda small: self._infer_batch(small, model=twin))
        if self.semantic.recompile is not None:
            return None, self.semantic.recompile("bf16")
        if explicit:
            raise StreamerError(
                f"--precision bf16: {self.path} ({self.semantic.format}) on --runtime {self.config.runtime} has no "
                "bfloat16 path; use a .keras/.h5 file on --runtime tf, or --runtime openvino, or --precision f32"
            )
        return None

    def _use(self, bf16) -> None:
        twin, call = bf16
        if twin is not None:
            self.model, self._infer = twin, call
        else:
            self._run = call
        self.precision = "bf16"

    def probe(self) -> np.ndarray:
        """A fixed batch of synthetic road scenes at the model's size (what --precision auto measures on)."""
        from workers.unet.synthetic import road_frames

        height, width = self.input_size or (128, 256)
        return np.stack([image for image, _ in road_frames(1, width, height, 2.0, self.config.batch_size)])

    def _masks(self, small: np.ndarray, bf16) -> np.ndarray:
        """Masks of frames at the model's size, from the float32 model (`bf16` None) or the bfloat16 one."""
        with self.on_device():
            if bf16 is None:
                scores = self.scores(small)
            else:
                twin, call = bf16
                raw = call(small).numpy() if twin is not None else call(self._to_input(small))
                scores = self._quantise(np.asarray(raw, np.float32))
        height, width = small.shape[1:3]
        return np.stack([self.labels(score, height, width) for score in scores])


def _whole_factor(length: int, target: int) -> int:
    """The largest whole k ≤ length / target that divides `length` (1 when there is none above 1)."""
    return next(k for k in range(length // target, 0, -1) if length % k == 0)


def _under_policy(model):
    """`model` rebuilt from its config so that its layers take the current global policy (mixed_float16 or
    mixed_bfloat16): a saved file fixes every layer's dtype, so the saved one is dropped; output layers keep
    float32."""
    import keras

    outputs = set(model.output_names)

    def clone(layer):
        config = layer.get_config()
        if layer.name not in outputs:
            config.pop("dtype", None)
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone, recursive=True)
    twin.set_weights(model.get_weights())
    return twin
