"""Batch jobs: many videos from local or cloud globs into a folder or bucket prefix, resumable.

A manifest at DEST records each input (size, etag or mtime) and its state, so rerunning the
same command skips finished videos and redoes failed or interrupted ones. One bad video fails
alone; the report and the exit code say so.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from streamer.distributed.jobs import DONE, FAILED, RUNNING
from streamer.errors import StreamerError
from streamer.models import load_model
from streamer.pipeline import Pipeline, ProcessConfig
from streamer.publish import atomic_write
from streamer.storage import Entry, expand, filesystem, join

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SKIPPED = "skipped"  # besides the job states: finished by an earlier run


@dataclass
class BatchConfig:
    """The inputs, where outputs go, and the job every video gets (its input and output are filled in)."""

    inputs: list[str]
    dest: str
    job: ProcessConfig = field(default_factory=lambda: ProcessConfig(input=""))
    parallel: int = 1
    storage: dict = field(default_factory=dict)
    detections: bool = False  # also write each video's detections to <output stem>.jsonl


@dataclass
class VideoReport:
    input: str
    state: str
    output: str | None = None
    frames: int = 0
    seconds: float = 0.0
    reason: str | None = None


class Manifest:
    """DEST/manifest.json: one record per input, rewritten whole (and atomically) on every change."""

    def __init__(self, dest: str, storage: dict):
        self.fs, folder = filesystem(dest, storage)
        self.path = f"{folder.rstrip('/')}/{MANIFEST}"
        self.url, self.storage = join(dest, MANIFEST), storage
        self._lock = threading.Lock()
        self.videos: dict[str, dict] = {}
        if self.fs.exists(self.path):
            try:
                self.videos = json.loads(self.fs.cat_file(self.path))["videos"]
            except (ValueError, KeyError) as error:
                raise StreamerError(f"{dest}/{MANIFEST}: unreadable ({error}); move it away to start over") from None

    def finished(self, entry: Entry, output: str) -> bool:
        record = self.videos.get(entry.url)
        return bool(
            record
            and record["state"] == DONE
            and record["size"] == entry.size
            and record["version"] == entry.version
            and self.fs.exists(self.fs._strip_protocol(output))
        )

    def record(self, entry: Entry, **fields) -> None:
        with self._lock:
            self.videos[entry.url] = {"size": entry.size, "version": entry.version, "updated": time.time(), **fields}
            atomic_write(self.url, json.dumps({"version": 1, "videos": self.videos}, indent=1).encode(), self.storage)


def run_batch(config: BatchConfig, on_video=None) -> list[VideoReport]:
    """Process every input not already done; returns one report per input, in input order."""
    fs, folder = filesystem(config.dest, config.storage)
    fs.makedirs(folder, exist_ok=True)
    entries = expand(config.inputs, config.storage)
    names = [entry.name for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise StreamerError(
            f"several inputs are named {', '.join(duplicates)}; outputs mirror names, so batch them separately"
        )
    manifest = Manifest(config.dest, config.storage)
    todo = [entry for entry in entries if not manifest.finished(entry, join(config.dest, entry.name))]
    model = load_model(config.job.model) if todo and config.job.redis is None else None

    def one(entry: Entry) -> VideoReport:
        output = join(config.dest, entry.name)
        if entry not in todo:
            report = VideoReport(entry.url, SKIPPED, output)
        else:
            report = _process(entry, output, config, manifest, model)
        if on_video:
            on_video(report)
        return report

    with ThreadPoolExecutor(max_workers=max(1, config.parallel)) as pool:
        return list(pool.map(one, entries))


def _process(entry: Entry, output: str, config: BatchConfig, manifest: Manifest, model) -> VideoReport:
    manifest.record(entry, state=RUNNING, output=output)
    job = replace(
        config.job,
        input=entry.url,
        output=output,
        overwrite=True,
        source=replace(config.job.source, storage=config.storage),
        detections=detections_path(output) if config.detections else None,
    )
    started = time.perf_counter()
    try:
        result = Pipeline(job, model).run()
    except StreamerError as error:
        manifest.record(entry, state=FAILED, output=output, reason=str(error))
        log.warning("%s: %s", entry.url, error)
        return VideoReport(entry.url, FAILED, output, seconds=time.perf_counter() - started, reason=str(error))
    manifest.record(
        entry, state=DONE, output=output, frames=result.frames, seconds=round(result.seconds, 3), warning=result.warning
    )
    return VideoReport(entry.url, DONE, output, result.frames, result.seconds)


def detections_path(output: str) -> str:
    """s3://b/out/a.mp4 → s3://b/out/a.jsonl: the detections sit beside their video."""
    folder, _, name = output.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{folder}/{stem}.jsonl" if folder else f"{stem}.jsonl"
