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

import hashlib
import json
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace

import redis

from streamer.distributed.batches import SKIPPED
from streamer.distributed.confine import Confinement
from streamer.distributed.connection import RedisConfig, connect
from streamer.distributed.jobs import DONE, FAILED, FINAL, RUNNING, JobSpec, JobStore, new_job_id
from streamer.effects import EffectConfig
from streamer.errors import StreamerError
from streamer.models import Model, ModelConfig, load_model
from streamer.pipeline import Pipeline, ProcessConfig
from streamer.publish import atomic_write
from streamer.sink import EncodeConfig
from streamer.storage import GLOB_CHARS, Entry, expand, filesystem, is_remote, join

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STATE_FOLDER = ".streamer"
STALE = 60.0
POLL = 0.5
CREDENTIAL_WORDS = ("secret", "token", "password", "credential", "access_key", "account_key", "sas", "connection")


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


# ---------------------------------------------------------------------------------------------------
# per-video state


class StateStore:
    """DEST/.streamer/: one state object and a few claim objects per input; counts the bytes it writes."""

    def __init__(self, dest: str, storage: dict | None = None, locks: redis.Redis | None = None, namespace: str = ""):
        """`locks`: a Redis that makes claims exclusive on stores without a conditional create."""
        self.dest, self.storage = dest, storage or {}
        self.locks, self.namespace = locks, namespace
        self.fs, folder = filesystem(dest, self.storage)
        self.remote = is_remote(dest)
        self.folder = f"{folder.rstrip('/')}/{STATE_FOLDER}" if self.remote else os.path.join(folder, STATE_FOLDER)
        self.written = 0
        self._lock = threading.Lock()
        if not self.remote or not _object_store(self.fs):
            self.fs.makedirs(self.folder, exist_ok=True)

    def _path(self, file: str) -> str:
        return f"{self.folder}/{file}"

    def _cat(self, path: str) -> bytes:
        """The object as it is now (s3fs answers sizes from a cached listing of the folder)."""
        if self.remote:
            self.fs.invalidate_cache(path)
        return self.fs.cat_file(path)

    def read(self, name: str) -> dict | None:
        try:
            return json.loads(self._cat(self._path(f"{name}.json")))
        except FileNotFoundError:
            return None
        except ValueError:  # a torn or foreign file: treat as an interrupted run
            return {"state": RUNNING, "attempt": 0, "heartbeat": 0}

    def read_all(self) -> dict[str, dict]:
        """Every state object, by input name (one listing and one batched read)."""
        if self.remote:
            self.fs.invalidate_cache(self.folder)
        try:
            paths = [path for path in self.fs.ls(self.folder, detail=False) if path.endswith(".json")]
        except FileNotFoundError:
            return {}
        records: dict[str, dict] = {}
        if not paths:
            return records
        for path, data in self.fs.cat(paths, on_error="omit").items():
            try:
                records[path.rsplit("/", 1)[-1].removesuffix(".json")] = json.loads(data)
            except ValueError:
                continue
        return records

    def write(self, name: str, record: dict) -> None:
        data = json.dumps(record, separators=(",", ":")).encode()
        atomic_write(join(self.dest, f"{STATE_FOLDER}/{name}.json"), data, self.storage)
        with self._lock:
            self.written += len(data)

    def create(self, file: str, record: dict) -> bool:
        """Create `file` only if it does not exist yet; False when another runner made it first."""
        data = json.dumps(record, separators=(",", ":")).encode()
        path = self._path(file)
        try:
            if not self.remote:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(descriptor, "wb") as out:
                    out.write(data)
            elif _conditional(self.fs) or self.locks is None:
                self.fs.pipe_file(path, data, mode="create")  # S3: If-None-Match: *; memory: exclusive open
            else:  # a store without a conditional create (fsspec checks, then writes): a Redis lock decides
                lock = f"{self.namespace}:claim:{batch_id(self.dest)}:{file}"
                if not self.locks.set(lock, data, nx=True, ex=30 * 24 * 3600):
                    return False
                self.fs.pipe_file(path, data)
        except FileExistsError:
            return False
        except OSError as error:
            raise StreamerError(
                f"{self.dest}: cannot write {STATE_FOLDER}/{file} ({error}); check permissions"
            ) from None
        with self._lock:
            self.written += len(data)
        return True

    def claim_time(self, name: str, attempt: int) -> float | None:
        try:
            return float(json.loads(self._cat(self._path(f"{name}.{attempt}.claim")))["time"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def exists(self, url: str) -> bool:
        fs, path = filesystem(url, self.storage)
        if self.remote:
            fs.invalidate_cache(path)
        return fs.exists(path)


def _conditional(fs) -> bool:
    """Stores whose exclusive create is atomic: S3 (If-None-Match: *) and fsspec's memory store."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return any(protocol in ("s3", "s3a", "memory") for protocol in protocols)


def _object_store(fs) -> bool:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return not any(protocol in ("file", "local", "memory") for protocol in protocols)


def unchanged(record: dict | None, entry: Entry) -> bool:
    return bool(record) and record.get("size") == entry.size and record.get("version") == entry.version


def is_done(record: dict | None, entry: Entry) -> bool:
    return unchanged(record, entry) and record.get("state") == DONE


# ---------------------------------------------------------------------------------------------------
# one video, by whichever runner claims it


@dataclass
class VideoTask:
    """Everything a runner on any machine needs to process one video of a batch (travels as JSON)."""

    input: str
    size: int
    version: str
    dest: str
    model: dict
    effect: dict
    encode: dict
    parallel_batches: int = 2
    detections: bool = False
    storage: dict = field(default_factory=dict)
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

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> VideoTask:
        return cls(**json.loads(text))

    def process_config(self, storage: dict) -> ProcessConfig:
        effect = dict(self.effect)
        effect["color"] = tuple(effect.get("color", EffectConfig.color))
        for key in ("classes", "class_names"):
            if effect.get(key) is not None:
                effect[key] = tuple(effect[key])
        output = self.output
        base = ProcessConfig(input=self.input)
        return replace(
            base,
            output=output,
            overwrite=True,
            model=ModelConfig(**self.model),
            effect=EffectConfig(**effect),
            encode=EncodeConfig(**self.encode),
            parallel_batches=self.parallel_batches,
            source=replace(base.source, storage=storage),
            detections=detections_path(output) if self.detections else None,
        )


def make_task(config: BatchConfig, entry: Entry, since: float) -> VideoTask:
    return VideoTask(
        input=entry.url,
        size=entry.size,
        version=entry.version,
        dest=config.dest,
        # threads are the machine's own: a runner elsewhere keeps its --threads
        model={key: value for key, value in asdict(config.job.model).items() if key != "threads"},
        effect=asdict(config.job.effect),
        encode=asdict(config.job.encode),
        parallel_batches=config.job.parallel_batches,
        detections=config.detections,
        storage=config.storage,
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


# ---------------------------------------------------------------------------------------------------
# the batch command


def shard_of(name: str, count: int) -> int:
    """The slice (0..count-1) an input belongs to: stable by its name, whatever the other inputs."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") % count


def inputs(config: BatchConfig) -> list[Entry]:
    entries = expand(config.inputs, config.storage)
    names = [entry.name for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise StreamerError(
            f"several inputs are named {', '.join(duplicates)}; outputs mirror names, so batch them separately"
        )
    if config.shard:
        index, count = config.shard
        entries = [entry for entry in entries if shard_of(entry.name, count) == index]
    return entries


def _legacy_done(config: BatchConfig, store: StateStore) -> dict[str, dict]:
    """Records of a manifest written before per-video state existed (so an old batch still resumes)."""
    fs, folder = filesystem(config.dest, config.storage)
    path = f"{folder.rstrip('/')}/{MANIFEST}"
    try:
        data = json.loads(fs.cat_file(path))
    except (FileNotFoundError, ValueError):
        return {}
    if data.get("version") != 1:
        return {}
    return {url.rstrip("/").rsplit("/", 1)[-1]: record for url, record in data.get("videos", {}).items()}


def _outputs(config: BatchConfig) -> set[str]:
    """Names of the files at DEST (one listing)."""
    fs, folder = filesystem(config.dest, config.storage)
    if is_remote(config.dest):
        fs.invalidate_cache(folder)
    try:
        return {path.rstrip("/").rsplit("/", 1)[-1] for path in fs.ls(folder, detail=False)}
    except FileNotFoundError:
        return set()


def plan(config: BatchConfig, store: StateStore) -> tuple[list[Entry], set[str], dict[str, dict]]:
    """(entries, names already done, their records)."""
    entries = inputs(config)
    states = store.read_all()
    legacy = _legacy_done(config, store) if not states else {}
    candidates = [e for e in entries if is_done(states.get(e.name) or legacy.get(e.name), e)]
    present = _outputs(config) if candidates else set()
    done = {entry.name for entry in candidates if entry.name in present}
    return entries, done, states


def run_batch(config: BatchConfig, on_video=None) -> list[VideoReport]:
    """Process every input not already done; returns one report per input, in input order."""
    store = StateStore(config.dest, config.storage)
    fs, folder = filesystem(config.dest, config.storage)
    if not store.remote or not _object_store(fs):
        fs.makedirs(folder, exist_ok=True)
    entries, done, states = plan(config, store)
    since = time.time()
    if config.redis is not None:
        reports = _run_shared(config, entries, done, states, since, on_video)
    else:
        reports = _run_local(config, store, entries, done, states, since, on_video)
    write_manifest(config.dest, config.storage)
    return reports


def _skipped(config: BatchConfig, entry: Entry, record: dict | None) -> VideoReport:
    record = record or {}
    return VideoReport(
        entry.url, SKIPPED, join(config.dest, entry.name), record.get("frames", 0), record.get("seconds", 0.0)
    )


def _run_local(config, store, entries, done, states, since, on_video) -> list[VideoReport]:
    todo = [entry for entry in entries if entry.name not in done]
    model = load_model(config.job.model) if todo else None

    def one(entry: Entry) -> VideoReport:
        if entry.name in done:
            report = _skipped(config, entry, states.get(entry.name))
        else:
            report = run_video(make_task(config, entry, since), runner_name(), model, config.storage, store)
        if on_video:
            on_video(report)
        return report

    with ThreadPoolExecutor(max_workers=max(1, config.workers)) as pool:
        return list(pool.map(one, entries))


# ---------------------------------------------------------------------------------------------------
# a batch shared through Redis


class BatchKeys:
    """The Redis keys of one batch (named by its destination, so every command over it shares them)."""

    def __init__(self, namespace: str, dest: str):
        self.ns = namespace
        self.id = batch_id(dest)
        self.index = f"{namespace}:batches"
        self.record = f"{namespace}:batch:{self.id}"
        self.queued = f"{self.record}:queued"  # video name → its job id, while the job is queued or running
        self.videos = f"{self.record}:videos"  # video name → its last state (JSON)


def batch_id(dest: str) -> str:
    return hashlib.sha1(dest.rstrip("/").encode()).hexdigest()[:12]


def _run_shared(config, entries, done, states, since, on_video) -> list[VideoReport]:
    from streamer.distributed.jobs import submit
    from streamer.distributed.runner import Runner

    client = connect(config.redis)
    keys = BatchKeys(config.redis.namespace, config.dest)
    jobs = JobStore(client, _keys(config.redis))
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

    model = config.job.model
    spec = JobSpec(
        model=model.name,
        effect=config.job.effect,
        threshold=model.threshold,
        weights=model.weights,
        settings=model.all_settings(),
        class_names=list(model.class_names) if model.class_names else None,
    )
    waiting: dict[str, str] = {}  # video name → job id
    for entry in entries:
        if entry.name in done:
            continue
        task = make_task(config, entry, since)
        task.storage = public_storage(config.storage)
        job = new_job_id()
        if not client.hsetnx(keys.queued, entry.name, job):
            other = client.hget(keys.queued, entry.name)
            if other and jobs.state(other.decode()) is not None:
                waiting[entry.name] = other.decode()  # another command queued it: wait for that job
                continue
            client.hset(keys.queued, entry.name, job)  # its job record expired: queue it again
        output = join(config.dest, entry.name)
        submit(client, config.redis, job, spec, entry.url, output, True, config.job.model.batch_size, task.to_json())
        waiting[entry.name] = job

    stop = threading.Event()
    threads = []
    for slot in range(config.workers):
        runner = Runner(
            connect(config.redis),
            config.redis,
            f"{runner_name()}-{slot}",
            abandoned=config.stale,
            storage=config.storage,
        )
        runner.confinement = confinement(config)  # this batch's inputs and DEST, as for any queued job
        thread = threading.Thread(target=runner.serve, args=(stop,), name=f"runner{slot}", daemon=True)
        thread.start()
        threads.append(thread)

    reports: dict[str, VideoReport] = {}
    for entry in entries:
        if entry.name in done:
            reports[entry.name] = _skipped(config, entry, states.get(entry.name))
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
                if threads and not any(thread.is_alive() for thread in threads):
                    raise StreamerError("the local runners stopped (Redis lost?); rerun the same command to resume")
                time.sleep(POLL)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=max(30.0, config.stale))
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


def _keys(config: RedisConfig):
    from streamer.distributed.connection import Keys

    return Keys(config.namespace)


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
    jobs = JobStore(client, _keys(config))
    jobs.update(job, state=RUNNING, runner=runner, started=time.time())
    try:
        if confinement is not None:  # before anything touches the input or DEST
            confinement.check_input(task.input)
            confinement.check_output(task.output)
            if task.detections:
                confinement.check_output(detections_path(task.output))
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


# ---------------------------------------------------------------------------------------------------
# progress and the summary


def state_progress(dest: str, storage: dict | None = None, stale: float = STALE, records: dict | None = None) -> dict:
    """A batch's progress from its state objects alone (no Redis): counts, frames per second, ETA."""
    if records is None:
        records = StateStore(dest, storage).read_all()
    now = time.time()
    counts = {DONE: 0, FAILED: 0, RUNNING: 0, "interrupted": 0}
    frames, first, last = 0, None, None
    for record in records.values():
        state = record.get("state")
        if state == RUNNING and now - float(record.get("heartbeat", 0)) >= stale:
            state = "interrupted"
        counts[state] = counts.get(state, 0) + 1
        frames += int(record.get("frames") or 0)
        if record.get("started"):
            first = min(first or record["started"], record["started"])
        stamp = record.get("updated") or record.get("heartbeat")
        if stamp:
            last = max(last or stamp, stamp)
    elapsed = (last - first) if first and last and last > first else 0.0
    finished = counts[DONE] + counts[FAILED]
    left = counts[RUNNING] + counts["interrupted"]
    return {
        "videos": len(records),
        "done": counts[DONE],
        "failed": counts[FAILED],
        "running": counts[RUNNING],
        "interrupted": counts["interrupted"],
        "frames": frames,
        "fps": round(frames / elapsed, 2) if elapsed else 0.0,
        "eta": round(left * elapsed / finished, 1) if finished and left and elapsed else None,
    }


def write_manifest(dest: str, storage: dict | None = None) -> dict:
    """DEST/manifest.json: every video's state and the totals, from the state objects; returns it."""
    store = StateStore(dest, storage)
    records = store.read_all()
    videos = {record.get("input", name): record for name, record in sorted(records.items())}
    manifest = {
        "version": 2,
        "written": time.time(),
        "summary": state_progress(dest, storage, records=records),
        "videos": videos,
    }
    atomic_write(join(dest, MANIFEST), json.dumps(manifest, indent=1).encode(), storage)
    return manifest
