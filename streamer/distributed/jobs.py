"""Jobs in Redis: the spec that travels with a job, its state and progress."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field

import redis

from streamer.distributed.connection import Keys
from streamer.effects import EffectConfig

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"
FINAL = (DONE, FAILED, CANCELLED)


@dataclass
class JobSpec:
    """What workers need to know about a job: which model, which effect, how frames travel."""

    model: str = "unet"
    effect: EffectConfig = field(default_factory=EffectConfig)
    threshold: float | None = None
    frame_codec: str = "raw"  # raw (lossless) | png | jpeg | webp
    quality: int = 90  # jpeg/webp quality
    detections: bool = False  # send detections back with each frame

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> "JobSpec":
        data = json.loads(text)
        effect = data.pop("effect", {})
        effect["color"] = tuple(effect.get("color", EffectConfig.color))
        return cls(effect=EffectConfig(**effect), **data)


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


class JobStore:
    """Reads and writes job records: `{ns}:job:{id}` hashes indexed by the `{ns}:jobs` sorted set."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.client, self.keys = client, keys

    def create(self, job: str, spec: JobSpec, state: str = RUNNING, **fields) -> None:
        record = {"spec": spec.to_json(), "state": state, "created": time.time(), "done": 0, **fields}
        pipe = self.client.pipeline()
        pipe.hset(self.keys.job(job), mapping={k: _text(v) for k, v in record.items()})
        pipe.zadd(self.keys.jobs, {job: time.time()})
        pipe.execute()

    def update(self, job: str, **fields) -> None:
        self.client.hset(self.keys.job(job), mapping={k: _text(v) for k, v in fields.items()})

    def finish(self, job: str, state: str, ttl: float, reason: str = "", **fields) -> None:
        """Record the final state (a cancel stays a cancel); the job's keys expire `ttl` seconds later."""
        record = {"finished": time.time(), **fields}
        if self.state(job) != CANCELLED:
            record.update(state=state, reason=reason)
        pipe = self.client.pipeline()
        pipe.hset(self.keys.job(job), mapping={k: _text(v) for k, v in record.items()})
        pipe.expire(self.keys.job(job), int(ttl))
        pipe.expire(self.keys.results(job), int(ttl))
        pipe.execute()

    def fail(self, job: str, reason: str) -> None:
        """Mark a running job failed (no-op once it is final)."""
        if self.state(job) not in FINAL:
            self.update(job, state=FAILED, reason=reason)

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


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
