"""One video of a batch, by whichever runner claims it: the task that describes it and the run that processes it."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, replace

from streamer import typed_json
from streamer.batch.config import BatchConfig, VideoReport
from streamer.batch.state import POLL, STALE, StateStore, is_done, unchanged
from streamer.distributed.batches import SKIPPED
from streamer.distributed.jobs import DONE, FAILED, RUNNING
from streamer.errors import StreamerError
from streamer.models import Model, ModelConfig, load_model
from streamer.pipeline import Pipeline, ProcessConfig
from streamer.storage import Entry, join

log = logging.getLogger(__name__)
CREDENTIAL_WORDS = ("secret", "token", "password", "credential", "access_key", "account_key", "sas", "connection")


@dataclass
class VideoTask:
    """Everything a runner on any machine needs to process one video of a batch (travels as JSON, whole)."""

    input: str
    size: int
    version: str
    dest: str
    job: ProcessConfig  # the job every video of the batch gets; its input and output are this video's
    detections: bool = False  # also write the video's detections beside it
    stale: float = STALE
    since: float = 0.0  # a failure recorded after this is final for this batch run (not retried)

    @property
    def entry(self) -> Entry:
        return Entry(self.input, self.size, self.version)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def output(self) -> str:
        return join(self.dest, self.name)

    @property
    def storage(self) -> dict:
        return self.job.source.storage

    def to_json(self) -> str:
        return typed_json.dumps(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> VideoTask:
        return typed_json.loads(cls, text, "task")

    def process_config(self, storage: dict | None) -> ProcessConfig:
        """This video's job, with `storage` (a runner's own credentials) added to the options the task carries."""
        output = self.output
        return replace(
            self.job,
            input=self.input,
            output=output,
            overwrite=True,
            source=replace(self.job.source, storage=merged(self.storage, storage)),
            detections=detections_path(output) if self.detections else None,
        )


def make_task(config: BatchConfig, entry: Entry, since: float, storage: dict | None = None) -> VideoTask:
    """The task of one input; `storage`: the fsspec options it carries (default: the batch's own)."""
    job = config.job
    return VideoTask(
        input=entry.url,
        size=entry.size,
        version=entry.version,
        dest=config.dest,
        # threads are the machine's own: a runner elsewhere keeps its --threads
        job=replace(
            job,
            model=replace(job.model, threads=None),
            source=replace(job.source, storage=config.storage if storage is None else storage),
        ),
        detections=config.detections,
        stale=config.stale,
        since=since,
    )


def public_storage(options: dict) -> dict:
    """fsspec options without credentials (what may travel through Redis): runners bring their own."""
    kept = {}
    for key, value in options.items():
        lowered = key.lower()
        if lowered == "key" or any(word in lowered for word in CREDENTIAL_WORDS):
            continue
        kept[key] = public_storage(value) if isinstance(value, dict) else value
    return kept


def merged(base: dict, extra: dict | None) -> dict:
    result = dict(base)
    for key, value in (extra or {}).items():
        result[key] = (
            merged(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) else value
        )
    return result


_models: dict[str, Model] = {}
_models_lock = threading.Lock()


def shared_model(config: ModelConfig) -> Model:
    """One loaded model per configuration in this process, shared by its runners."""
    key = json.dumps(asdict(config), sort_keys=True, default=str)
    with _models_lock:
        if key not in _models:
            _models[key] = load_model(config)
        return _models[key]


def runner_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident() % 100000}"


def run_video(
    task: VideoTask,
    runner: str,
    model: Model | None = None,
    storage: dict | None = None,
    store: StateStore | None = None,
) -> VideoReport:
    """Claim the video and process it; returns SKIPPED when another runner finished it (waits while
    another runner's claim is alive). A failure of the video is reported, never raised."""
    options = merged(task.storage, storage)
    store = store or StateStore(task.dest, options)
    entry, name, output = task.entry, task.name, task.output
    floor = 0  # the highest attempt known to be taken, even when its state was never written
    while True:
        record = store.read(name)
        if is_done(record, entry) and store.exists(output):
            return VideoReport(entry.url, SKIPPED, output, record.get("frames", 0), record.get("seconds", 0.0))
        if unchanged(record, entry) and record.get("state") == FAILED and record.get("updated", 0) >= task.since:
            return VideoReport(entry.url, FAILED, output, reason=record.get("reason"))
        if record and record.get("state") == RUNNING and time.time() - float(record.get("heartbeat", 0)) < task.stale:
            time.sleep(min(POLL, task.stale / 4))  # another runner has it and is alive
            continue
        attempt = max(int(record.get("attempt", 0)) if record else 0, floor) + 1
        if store.create(f"{name}.{attempt}.claim", {"runner": runner, "time": time.time()}):
            break
        claimed = store.claim_time(name, attempt)
        if claimed is not None and time.time() - claimed >= task.stale:
            floor = attempt  # its runner died before writing the state: the next attempt is free
        time.sleep(min(POLL, task.stale / 4))
    return _process(task, store, runner, attempt, model, options)


def _process(task: VideoTask, store: StateStore, runner: str, attempt: int, model, options: dict) -> VideoReport:
    entry, name, output = task.entry, task.name, task.output
    base = {"input": entry.url, "size": entry.size, "version": entry.version, "output": output, "attempt": attempt}
    started = time.time()
    base["started"] = started
    progress = {"frames": 0}
    store.write(name, {**base, "state": RUNNING, "runner": runner, "heartbeat": started})
    finished = threading.Event()

    def heartbeat():
        while not finished.wait(task.stale / 4):
            try:
                current = store.read(name)
                if current and int(current.get("attempt", 0)) > attempt:
                    log.warning("%s: %s was taken over by attempt %s", runner, name, current.get("attempt"))
                    return
                store.write(
                    name,
                    {
                        **base,
                        "state": RUNNING,
                        "runner": runner,
                        "started": started,
                        "heartbeat": time.time(),
                        **progress,
                    },
                )
            except Exception as error:  # a missed heartbeat is retried on the next one
                log.warning("%s: heartbeat of %s failed: %s", runner, name, error)

    beat = threading.Thread(target=heartbeat, name=f"heartbeat-{name}", daemon=True)
    beat.start()
    clock = time.perf_counter()
    try:
        job = task.process_config(options)
        result = Pipeline(job, model or shared_model(job.model)).run(lambda done, total: progress.update(frames=done))
    except Exception as error:  # one video's failure never stops the batch
        reason = str(error) if isinstance(error, StreamerError) else f"{type(error).__name__}: {error}"
        finished.set()
        beat.join()
        seconds = round(time.perf_counter() - clock, 3)
        store.write(
            name,
            {**base, "state": FAILED, "runner": runner, "reason": reason, "seconds": seconds, "updated": time.time()},
        )
        log.warning("%s: %s", entry.url, reason)
        return VideoReport(entry.url, FAILED, output, seconds=seconds, reason=reason)
    finished.set()
    beat.join()
    record = {
        **base,
        "state": DONE,
        "runner": runner,
        "frames": result.frames,
        "seconds": round(result.seconds, 3),
        "updated": time.time(),
    }
    if result.warning:
        record["warning"] = result.warning
    store.write(name, record)
    return VideoReport(entry.url, DONE, output, result.frames, result.seconds)


def detections_path(output: str) -> str:
    """s3://b/out/a.mp4 → s3://b/out/a.jsonl: the detections sit beside their video."""
    folder, _, name = output.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{folder}/{stem}.jsonl" if folder else f"{stem}.jsonl"
