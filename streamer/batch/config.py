"""What a batch is asked to do (BatchConfig) and what came of each video (VideoReport)."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamer.batch.state import STALE
from streamer.distributed.batches import SKIPPED
from streamer.distributed.connection import RedisConfig
from streamer.job import ProcessConfig
from streamer.storage import Entry, join


@dataclass
class BatchConfig:
    """The inputs, where outputs go, and the job every video gets (its input and output are filled in)."""

    inputs: list[str]
    dest: str
    job: ProcessConfig = field(default_factory=lambda: ProcessConfig(input=""))
    workers: int = 1  # local runners: videos processed at once by this command
    storage: dict = field(default_factory=dict)
    detections: bool = False  # also write each video's detections to <output stem>.jsonl
    shard: tuple[int, int] | None = None  # (I, N): only the I-th of N slices of the inputs, by name
    stale: float = STALE  # seconds without a heartbeat after which a running video counts as interrupted
    redis: RedisConfig | None = None  # share the batch: videos become jobs that any runner takes


@dataclass
class VideoReport:
    input: str
    state: str
    output: str | None = None
    frames: int = 0
    seconds: float = 0.0
    reason: str | None = None


def skipped_report(config: BatchConfig, entry: Entry, record: dict | None) -> VideoReport:
    """The report of a video an earlier run finished."""
    record = record or {}
    return VideoReport(
        entry.url, SKIPPED, join(config.dest, entry.name), record.get("frames", 0), record.get("seconds", 0.0)
    )
