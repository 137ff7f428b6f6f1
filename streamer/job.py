"""The one job description (ProcessConfig), the same in every path, and what came of a job (ProcessResult).

`streamer process`, `submit`, `batch` and the Python API make a ProcessConfig; it travels through Redis
whole (streamer.typed_json, over its fields) to the runner that decodes and muxes it and to the workers that
render its frames, so what runs is what was asked. Fields marked LOCAL stay in the process that made them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from streamer.distributed.connection import CODECS, RedisConfig
from streamer.effects import EffectConfig
from streamer.errors import StreamerError
from streamer.models import ModelConfig
from streamer.options import EncodeConfig, LiveConfig, OutputConfig, SourceOptions
from streamer.typed_json import LOCAL


@dataclass
class ProcessConfig:
    """One job: what to read, which model and effect, how to encode, where to write."""

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
    parallel_batches: int = 2  # model calls running at once (a model that is not thread-safe gets one per thread)
    detections: str | None = None  # write one JSON line of detections per frame to this file
    format: str | None = None  # container of `-` (stdout) and file outputs, as FFmpeg names it
    detections_format: str = "jsonl"  # jsonl (one line per frame) | coco (a COCO results file)
    frame_codec: str = "raw"  # how frames travel over Redis: raw (lossless) | png | jpeg | webp
    frame_quality: int = 90  # jpeg/webp quality of frames over Redis
    redis: RedisConfig | None = field(default=None, metadata=LOCAL)  # None: the embedded pipeline
    local_workers: int = field(default=0, metadata=LOCAL)  # with redis: workers this command starts and stops
    job: str | None = field(default=None, metadata=LOCAL)  # with redis: the job id (default: a new one)
    # Python API: called with (rendered frame, prediction) in frame order
    on_frame: Callable | None = field(default=None, metadata=LOCAL)

    def __post_init__(self) -> None:
        """Bounds of the values a job from elsewhere (Redis) could carry; the CLI's own checks come first."""
        for name, value, low, high in (
            ("queue_frames", self.queue_frames, 1, 4096),
            ("parallel_batches", self.parallel_batches, 1, 64),
            ("frame_quality", self.frame_quality, 1, 100),
            ("local_workers", self.local_workers, 0, 256),
            ("hls_list_size", self.hls_list_size, 0, 100_000),
        ):
            if not low <= value <= high:
                option = "--" + name.replace("_", "-").replace("frame-quality", "quality")
                raise StreamerError(f"{option} {value}: must be between {low} and {high}")
        if self.frame_codec not in CODECS:
            raise StreamerError(f"--frame-codec {self.frame_codec}: choose one of {', '.join(CODECS)}")
        if not 0 < self.hls_time <= 3600 or (self.segment is not None and not 0 < self.segment <= 366 * 86400):
            raise StreamerError("--segment and --hls-time: give a positive duration")

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
    precision: dict | None = None  # what --precision auto measured and chose, when the model here measured it

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
