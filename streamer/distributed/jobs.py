"""Jobs in Redis: the spec that travels with a job, its state and progress."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from streamer import typed_json
from streamer.distributed.connection import RUNNER_GROUP, Keys, RedisConfig, ensure_group
from streamer.job import ProcessConfig

if TYPE_CHECKING:
    import redis

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"
LOST = "lost"  # shown for a running job whose producer stopped beating (killed, or cut off from Redis)
FINAL = (DONE, FAILED, CANCELLED)


@dataclass
class JobSpec:
    """A job as it travels through Redis: the job description itself, whole, and what its workers send back."""

    job: ProcessConfig
    detections: bool = False  # workers send each frame's detection record back
    lease: float = 60.0  # seconds the job's result stream outlives its last write (a dead producer's expires)

    def __post_init__(self) -> None:
        if not 1.0 <= self.lease <= 7 * 86400:
            raise ValueError(f"lease {self.lease}: must be between 1 s and 7 days")

    @classmethod
    def of(cls, job: ProcessConfig, detections: bool = False, lease: float = 60.0) -> JobSpec:
        """The spec of a job as it leaves this machine: a --config file's settings travel, not its path."""
        model = replace(job.model, config_file=None, settings=job.model.all_settings())
        return cls(job=replace(job, model=model), detections=detections, lease=lease)

    def to_json(self) -> str:
        return typed_json.dumps(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> JobSpec:
        """The spec a record or entry holds; FieldError (a ValueError) names the field that does not fit."""
        return typed_json.loads(cls, text, "job")


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


class JobStore:
    """Reads and writes job records: `{ns}:job:{id}` hashes indexed by the `{ns}:jobs` sorted set."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.client, self.keys = client, keys

    def create(self, job: str, spec: JobSpec, state: str = RUNNING, lease: float | None = None, **fields) -> None:
        """A job record; with `lease`, a running job whose keys expire unless `beat` renews them."""
        record = {"spec": spec.to_json(), "state": state, "created": time.time(), "done": 0, **fields}
        if lease:
            record.update(heartbeat=time.time(), lease=lease)
        pipe = self.client.pipeline()
        pipe.hset(self.keys.job(job), mapping={k: _text(v) for k, v in record.items()})
        if lease:
            pipe.expire(self.keys.job(job), _seconds(lease))
        pipe.zadd(self.keys.jobs, {job: time.time()})
        pipe.execute()

    def update(self, job: str, **fields) -> None:
        self.client.hset(self.keys.job(job), mapping={k: _text(v) for k, v in fields.items()})

    def beat(self, job: str, lease: float, **fields) -> None:
        """The producer is alive: record it with `fields` and renew the job's keys for `lease` seconds."""
        pipe = self.client.pipeline()
        pipe.hset(self.keys.job(job), mapping={k: _text(v) for k, v in {"heartbeat": time.time(), **fields}.items()})
        pipe.expire(self.keys.job(job), _seconds(lease))
        pipe.expire(self.keys.results(job), _seconds(lease))
        pipe.execute()

    def finish(self, job: str, state: str, ttl: float, reason: str = "", **fields) -> None:
        """Record the final state (a cancel stays a cancel); the record expires `ttl` seconds later and the
        job's other keys go now."""
        record = {"finished": time.time(), **fields}
        if self.state(job) != CANCELLED:
            record.update(state=state, reason=reason)
        pipe = self.client.pipeline()
        pipe.hset(self.keys.job(job), mapping={k: _text(v) for k, v in record.items()})
        pipe.expire(self.keys.job(job), _seconds(ttl))
        pipe.delete(self.keys.results(job), self.keys.preview(job))
        pipe.execute()

    def fail(self, job: str, reason: str) -> None:
        """Mark a running job failed (no-op once it is final)."""
        if self.state(job) not in FINAL:
            self.update(job, state=FAILED, reason=reason)

    def forget(self, job: str) -> None:
        """Remove a job's record and its place in the index (a record made for a job that was never queued)."""
        pipe = self.client.pipeline()
        pipe.delete(self.keys.job(job))
        pipe.zrem(self.keys.jobs, job)
        pipe.execute()

    def get(self, job: str) -> dict[str, str] | None:
        record = self.client.hgetall(self.keys.job(job))
        return {k.decode(): v.decode() for k, v in record.items()} or None

    def state(self, job: str) -> str | None:
        value = self.client.hget(self.keys.job(job), "state")
        return value.decode() if value else None

    def spec(self, job: str) -> JobSpec | None:
        value = self.client.hget(self.keys.job(job), "spec")
        return JobSpec.from_json(value) if value else None

    def all(self) -> list[tuple[str, dict[str, str]]]:
        """Known jobs, oldest first; expired ones are dropped from the index."""
        jobs = []
        for raw in self.client.zrange(self.keys.jobs, 0, -1):
            job = raw.decode()
            record = self.get(job)
            if record is None:
                self.client.zrem(self.keys.jobs, job)
            else:
                jobs.append((job, record))
        return jobs


def shown_state(record: dict[str, str], now: float | None = None) -> str | None:
    """The state to show: a running job whose producer missed its heartbeats for half its lease is `lost`."""
    state = record.get("state")
    if state == RUNNING and record.get("heartbeat") and record.get("lease"):
        try:
            age = (now or time.time()) - float(record["heartbeat"])
            if age > float(record["lease"]) / 2:
                return LOST
        except ValueError:
            pass
    return state


def _seconds(value: float) -> int:
    return max(1, round(value))


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def submit(client: redis.Redis, config: RedisConfig, job: str, spec: JobSpec, task: str | None = None) -> None:
    """Queue a job for the runners: its record, then its entry; `task` (JSON): a video of a batch, which the
    runner processes whole (decode, inference and encode on its own machine; streamer.batch.VideoTask)."""
    record_queued(client, config, job, spec)
    enqueue(client, config, job, spec, task)


def record_queued(client: redis.Redis, config: RedisConfig, job: str, spec: JobSpec) -> None:
    """The record of a job about to be queued (what `status` shows of it)."""
    targets = spec.job.outputs().targets
    where = {"input": spec.job.input, "output": targets[0] if len(targets) == 1 else ", ".join(targets)}
    JobStore(client, Keys(config.namespace)).create(job, spec, state="queued", submitted=time.time(), **where)


def enqueue(client: redis.Redis, config: RedisConfig, job: str, spec: JobSpec, task: str | None = None) -> None:
    """The entry the runners take, for a job whose record exists."""
    keys = Keys(config.namespace)
    ensure_group(client, keys.submitted, RUNNER_GROUP)
    client.xadd(keys.submitted, {"job": job, "spec": spec.to_json(), **({"task": task} if task else {})})
