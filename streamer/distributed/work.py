"""The worker side of Redis: one model's work stream, read in a consumer group.

A frame is acknowledged only after its result is written (one transaction), so a worker that
dies loses nothing: live workers claim its pending frames once they have been idle `claim_idle`
seconds. A frame delivered more than `max_deliveries` times, or a malformed message, goes to the
dead-letter stream and fails its job, so no job waits for it forever.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

import redis

from streamer.distributed.connection import WORKER_GROUP, Keys, RedisConfig, ensure_group, retrying
from streamer.distributed.jobs import RUNNING, JobSpec, JobStore
from streamer.distributed.messages import MAX_PAYLOAD, Message, MessageError, decode, encode, job_of
from streamer.frames import Rendered
from streamer.metrics import Metrics

log = logging.getLogger(__name__)

SPEC_REFRESH = 2.0  # seconds a job's spec and state are cached (so a cancel is seen quickly)


@dataclass(frozen=True)
class Delivery:
    """A frame read from the work stream, with the entry id that acknowledges it."""

    entry_id: bytes
    message: Message


class WorkQueue:
    """Takes frames of one model's work stream and returns their rendered results."""

    def __init__(
        self,
        client: redis.Redis,
        config: RedisConfig,
        model: str,
        consumer: str,
        claim_idle: float = 10.0,
        max_deliveries: int = 3,
        max_payload: int = MAX_PAYLOAD,
        metrics: Metrics | None = None,
    ):
        self.client, self.config, self.consumer = client, config, consumer
        self.claim_idle, self.max_deliveries, self.max_payload = claim_idle, max_deliveries, max_payload
        self.metrics = metrics or Metrics()
        self.keys = Keys(config.namespace)
        self.jobs = JobStore(client, self.keys)
        self.stream = self.keys.work(model)
        self._specs: dict[str, tuple[float, JobSpec | None, str | None]] = {}
        self._last_claim = 0.0

    def join(self) -> None:
        self._call(lambda: ensure_group(self.client, self.stream, WORKER_GROUP), "create group")

    def take(self, count: int, block: float = 0.5) -> list[Delivery]:
        """Up to `count` frames: first any left idle by a dead worker, else new ones (waits up to `block` s).
        Malformed messages are dead-lettered here and never returned."""
        entries = self._claim(count) or self._read(count, block)
        deliveries = []
        for entry_id, fields in entries:
            try:
                deliveries.append(Delivery(entry_id, decode(fields, self.max_payload)))
            except MessageError as error:
                self._reject(entry_id, fields, str(error))
        return deliveries

    def spec(self, job: str) -> JobSpec | None:
        """The job's spec while it runs; None once it has ended or was cancelled."""
        now = time.monotonic()
        cached = self._specs.get(job)
        if cached is None or now - cached[0] > SPEC_REFRESH:
            try:
                spec = self._call(lambda: self.jobs.spec(job), "read job")
            except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as error:
                raise MessageError(f"job {job} has a malformed spec ({type(error).__name__}: {error})") from None
            state = self._call(lambda: self.jobs.state(job), "read job")
            self._specs = {k: v for k, v in self._specs.items() if now - v[0] <= 60}
            cached = self._specs[job] = (now, spec, state)
        _, spec, state = cached
        return spec if state == RUNNING else None

    def fail(self, job: str, reason: str) -> None:
        self._call(lambda: self.jobs.fail(job, reason), "fail job")

    def complete(self, job: str, deliveries: list[Delivery], rendered: list[Rendered], spec: JobSpec) -> None:
        """Write the results and acknowledge their frames in one transaction."""
        pipe = self.client.pipeline(transaction=True)
        for frame in rendered:
            pipe.xadd(self.keys.results(job), encode(Message(job, frame), spec.frame_codec, spec.quality))
        self._acknowledge(pipe, [delivery.entry_id for delivery in deliveries])
        with self._regrouping():
            self._call(pipe.execute, "send results")

    def reject(self, deliveries: list[Delivery], reason: str) -> None:
        """Frames that can never be processed (e.g. their job's record is malformed): dead-lettered."""
        for delivery in deliveries:
            fields = {b"job": delivery.message.job.encode(), b"index": str(delivery.message.frame.index).encode()}
            self._reject(delivery.entry_id, fields, reason)

    def discard(self, deliveries: list[Delivery]) -> None:
        """Acknowledge frames nobody wants any more (their job ended)."""
        pipe = self.client.pipeline(transaction=True)
        self._acknowledge(pipe, [delivery.entry_id for delivery in deliveries])
        self._call(pipe.execute, "discard")

    def announce(self, fields: dict, ttl: float) -> None:
        """Heartbeat: this worker is alive, with what it reports about itself."""
        key = self.keys.worker(self.consumer)
        pipe = self.client.pipeline()
        pipe.sadd(self.keys.workers, self.consumer)
        pipe.hset(key, mapping=fields)
        pipe.expire(key, max(1, int(ttl)))
        pipe.execute()

    def leave(self) -> None:
        try:
            self.client.delete(self.keys.worker(self.consumer))
            self.client.srem(self.keys.workers, self.consumer)
        except redis.RedisError:
            pass

    def reachable(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def _read(self, count: int, block: float):
        with self._regrouping():
            reply = self._call(
                lambda: self.client.xreadgroup(
                    WORKER_GROUP,
                    self.consumer,
                    {self.stream: ">"},
                    count=count,
                    block=int(block * 1000),
                ),
                "read frames",
            )
            return reply[0][1] if reply else []
        return []

    @contextlib.contextmanager
    def _regrouping(self):
        """A Redis that restarted empty has lost the group: make it again and go on."""
        try:
            yield
        except redis.ResponseError as error:
            if not any(sign in str(error) for sign in ("NOGROUP", "no longer exists")):
                raise
            log.warning("%s: the work stream's group is gone (Redis restarted?); joining it again", self.consumer)
            self.join()

    def _claim(self, count: int):
        """Take over frames another worker left unacknowledged for `claim_idle` seconds."""
        now = time.monotonic()
        if now - self._last_claim < self.claim_idle / 4:
            return []
        self._last_claim = now
        idle_ms = int(self.claim_idle * 1000)
        entries = []
        with self._regrouping():
            _, entries, *_ = self._call(
                lambda: self.client.xautoclaim(
                    self.stream,
                    WORKER_GROUP,
                    self.consumer,
                    idle_ms,
                    "0-0",
                    count=count,
                ),
                "claim frames",
            )
        entries = [(entry_id, fields) for entry_id, fields in entries if fields]
        if not entries:
            return []
        log.info("%s: claimed %d frames left by another worker", self.consumer, len(entries))
        pending = self._call(
            lambda: self.client.xpending_range(
                self.stream,
                WORKER_GROUP,
                min=entries[0][0],
                max=entries[-1][0],
                count=len(entries),
                consumername=self.consumer,
            ),
            "read pending",
        )
        deliveries = {item["message_id"]: item["times_delivered"] for item in pending}
        alive = []
        for entry_id, fields in entries:
            count = deliveries.get(entry_id, 1)
            if count > self.max_deliveries:
                self._dead_letter(entry_id, fields, f"not processed after {count - 1} deliveries")
            else:
                alive.append((entry_id, fields))
        return alive

    def _reject(self, entry_id, fields, reason: str) -> None:
        """A malformed message: counted, dead-lettered, never executed."""
        self._call(lambda: self.client.hincrby(self.keys.stats, "rejected", 1), "count rejected")
        self.metrics.errors.labels("rejected").inc()
        log.warning("%s: rejected message %s: %s", self.consumer, entry_id.decode(), reason)
        self._dead_letter(entry_id, fields, f"rejected: {reason}")

    def _dead_letter(self, entry_id, fields, reason: str) -> None:
        self.metrics.errors.labels("dead_letter").inc()
        owner = job_of(fields)
        record = {"entry": entry_id, "stream": self.stream, "reason": reason, "worker": self.consumer}
        if owner:
            record.update(job=owner[0], index=owner[1])
            self.fail(owner[0], f"frame {owner[1]} {reason}")
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.keys.dead, record, maxlen=10_000, approximate=True)
        self._acknowledge(pipe, [entry_id])
        self._call(pipe.execute, "dead-letter")

    def _acknowledge(self, pipe, ids: list) -> None:
        if ids:
            pipe.xack(self.stream, WORKER_GROUP, *ids)
            pipe.xdel(self.stream, *ids)

    def _call(self, call, what: str):
        return retrying(self.config, call, what)
