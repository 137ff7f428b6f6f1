"""The in-process transport: batch inference and rendering on threads of this process."""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

import numpy as np

from streamer.detections import record
from streamer.effects import EffectConfig, selected, with_class_names
from streamer.metrics import Metrics
from streamer.source import Frame
from streamer.stages import END, Stages
from streamer.transports import Rendered


class MemoryTransport:
    """source frames → [batch → model.predict] → [effect] → rendered frames, bounded all the way.

    `parallel` threads call the model, each on its own batch, so one batch's resizing and mask
    pasting overlap another's inference; batches may finish out of order (the muxer reorders)."""

    def __init__(self, stages: Stages, model, render: Callable, effect: EffectConfig, batch: int, depth: int = 32,
                 metrics: Metrics | None = None, detections: bool = False, parallel: int = 1):
        self._stages = stages
        self._detections = detections
        self._metrics = metrics or Metrics()
        self._model, self._render, self._batch = model, render, max(1, batch)
        self._effect = with_class_names(effect, model)
        self._frames: queue.Queue = queue.Queue(maxsize=max(depth, self._batch))
        self._predicted: queue.Queue = queue.Queue(maxsize=2)
        self._rendered: queue.Queue = queue.Queue(maxsize=depth)
        self._inferring = max(1, parallel)
        self._inferring_lock = threading.Lock()
        for _ in range(self._inferring):
            stages.spawn("infer", self._infer)
        stages.spawn("render", self._draw)

    def send(self, frame: Frame) -> None:
        self._stages.put(self._frames, frame)

    def close(self) -> None:
        """No more frames will be sent."""
        self._stages.put(self._frames, END)

    def results(self) -> Iterator[Rendered]:
        while (item := self._stages.get(self._rendered)) is not END:
            yield item

    def depths(self) -> dict[str, int]:
        return {"frames": self._frames.qsize(), "predicted": self._predicted.qsize(), "rendered": self._rendered.qsize()}

    def end(self, state: str, reason: str = "") -> None:
        """Nothing outlives an in-process job."""

    def _infer(self) -> None:
        while frames := self._stages.take(self._frames, self._batch):
            images = np.stack([frame.image for frame in frames])
            with self._metrics.timed("inference"):
                predictions = self._model.predict(images)
            self._metrics.batch_size.observe(len(frames))
            self._stages.put(self._predicted, (frames, predictions))
            if len(frames) < self._batch:
                break
        self._stages.put(self._frames, END)  # the other model threads end on it too
        with self._inferring_lock:
            self._inferring -= 1
            last = self._inferring == 0
        if last:
            self._stages.put(self._predicted, END)

    def _draw(self) -> None:
        while (item := self._stages.get(self._predicted)) is not END:
            for frame, prediction in zip(*item):
                prediction = selected(prediction, self._effect)
                with self._metrics.timed("render"):
                    image = self._render(frame.image, prediction, self._effect)
                found = record(prediction, self._effect.class_names) if self._detections else None
                self._stages.put(self._rendered, Rendered(frame.index, frame.pts, frame.time_base, image, found))
        self._stages.put(self._rendered, END)
