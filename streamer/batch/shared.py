"""A batch shared through Redis: each video becomes a job on the submitted stream, taken by any runner."""

from __future__ import annotations

import json
import logging
import threading
import time

import redis

from streamer.batch.config import BatchConfig, VideoReport, skipped_report
from streamer.batch.state import POLL, StateStore, batch_id
from streamer.batch.task import VideoTask, make_task, merged, public_storage, run_video
from streamer.distributed.batches import SKIPPED
from streamer.distributed.confine import Confinement
from streamer.distributed.connection import Keys, RedisConfig, connect
from streamer.distributed.jobs import (
    DONE,
    FAILED,
    FINAL,
    RUNNING,
    JobSpec,
    JobStore,
    enqueue,
    new_job_id,
    record_queued,
)
from streamer.errors import StreamerError
from streamer.storage import GLOB_CHARS, Entry, join

log = logging.getLogger(__name__)


class BatchKeys:
    """The Redis keys of one batch (named by its destination, so every command over it shares them)."""

    def __init__(self, namespace: str, dest: str):
        self.ns = namespace
        self.id = batch_id(dest)
        self.index = f"{namespace}:batches"
        self.record = f"{namespace}:batch:{self.id}"
        self.queued = f"{self.record}:queued"  # video name → its job id, while the job is queued or running
        self.videos = f"{self.record}:videos"  # video name → its last state (JSON)


def run_shared(config: BatchConfig, entries, done, states, since, on_video, runners=None) -> list[VideoReport]:
    """Queue every video left as a job and wait for them all; `runners(stop)` starts this command's own runners
    (a streamer.service.pool.RunnerPool), which take jobs until `stop` is set."""
    client = connect(config.redis)
    keys = BatchKeys(config.redis.namespace, config.dest)
    jobs = JobStore(client, Keys(config.redis.namespace))
    pipe = client.pipeline()
    if not client.hlen(keys.queued):  # a new run of this batch: its counters start again
        pipe.hset(keys.record, mapping={"started": time.time(), "frames": 0, "processed": 0})
    pipe.hset(keys.record, mapping={"dest": config.dest, "total": len(entries), "updated": time.time()})
    pipe.zadd(keys.index, {keys.id: time.time()})
    for entry in entries:
        if entry.name in done:
            record = states.get(entry.name) or {}
            pipe.hset(keys.videos, entry.name, json.dumps({"state": SKIPPED, "frames": record.get("frames", 0)}))
    pipe.execute()

    waiting: dict[str, str] = {}  # video name → job id
    for entry in entries:
        if entry.name in done:
            continue
        task = make_task(config, entry, since, storage=public_storage(config.storage))
        job, spec = new_job_id(), JobSpec.of(task.process_config(None))
        # the record first, then the claim: a claim always names a job whose record exists (until it expires), so
        # another command that finds the claim taken can tell a live job from an expired one
        record_queued(client, config.redis, job, spec)
        if not client.hsetnx(keys.queued, entry.name, job):
            other = client.hget(keys.queued, entry.name)
            if other and jobs.state(other.decode()) is not None:
                jobs.forget(job)
                waiting[entry.name] = other.decode()  # another command queued it: wait for that job
                continue
            client.hset(keys.queued, entry.name, job)  # its job record expired: queue it again
        enqueue(client, config.redis, job, spec, task.to_json())
        waiting[entry.name] = job

    stop = threading.Event()
    pool = runners(stop) if runners and config.workers else None
    reports: dict[str, VideoReport] = {}
    for entry in entries:
        if entry.name in done:
            reports[entry.name] = skipped_report(config, entry, states.get(entry.name))
            if on_video:
                on_video(reports[entry.name])
    try:
        while len(reports) < len(entries):
            for entry in entries:
                if entry.name in reports:
                    continue
                record = jobs.get(waiting[entry.name])
                if record is None or record.get("state") in FINAL:
                    reports[entry.name] = _job_report(config, entry, record)
                    if on_video:
                        on_video(reports[entry.name])
            if len(reports) < len(entries):
                time.sleep(POLL)
    finally:
        stop.set()
        if pool is not None:
            pool.join(timeout=max(30.0, config.stale))
    return [reports[entry.name] for entry in entries]


def confinement(config: BatchConfig) -> Confinement:
    """What this batch's own runners may read and write: its inputs' folders and DEST."""
    folders = []
    for pattern in config.inputs:
        cut = min((pattern.find(char) for char in GLOB_CHARS if char in pattern), default=len(pattern))
        head = pattern[:cut]
        folders.append(head.rsplit("/", 1)[0] + "/" if "/" in head else ".")
    return Confinement(inputs=folders, outputs=[config.dest.rstrip("/") + "/" if "://" in config.dest else config.dest])


def _job_report(config: BatchConfig, entry: Entry, record: dict | None) -> VideoReport:
    output = join(config.dest, entry.name)
    if record is None:
        return VideoReport(entry.url, FAILED, output, reason="its job record expired before it finished")
    state = DONE if record.get("state") == DONE else FAILED
    return VideoReport(
        entry.url,
        state,
        output,
        int(record.get("frames") or 0),
        float(record.get("seconds") or 0.0),
        (record.get("reason") or None) if state == FAILED else None,
    )


def run_queued(
    client: redis.Redis,
    config: RedisConfig,
    job: str,
    task_json: str,
    runner: str,
    storage: dict | None,
    confinement: Confinement | None = None,
) -> VideoReport:
    """A runner's part for one batch job taken from Redis: the video, then the job and batch records.
    `confinement`: what this runner may read and write (a video outside it fails, untouched)."""
    task = VideoTask.from_json(task_json)
    jobs = JobStore(client, Keys(config.namespace))
    jobs.update(job, state=RUNNING, runner=runner, started=time.time())
    try:
        if confinement is not None:  # before anything touches the input, the model's files or DEST
            confinement.check_job(task.process_config(None))
    except StreamerError as error:
        log.warning("%s: %s", runner, error)
        report = VideoReport(task.input, FAILED, task.output, reason=str(error))
    else:
        store = StateStore(task.dest, merged(task.storage, storage), client, config.namespace)
        report = run_video(task, runner, storage=storage, store=store)
    state = FAILED if report.state == FAILED else DONE
    jobs.finish(
        job,
        state,
        config.job_ttl,
        report.reason or "",
        frames=report.frames,
        seconds=round(report.seconds, 3),
        total=report.frames,
        done=report.frames,
    )
    keys = BatchKeys(config.namespace, task.dest)
    pipe = client.pipeline()
    pipe.hset(
        keys.videos,
        task.name,
        json.dumps({"state": report.state if report.state != SKIPPED else DONE, "frames": report.frames}),
    )
    if report.state != SKIPPED:
        pipe.hincrby(keys.record, "frames", report.frames)
        pipe.hincrby(keys.record, "processed", 1)
    pipe.hset(keys.record, "updated", time.time())
    pipe.execute()
    if client.hget(keys.queued, task.name) == job.encode():
        client.hdel(keys.queued, task.name)
    return report
