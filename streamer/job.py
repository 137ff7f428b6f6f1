"""One `streamer process` job: what to do (ProcessConfig) and what came of it (ProcessResult)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from streamer.distributed.connection import RedisConfig
from streamer.effects import EffectConfig
from streamer.errors import StreamerError
from streamer.live import LiveConfig
from streamer.models import ModelConfig
from streamer.outputs import OutputConfig
from streamer.sink import EncodeConfig
from streamer.source import SourceOptions


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
    # frames buffered between two stages: enough to keep a model call of each of two threads fed (720p at 32 took
    # 85 MB more peak memory than at 12, at the same speed, identity and unet; benchmarks/io.py)
    queue_frames: int = 12
    parallel_batches: int = 2  # embedded pipeline: model calls running at once (the model must be thread-safe)
    redis: RedisConfig | None = None  # None: the embedded pipeline; else inference goes to workers
    local_workers: int = 0  # with redis: workers this command starts and stops itself
    job: str | None = None  # with redis: the job id (default: a new one)
    detections: str | None = None  # write one JSON line of detections per frame to this file
    format: str | None = None  # container of `-` (stdout) and file outputs, as FFmpeg names it
    detections_format: str = "jsonl"  # jsonl (one line per frame) | coco (a COCO results file)
    on_frame: Callable | None = None  # Python API: called with (rendered frame, prediction) in frame order

    def output_path(self) -> Path:
        if self.output:
            return Path(self.output)
        if "://" in self.input or self.input == "-":
            raise StreamerError(f"{self.input}: a stream has no folder to write beside; give -o OUTPUT")
        source = Path(self.input)
        return source.with_name(f"{source.stem}_{self.effect.name}.mp4")

    def outputs(self) -> OutputConfig:
        primary = self.output or str(self.output_path())  # a URL stays a string: Path would fold its //
        return OutputConfig(
            targets=(primary, *self.also),
            storage=self.source.storage,
            segment=self.segment,
            hls_time=self.hls_time,
            hls_list_size=self.hls_list_size,
            overwrite=self.overwrite,
            format=self.format,
        )


@dataclass
class ProcessResult:
    """What a finished (or interrupted) job produced."""

    output: str | None
    frames: int
    seconds: float  # processing: from the first frame decoded to the last encoded
    interrupted: bool = False
    warning: str | None = None
    audio: str = "none"  # none | copied | re-encoded
    live: bool = False
    decoded: int = 0
    dropped: int = 0
    gaps: int = 0
    latency_p50: float | None = None
    latency_p95: float | None = None
    setup_seconds: float = 0.0  # before processing: opening the input, loading and warming up the model

    @property
    def total_seconds(self) -> float:
        """Wall time of the whole job."""
        return self.setup_seconds + self.seconds

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def input_fps(self) -> float:
        return self.decoded / self.seconds if self.seconds > 0 else 0.0
