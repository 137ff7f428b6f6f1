"""The render stage: frames → predict → select classes → effect → `Rendered` (with its prediction when read).

One stage serves the embedded transport (on its threads) and the Redis worker (per batch it
reads), so inference is timed, classes are checked and predictions are kept for what reads them in one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from streamer.effects import EffectConfig, effect_function, leaves_unchanged, planes, selected, with_class_names
from streamer.errors import StreamerError
from streamer.frames import Frame, Rendered
from streamer.metrics import Metrics
from streamer.models import Model
from streamer.prediction import Prediction
from streamer.progress import native_logs_hidden
from streamer.tracking import TRACK_COLOURED


class RenderStage:
    """Renders batches of frames with one model and one effect.

    Raises StreamerError when built for an effect the model cannot serve (e.g. `--classes`
    it does not have), so a job fails before any frame is spent.

    With `effect.track` every frame carries its prediction (the tracker's input), and an effect
    coloured by track is left undrawn: `streamer.tracking.TrackedRender` draws it in frame order."""

    def __init__(
        self,
        model: Model,
        effect: EffectConfig,
        detections: bool = False,
        metrics: Metrics | None = None,
        draw: bool = True,
    ):
        """`detections`: each rendered frame carries its prediction; `draw=False`: frames are left as they are
        (their predictions go to a caller, not into a video)."""
        self.model = model
        self.draw = draw
        self.effect = with_class_names(effect, model)
        self.detections = detections or effect.track
        self.metrics = metrics or Metrics()
        self._draw = effect_function(effect.name)
        self._draw_planes = planes.EFFECTS.get(effect.name)  # the same effect on a decoded YUV 4:2:0 picture
        self.reads_pixels = getattr(model, "reads_pixels", True)  # False: the model needs the frames' size only
        self._takes_frames_at = getattr(model, "takes_frames_at", None)
        self._deferred = effect.track and effect.name in TRACK_COLOURED
        self._first_calls = 2

    def __call__(self, frames: Sequence[Frame]) -> list[Rendered]:
        return [self.render(frame, prediction) for frame, prediction in zip(frames, self.predict(frames))]

    def predict(self, frames: Sequence[Frame]) -> list[Prediction]:
        """One model call for the batch; the model may run on another thread than `render`."""
        images, resized_from = self._pixels(frames)
        # a model's first calls build its graph, when TensorFlow logs device lines (cuInit) from C++
        quiet = native_logs_hidden() if self._first_calls > 0 else contextlib.nullcontext()
        self._first_calls -= 1
        with quiet, self.metrics.timed("inference"):
            if resized_from is None:
                predictions = self.model.predict(images)
            else:
                predictions = self.model.predict(images, frame_size=resized_from)
        if len(predictions) != len(frames):
            raise StreamerError(
                f"model {getattr(self.model, 'name', '?')!r} returned {len(predictions)} predictions "
                f"for {len(frames)} frames; a model returns one per frame"
            )
        self.metrics.batch_size.observe(len(frames))
        return predictions

    def warm_up(self, height: int, width: int) -> None:
        """Let a model that offers it (`warm_up(height, width)`) build its graph for the input's frame size before
        the first frame arrives; it is quiet about it, as about its first calls."""
        warm_up = getattr(self.model, "warm_up", None)
        if warm_up is not None and self.reads_pixels:
            with native_logs_hidden():
                warm_up(height, width)

    def prepare(self, frame: Frame) -> None:
        """Convert a frame to the RGB image the model will read, on the caller's thread; nothing for a model that
        reads no pixels or takes decoded frames at its own smaller size (it gets them in one pass per batch)."""
        if self.reads_pixels and (frame.decoded is None or self._smaller_size(frame) is None):
            frame.image  # noqa: B018  converted and kept on the frame

    def _smaller_size(self, frame: Frame) -> tuple[int, int] | None:
        height, width, _ = frame.shape
        return self._takes_frames_at(height, width) if self._takes_frames_at else None

    def _pixels(self, frames: Sequence[Frame]) -> tuple[np.ndarray, tuple[int, int] | None]:
        """The batch as the model takes it, and the frames' (height, width) when it is at a smaller size: decoded
        frames go straight to the size a model with a fixed input resizes them to (one swscale pass each)."""
        if not self.reads_pixels:  # a model that needs the frames' size only (identity): no pixels are made for it
            return np.broadcast_to(np.zeros((1, 1, 1, 3), np.uint8), (len(frames), *frames[0].shape)), None
        size = self._smaller_size(frames[0])
        if size is not None and all(frame.shape == frames[0].shape for frame in frames):
            small = [frame.resized(*size) for frame in frames]
            if all(image is not None for image in small):
                return np.stack(small), frames[0].shape[:2]
        return np.stack([frame.image for frame in frames]), None

    def render(self, frame: Frame, prediction: Prediction) -> Rendered:
        prediction = selected(prediction, self.effect)
        found = replace(prediction, class_names=self.effect.class_names) if self.detections else None
        if not self.draw or self._deferred or leaves_unchanged(self.effect.name, prediction):
            return frame.unchanged(found)  # the decoded picture goes to the encoder as it came
        if self._draw_planes is not None and planes.drawable(frame.decoded):  # no RGB at full size
            with self.metrics.timed("render"):
                picture = self._draw_planes(frame.decoded, prediction, self.effect)
            return Rendered(frame.index, frame.pts, frame.time_base, None, found, decoded=picture)
        with self.metrics.timed("render"):
            image = self._draw(frame.image, prediction, self.effect)
        return Rendered(frame.index, frame.pts, frame.time_base, image, found)
