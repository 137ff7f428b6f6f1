"""The pipeline: decode → transport (render stage) → mux/encode, one thread per stage.

Stages are joined by bounded queues, so they overlap (PyAV, TensorFlow and OpenCV release the
GIL) and memory stays flat on any length of video. A live input drops frames by policy in front
of the transport, so latency stays bounded. The parts come from `streamer.build`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable

from streamer.build import Parts, build
from streamer.distributed.jobs import CANCELLED, DONE, FAILED
from streamer.errors import RunFailed, StreamerError
from streamer.frames import Frame
from streamer.job import ProcessConfig, ProcessResult
from streamer.live import Latency, SourceLost
from streamer.metrics import Metrics
from streamer.models import Model
from streamer.stages import END, Stages

__all__ = ["Pipeline", "ProcessConfig", "ProcessResult"]

log = logging.getLogger(__name__)


class Pipeline:
    """Runs a ProcessConfig; `progress(done, total)` is called from the caller's thread."""

    def __init__(
        self, config: ProcessConfig, model: Model | None = None, metrics: Metrics | None = None, write: bool = True
    ):
        """`model`: an already loaded model to use instead of loading one (batches share one). `write=False`: no
        output, no effect drawn; the frames and their predictions go to `config.on_frame` (streamer.frames)."""
        self.config = config
        self.model = model
        self.write = write
        self._stages: Stages | None = None
        self._stopped = False
        self.metrics = metrics or Metrics()
        self.decoded = 0
        self.latency: Latency | None = None  # arrival → encoded, with its parts, once running

    def run(self, progress: Callable[[int, int | None], None] | None = None) -> ProcessResult:
        self._began = time.perf_counter()
        stages = self._stages = Stages()
        if self._stopped:
            stages.stop.set()
        helpers = contextlib.ExitStack()
        phase = getattr(progress, "phase", lambda name: None)
        try:
            parts = build(self.config, stages, helpers, self.metrics, self.model, phase, self.write)
        except BaseException:
            helpers.close()
            raise
        latency = self.latency = parts.latency
        started = time.perf_counter()
        phase("processing")
        interrupted = False
        try:
            self._wire(stages, parts, latency, progress)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            interrupted = interrupted or self._stopped
            stages.stop.set()
            parts.source.stop()
            stages.shutdown()
            parts.source.close()
        try:
            written = self._conclude(stages.errors, interrupted, parts)
        finally:
            helpers.close()
        sink = parts.sink
        return ProcessResult(
            output=str(written) if written else None,
            frames=sink.frames,
            seconds=time.perf_counter() - started,
            setup_seconds=started - self._began,
            interrupted=interrupted,
            warning=parts.source.damage,
            audio="none" if sink.audio is None else ("copied" if sink.audio_copied else "re-encoded"),
            live=parts.policy.live,
            decoded=self.decoded,
            dropped=parts.drops.dropped,
            gaps=getattr(parts.source, "gaps", 0),
            latency_p50=latency.percentile(50),
            latency_p95=latency.percentile(95),
            precision=_precision_of(getattr(parts.transport, "model", None)),
        )

    @property
    def stopped(self) -> bool:
        """Whether `stop` was called."""
        return self._stopped

    def stop(self) -> None:
        """Stop a running job from another thread, as Ctrl-C does."""
        self._stopped = True
        if self._stages is not None:
            self._stages.stop.set()

    def _conclude(self, errors: list[BaseException], interrupted: bool, parts: Parts):
        """Publish, keep partly or remove the outputs, as the way the job ended calls for; returns what was written."""
        sink, muxer, transport, detections = parts.sink, parts.muxer, parts.transport, parts.detections
        if errors and not interrupted:
            error = errors[0]
            self.metrics.errors.labels(type(error).__name__).inc()
            transport.end(FAILED, str(error))
            if isinstance(error, SourceLost):  # a live recording up to the loss is worth keeping
                muxer.finish()
                kept = sink.close()
                if detections:
                    detections.close()
                raise SourceLost(f"{error}; kept what was recorded in {kept}")
            sink.abort()
            if detections:
                detections.abort()
            if isinstance(error, StreamerError):
                raise error
            raise RunFailed(f"processing failed: {type(error).__name__}: {error}") from error
        if interrupted and not parts.policy.live:
            transport.end(CANCELLED, "interrupted")
            written = sink.close_partial()
        else:  # a live stream ends when it is stopped: its outputs are whole
            muxer.finish()
            written = sink.close()
            transport.end(DONE)
        if detections:
            detections.close()
        return written

    def _wire(self, stages: Stages, parts: Parts, latency: Latency, progress) -> None:
        """decode → (drop policy) → feed → transport → encode, each on its own thread."""
        source, drops, transport, muxer = parts.source, parts.drops, parts.transport, parts.muxer
        metrics = self.metrics
        written = [0]

        def decode():
            items = source.items()
            while True:
                with metrics.timed("decode"):
                    item = next(items, END)
                if item is END:
                    break
                if isinstance(item, Frame):
                    self.decoded += 1
                    metrics.frames_in.inc()
                    drops.put((item, time.monotonic()))
                else:
                    muxer.add_audio(item)
            drops.put(END, droppable=False)

        def feed():
            """Number the frames that survived the drop policy, so the muxer sees no gap."""
            index = 0
            ready = getattr(transport, "ready", None)  # live, in process: the model takes the newest frame
            while True:
                if ready is not None:
                    ready()
                if (item := drops.get()) is END:
                    break
                frame, arrived = item
                metrics.stage_seconds.labels("queue").observe(time.monotonic() - arrived)
                latency.arrived(index, arrived)
                transport.send(frame.numbered(index))
                index += 1
            transport.close()

        def encode():
            for rendered in transport.results():
                with metrics.timed("encode"):
                    count = muxer.push(rendered)
                if count and not written[0]:
                    log.info("first frame encoded %.2f s after the job started", time.perf_counter() - self._began)
                written[0] += count
                metrics.wrote(count)
                latency.written(rendered.index)

        stages.spawn("decode", decode)
        stages.spawn("feed", feed)
        encoder = stages.spawn("encode", encode)
        total = source.info.frames
        while encoder.is_alive():
            encoder.join(0.1)
            metrics.queue_depth.labels("decoded").set(len(drops))
            for name, depth in transport.depths().items():
                metrics.queue_depth.labels(name).set(depth)
            if progress:
                progress(written[0], total)


def _precision_of(model) -> dict | None:
    """What a model's `--precision auto` measured and chose (its `precision_choice`), as plain data."""
    choice = getattr(model, "precision_choice", None)
    return dataclasses.asdict(choice) if dataclasses.is_dataclass(choice) else None
