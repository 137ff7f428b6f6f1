"""The pipeline: decode → transport (model + effect) → mux/encode.

Each stage is a thread joined to the next by a bounded queue, so the stages overlap
(PyAV, TensorFlow and OpenCV release the GIL) and memory stays flat on any length of video.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import contextlib

from streamer.distributed.connection import RedisConfig
from streamer.distributed.jobs import CANCELLED, DONE, FAILED
from streamer.effects import EffectConfig, effect_function
from streamer.errors import StreamerError
from streamer.muxer import Muxer
from streamer.sink import EncodeConfig, VideoSink, check_output
from streamer.source import Frame, VideoSource
from streamer.stages import Stages
from streamer.transports.memory import MemoryTransport
from workers.registry import ModelConfig, check_model_name, load_model


@dataclass
class ProcessConfig:
    """One `streamer process` job."""

    input: str
    output: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    effect: EffectConfig = field(default_factory=EffectConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    overwrite: bool = False
    queue_frames: int = 32  # frames buffered between two stages
    redis: RedisConfig | None = None  # None: the embedded pipeline; else inference goes to workers
    local_workers: int = 0  # with redis: workers this command starts and stops itself
    job: str | None = None  # with redis: the job id (default: a new one)

    def output_path(self) -> Path:
        if self.output:
            return Path(self.output)
        source = Path(self.input)
        return source.with_name(f"{source.stem}_{self.effect.name}.mp4")


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

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class Pipeline:
    """Runs a ProcessConfig; `progress(done, total)` is called from the caller's thread."""

    def __init__(self, config: ProcessConfig):
        self.config = config

    def run(self, progress: Callable[[int, int | None], None] | None = None) -> ProcessResult:
        config = self.config
        check_model_name(config.model.name)
        render = effect_function(config.effect.name)
        output = check_output(config.output_path(), config.overwrite)
        if Path(config.input).resolve() == output.resolve():
            raise StreamerError(f"{output}: is the input too; choose another output")
        source = VideoSource(config.input)
        stages = Stages()
        helpers = contextlib.ExitStack()
        try:
            transport = self._transport(stages, render, source, helpers)
            sink = VideoSink(
                output, source.info.width, source.info.height, source.info.rate, source.info.time_base,
                rotation=source.info.rotation, encode=config.encode, audio=source.audio,
            )
        except BaseException:
            stages.shutdown()
            source.close()
            helpers.close()
            raise
        muxer = Muxer(sink)
        started = time.perf_counter()
        interrupted = False
        try:
            self._run(stages, source, transport, muxer, progress)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            stages.shutdown()
            source.close()
        try:
            if stages.errors and not interrupted:
                sink.abort()
                error = stages.errors[0]
                transport.end(FAILED, str(error))
                if isinstance(error, StreamerError):
                    raise error
                raise StreamerError(f"processing failed: {type(error).__name__}: {error}") from error
            if interrupted:
                transport.end(CANCELLED, "interrupted")
                written = sink.close_partial()
            else:
                muxer.finish()
                written = sink.close()
                transport.end(DONE)
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
        )

    def _transport(self, stages: Stages, render, source: VideoSource, helpers: contextlib.ExitStack):
        config = self.config
        if config.redis is None:
            model = load_model(config.model)
            return MemoryTransport(stages, model, render, config.effect, config.model.batch_size, config.queue_frames)
        from streamer.distributed.connection import connect
        from streamer.distributed.jobs import JobSpec, new_job_id
        from streamer.distributed.spawn import local_workers
        from streamer.transports.redis_streams import RedisTransport

        client = connect(config.redis)
        spec = JobSpec(model=config.model.name, effect=config.effect, threshold=config.model.threshold,
                       frame_codec=config.redis.frame_codec, quality=config.redis.quality)
        if config.local_workers:
            helpers.enter_context(local_workers(config.local_workers, config.model, config.redis))
        return RedisTransport(stages, client, config.redis, config.job or new_job_id(), spec, source.info.frames)

    def _run(self, stages: Stages, source: VideoSource, transport, muxer: Muxer, progress) -> None:
        written = [0]

        def decode():
            for item in source.items():
                if isinstance(item, Frame):
                    transport.send(item)
                else:
                    muxer.add_audio(item)
            transport.close()

        def encode():
            for rendered in transport.results():
                written[0] += muxer.push(rendered.index, rendered.pts, rendered.time_base, rendered.image)

        stages.spawn("decode", decode)
        encoder = stages.spawn("encode", encode)
        total = source.info.frames
        while encoder.is_alive():
            encoder.join(0.1)
            if progress:
                progress(written[0], total)
