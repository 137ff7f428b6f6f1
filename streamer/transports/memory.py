"""The in-process transport: the render stage on threads of this process."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from streamer.frames import Frame, Rendered
from streamer.render import RenderStage
from streamer.stages import END, Stages, Stopped


class MemoryTransport:
    """source frames → [batch → predict] → [render] → rendered frames, bounded all the way.

    `parallel` threads call the model, each on its own batch, so one batch's resizing and mask
    pasting overlap another's inference; batches may finish out of order (the muxer reorders).

    `handoff` (live inputs): one frame per model call, and `ready()` holds the sender until a model thread
    is free, so the frame sent is the newest one and starts at once. `latency` (a `streamer.live.Latency`)
    gets the moments each frame starts and ends inference and is rendered."""

    def __init__(
        self,
        stages: Stages,
        stage: RenderStage,
        batch: int,
        depth: int = 32,
        parallel: int = 1,
        handoff: bool = False,
        latency=None,
    ):
        self._stages, self._stage, self._batch = stages, stage, 1 if handoff else max(1, batch)
        self._free = threading.Semaphore(0) if handoff else None
        self._latency = latency
        # the frames waiting for a model thread: a batch for each (the decoded frames queue before this one)
        self._frames: queue.Queue = queue.Queue(maxsize=self._batch * max(1, parallel))
        self._predicted: queue.Queue = queue.Queue(maxsize=2)
        self._rendered: queue.Queue = queue.Queue(maxsize=depth)
        self._inferring = max(1, parallel)
        self._inferring_lock = threading.Lock()
        for _ in range(self._inferring):
            stages.spawn("infer", self._infer)
        stages.spawn("render", self._render)

    def ready(self) -> None:
        """With handoff: wait until a model thread is free to take the next frame at once."""
        while self._free is not None and not self._free.acquire(timeout=0.1):
            if self._stages.stop.is_set():
                raise Stopped

    def send(self, frame: Frame) -> None:
        self._stage.prepare(frame)  # on the feeding thread: the model's threads only predict
        self._stages.put(self._frames, frame)

    def close(self) -> None:
        self._stages.put(self._frames, END)

    def results(self) -> Iterator[Rendered]:
        while (item := self._stages.get(self._rendered)) is not END:
            yield item

    @property
    def model(self):
        """The model this transport's render stage calls."""
        return self._stage.model

    def depths(self) -> dict[str, int]:
        return {
            "frames": self._frames.qsize(),
            "predicted": self._predicted.qsize(),
            "rendered": self._rendered.qsize(),
        }

    def end(self, state: str, reason: str = "") -> None:
        """Nothing outlives an in-process job."""

    def _infer(self) -> None:
        while True:
            if self._free is not None:
                self._free.release()
            if not (frames := self._stages.take(self._frames, self._batch)):
                break
            self._mark(frames, "inferring")
            predictions = self._stage.predict(frames)
            self._mark(frames, "inferred")
            self._stages.put(self._predicted, (frames, predictions))
            if len(frames) < self._batch:
                break
        self._stages.put(self._frames, END)  # the other model threads end on it too
        with self._inferring_lock:
            self._inferring -= 1
            last = self._inferring == 0
        if last:
            self._stages.put(self._predicted, END)

    def _render(self) -> None:
        while (item := self._stages.get(self._predicted)) is not END:
            for frame, prediction in zip(*item):
                rendered = self._stage.render(frame, prediction)
                self._mark((frame,), "rendered")
                self._stages.put(self._rendered, rendered)
        self._stages.put(self._rendered, END)

    def _mark(self, frames, stage: str) -> None:
        if self._latency is not None:
            self._latency.mark(frames, stage)
