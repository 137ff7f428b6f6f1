"""The pipeline: decode → transport (model + effect) → mux/encode.

Each stage is a thread joined to the next by a bounded queue, so the stages overlap
(PyAV, TensorFlow and OpenCV release the GIL) and memory stays flat on any length of video.
A live input drops frames by policy in front of the transport, so latency stays bounded.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from streamer.detections import DetectionsWriter
from streamer.distributed.connection import RedisConfig
from streamer.distributed.jobs import CANCELLED, DONE, FAILED
from streamer.effects import EffectConfig, effect_function
from streamer.errors import StreamerError
from streamer.metrics import Metrics
from streamer.live import DropQueue, Latency, LiveConfig, LiveSource, SourceLost
from streamer.muxer import Muxer
from streamer.outputs import OutputConfig, Stream, check_outputs, open_outputs
from streamer.sink import EncodeConfig
from streamer.source import Frame, SourceOptions, VideoSource
from streamer.stages import END, Stages
from streamer.transports.memory import MemoryTransport
from streamer.models import ModelConfig, check_model_name, load_model


@dataclass
class ProcessConfig:
    """One `streamer process` job."""

    input: str
    output: str | None = None  # default: <stem>_<effect>.mp4 beside the input
    also: tuple[str, ...] = ()  # more outputs written at the same time
    model: ModelConfig = field(default_factory=ModelConfig)
    effect: EffectConfig = field(default_factory=EffectConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    overwrite: bool = False
    segment: float | None = None  # split file outputs every N seconds
    hls_time: float = 2.0
    hls_list_size: int = 6
    source: SourceOptions = field(default_factory=SourceOptions)
    live: LiveConfig = field(default_factory=LiveConfig)
    queue_frames: int = 32  # frames buffered between two stages
    parallel_batches: int = 2  # embedded pipeline: model calls running at once (the model must be thread-safe)
    redis: RedisConfig | None = None  # None: the embedded pipeline; else inference goes to workers
    local_workers: int = 0  # with redis: workers this command starts and stops itself
    job: str | None = None  # with redis: the job id (default: a new one)
    detections: str | None = None  # write one JSON line of detections per frame to this file

    def output_path(self) -> Path:
        if self.output:
            return Path(self.output)
        if "://" in self.input:
            raise StreamerError(f"{self.input}: a stream has no folder to write beside; give -o OUTPUT")
        source = Path(self.input)
        return source.with_name(f"{source.stem}_{self.effect.name}.mp4")

    def outputs(self) -> OutputConfig:
        primary = self.output or str(self.output_path())  # a URL stays a string: Path would fold its //
        return OutputConfig(targets=(primary, *self.also), storage=self.source.storage, segment=self.segment,
                            hls_time=self.hls_time, hls_list_size=self.hls_list_size, overwrite=self.overwrite)


@dataclass
class ProcessResult:
    """What a finished (or interrupted) job produced."""

    output: str | None
    frames: int
    seconds: float
    expected_frames: int | None = None
    interrupted: bool = False
    warning: str | None = None
    audio: str = "none"  # none | copied | re-encoded
    live: bool = False
    decoded: int = 0
    dropped: int = 0
    gaps: int = 0
    latency_p50: float | None = None
    latency_p95: float | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def input_fps(self) -> float:
        return self.decoded / self.seconds if self.seconds > 0 else 0.0


class Pipeline:
    """Runs a ProcessConfig; `progress(done, total)` is called from the caller's thread."""

    def __init__(self, config: ProcessConfig, model=None, metrics: Metrics | None = None):
        """`model`: an already loaded model to use instead of loading one (batches share one)."""
        self.config = config
        self.model = model
        self.metrics = metrics or Metrics()
        self.decoded = 0

    def run(self, progress: Callable[[int, int | None], None] | None = None) -> ProcessResult:
        config = self.config
        check_model_name(config.model.name)
        render = effect_function(config.effect.name)
        outputs = config.outputs()
        check_outputs(outputs)
        if config.detections:
            check_outputs(replace(outputs, targets=(config.detections,), segment=None))
        if "://" not in config.input and any(Path(config.input).resolve() == Path(target).resolve()
                                             for target in outputs.targets if "://" not in target):
            raise StreamerError(f"{config.input}: is an output too; choose another output")
        source = self._open_source()
        # a live input keeps only a couple of batches in hand, so falling behind drops frames, not seconds
        depth = 2 * config.model.batch_size if source.info.live else config.queue_frames
        stages = Stages()
        helpers = contextlib.ExitStack()
        try:
            transport = self._transport(stages, render, source, helpers, depth)
            info = source.info
            stream = Stream(info.width, info.height, info.rate, info.time_base, info.rotation)
            sink = open_outputs(outputs, stream, self._encoding(info), source.audio)
        except BaseException:
            stages.shutdown()
            source.close()
            helpers.close()
            raise
        detections = DetectionsWriter(config.detections, config.source.storage) if config.detections else None
        # room for every batch that can finish ahead of an earlier one
        muxer = Muxer(sink, capacity=max(256, config.model.batch_size * config.parallel_batches), detections=detections)
        drops = DropQueue(depth, config.live.drop if source.info.live else "none", stages.stop,
                          self.metrics.dropped.inc)
        latency = Latency()
        started = time.perf_counter()
        interrupted = False
        try:
            self._run(stages, source, drops, transport, muxer, latency, progress)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            stages.stop.set()
            source.stop()
            stages.shutdown()
            source.close()
        try:
            written = self._conclude(stages.errors, interrupted, source.info.live, sink, muxer, transport, detections)
        finally:
            helpers.close()
        return ProcessResult(
            output=str(written) if written else None,
            frames=sink.frames,
            seconds=time.perf_counter() - started,
            expected_frames=source.info.frames,
            interrupted=interrupted,
            warning=source.damage,
            audio="none" if sink.audio is None else ("copied" if sink.audio_copied else "re-encoded"),
            live=source.info.live,
            decoded=self.decoded,
            dropped=drops.dropped,
            gaps=getattr(source, "gaps", 0),
            latency_p50=latency.percentile(50),
            latency_p95=latency.percentile(95),
        )

    def _conclude(self, errors, interrupted: bool, live: bool, sink, muxer: Muxer, transport, detections):
        """Publish, keep partly or remove the outputs, as the way the job ended calls for; returns what was written."""
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
            raise StreamerError(f"processing failed: {type(error).__name__}: {error}") from error
        if interrupted and not live:
            transport.end(CANCELLED, "interrupted")
            written = sink.close_partial()
        else:  # a live stream ends when it is stopped: its outputs are whole
            muxer.finish()
            written = sink.close()
            transport.end(DONE)
        if detections:
            detections.close()
        return written

    def _open_source(self):
        source = VideoSource(self.config.input, self.config.source)
        return LiveSource(source, self.config.live) if source.info.live else source

    def _encoding(self, info) -> EncodeConfig:
        """Live outputs need low latency and regular keyframes for viewers who join mid-stream."""
        encode = self.config.encode
        if info.live:
            gop = encode.gop or max(1, round(2 * float(info.rate)))
            return replace(encode, tune=encode.tune or "zerolatency", gop=gop)
        return encode

    def _transport(self, stages: Stages, render, source, helpers: contextlib.ExitStack, depth: int):
        config = self.config
        if config.redis is None:
            model = self.model or load_model(config.model)
            return MemoryTransport(stages, model, render, config.effect, config.model.batch_size, depth, self.metrics,
                                   detections=bool(config.detections), parallel=config.parallel_batches)
        from streamer.distributed.connection import connect
        from streamer.distributed.jobs import JobSpec, new_job_id
        from streamer.distributed.spawn import local_workers
        from streamer.transports.redis_streams import RedisTransport

        client = connect(config.redis)
        spec = JobSpec(model=config.model.name, effect=config.effect, threshold=config.model.threshold,
                       frame_codec=config.redis.frame_codec, quality=config.redis.quality,
                       detections=bool(config.detections))
        if config.local_workers:
            helpers.enter_context(local_workers(config.local_workers, config.model, config.redis))
        return RedisTransport(stages, client, config.redis, config.job or new_job_id(), spec, source.info.frames)

    def _run(self, stages: Stages, source, drops: DropQueue, transport, muxer: Muxer, latency: Latency,
             progress) -> None:
        written = [0]

        metrics = self.metrics

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
            while (item := drops.get()) is not END:
                frame, arrived = item
                metrics.stage_seconds.labels("queue").observe(time.monotonic() - arrived)
                latency.arrived(index, arrived)
                transport.send(Frame(index, frame.pts, frame.time_base, frame.image))
                index += 1
            transport.close()

        def encode():
            for rendered in transport.results():
                with metrics.timed("encode"):
                    count = muxer.push(rendered.index, rendered.pts, rendered.time_base, rendered.image,
                                       rendered.detections)
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
