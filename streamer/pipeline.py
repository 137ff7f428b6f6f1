"""The embedded pipeline: decode → batch inference → render → mux/encode, all in one process.

Each stage is a thread joined to the next by a bounded queue, so the stages overlap
(PyAV, TensorFlow and OpenCV release the GIL) and memory stays flat on any length of video.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import av
import numpy as np

from streamer.effects import EffectConfig, effect_function
from streamer.errors import StreamerError
from streamer.muxer import Muxer
from streamer.sink import EncodeConfig, VideoSink, check_output, partial_path
from streamer.source import Frame, VideoSource
from workers.registry import ModelConfig, check_model_name, load_model

END = object()  # end of stream marker travelling down the queues


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
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def run(self, progress: Callable[[int, int | None], None] | None = None) -> ProcessResult:
        config = self.config
        check_model_name(config.model.name)
        render = effect_function(config.effect.name)
        output = check_output(config.output_path(), config.overwrite)
        if Path(config.input).resolve() == output.resolve():
            raise StreamerError(f"{output}: is the input too; choose another output")
        source = VideoSource(config.input)
        try:
            model = load_model(config.model)
            sink = VideoSink(
                output, source.info.width, source.info.height, source.info.rate, source.info.time_base,
                rotation=source.info.rotation, encode=config.encode, audio=source.audio,
            )
        except BaseException:
            source.close()
            raise
        muxer = Muxer(sink)
        started = time.perf_counter()
        interrupted = False
        try:
            self._run_stages(source, model, render, muxer, progress)
        except KeyboardInterrupt:
            interrupted = True
            self._stop.set()
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join()
            source.close()
        if self._errors and not interrupted:
            sink.abort()
            error = self._errors[0]
            if isinstance(error, StreamerError):
                raise error
            raise StreamerError(f"processing failed: {type(error).__name__}: {error}") from error
        if interrupted:
            written = sink.close_partial()
        else:
            muxer.finish()
            written = sink.close()
        return ProcessResult(
            output=str(written) if written else None,
            frames=sink.frames,
            seconds=time.perf_counter() - started,
            expected_frames=source.info.frames,
            interrupted=interrupted,
            warning=source.damage,
            audio="none" if sink.audio is None else ("copied" if sink.audio_copied else "re-encoded"),
        )

    def _run_stages(self, source, model, render, muxer, progress) -> None:
        config = self.config
        batch = max(1, config.model.batch_size)
        decoded: queue.Queue = queue.Queue(maxsize=max(config.queue_frames, batch))
        inferred: queue.Queue = queue.Queue(maxsize=2)
        rendered: queue.Queue = queue.Queue(maxsize=config.queue_frames)
        written = [0]

        def decode():
            for item in source.items():
                if isinstance(item, Frame):
                    self._put(decoded, item)
                else:
                    muxer.add_audio(item)
            self._put(decoded, END)

        def infer():
            while True:
                frames = self._take_batch(decoded, batch)
                if frames:
                    images = np.stack([frame.image for frame in frames])
                    self._put(inferred, (frames, model.predict(images)))
                if len(frames) < batch:
                    break
            self._put(inferred, END)

        def draw():
            while (item := self._get(inferred)) is not END:
                for frame, prediction in zip(*item):
                    self._put(rendered, (frame, render(frame.image, prediction, config.effect)))
            self._put(rendered, END)

        def encode():
            while (item := self._get(rendered)) is not END:
                frame, image = item
                written[0] += muxer.push(frame.index, frame.pts, frame.time_base, image)

        self._threads = [
            threading.Thread(target=self._guard(stage), name=stage.__name__, daemon=True)
            for stage in (decode, infer, draw, encode)
        ]
        for thread in self._threads:
            thread.start()
        encoder = self._threads[-1]
        total = source.info.frames
        while encoder.is_alive():
            encoder.join(0.1)
            if progress:
                progress(written[0], total)

    def _take_batch(self, decoded: queue.Queue, size: int) -> list[Frame]:
        """Up to `size` frames; fewer only at the end of the stream."""
        frames = []
        while len(frames) < size:
            item = self._get(decoded)
            if item is END:
                break
            frames.append(item)
        return frames

    def _put(self, target: queue.Queue, item) -> None:
        while not self._stop.is_set():
            try:
                target.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _get(self, source: queue.Queue):
        while not self._stop.is_set():
            try:
                return source.get(timeout=0.1)
            except queue.Empty:
                continue
        raise _Stopped

    def _guard(self, stage):
        def run():
            try:
                stage()
            except _Stopped:
                pass
            except BaseException as error:
                self._errors.append(error)
                self._stop.set()

        run.__name__ = stage.__name__
        return run


class _Stopped(Exception):
    """Raised inside a stage when another stage failed or the user interrupted."""
