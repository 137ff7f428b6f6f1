"""Batch jobs: many videos from local or cloud globs into a folder or bucket prefix, resumable, shared.

Per-video state: each input has one small object, DEST/.streamer/<name>.json (size, etag or mtime,
state, attempt, runner, heartbeat), written when its video starts, while it runs (a heartbeat), and
when it is done or failed. A runner claims a video by creating DEST/.streamer/<name>.<attempt>.claim
with a conditional create (O_EXCL on a local disk, `If-None-Match: *` on S3, exclusive create on
fsspec's memory store), so of several runners exactly one gets each attempt. Bytes written per video
stay the same however many videos a batch has. DEST/manifest.json is a summary of all state objects,
written when a batch ends and by `streamer batch --report`.

Rerunning skips done videos and redoes failed ones, interrupted ones (their heartbeat is older than
`stale` seconds) and changed ones (size or etag/mtime differ). One bad video fails alone.

Many runners: with Redis each video becomes a job on the submitted stream (one per video even when
several `streamer batch` commands enqueue the same inputs); the command's own runners and any
`streamer worker --jobs K` take them, and each decodes, infers and encodes on its own machine.
Without Redis, `shard` splits the inputs into disjoint slices stable by name.
"""

from __future__ import annotations

from streamer.batch.config import BatchConfig, VideoReport
from streamer.batch.manifest import state_progress, write_manifest
from streamer.batch.run import run_batch, shard_of
from streamer.batch.shared import run_queued
from streamer.batch.state import STALE, StateStore
from streamer.batch.task import VideoTask, make_task, runner_name
from streamer.distributed.jobs import DONE, FAILED

__all__ = [
    "DONE",
    "FAILED",
    "STALE",
    "BatchConfig",
    "StateStore",
    "VideoReport",
    "VideoTask",
    "make_task",
    "run_batch",
    "run_queued",
    "runner_name",
    "shard_of",
    "state_progress",
    "write_manifest",
]
