"""The worker loop: read frames of one model's work stream, predict in batches, render, send back.

A frame is acknowledged only after its result is written, so a worker that dies loses
nothing: live workers claim its pending frames once they have been idle `claim_idle`
seconds. A frame that fails `max_deliveries` times goes to the dead-letter stream and fails
its job, so no job waits for it forever.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np
import redis

from streamer.distributed.connection import WORKER_GROUP, Keys, RedisConfig, connect, retrying
from streamer.distributed.jobs import RUNNING, JobSpec, JobStore
from streamer.distributed.messages import MAX_PAYLOAD, Message, MessageError, decode, encode, job_of
from streamer.detections import record
from streamer.effects import effect_function, selected, with_class_names
from streamer.errors import StreamerError
from streamer.metrics import Metrics
from streamer.transports.redis_streams import ensure_group
from streamer.models import ModelConfig, load_model

log = logging.getLogger(__name__)

SPEC_REFRESH = 2.0  # seconds a job's spec and state are cached (so a cancel is seen quickly)
MODELS_KEPT = 4  # models kept loaded for different job thresholds


@dataclass
class WorkerConfig:
    """One worker process: the model it serves and how it shares work with the others."""

    model: ModelConfig
    redis: RedisConfig = field(default_factory=RedisConfig)
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    claim_idle: float = 10.0  # seconds before another worker's unacknowledged frames are taken over
    max_deliveries: int = 3  # deliveries of one frame before it is dead-lettered
    heartbeat: float = 2.0  # seconds between liveness reports
    max_payload: int = MAX_PAYLOAD


class Worker:
    """Serves one model until `stop` is set; finishes the batch in hand first (drain)."""

    def __init__(self, config: WorkerConfig, client: redis.Redis | None = None, metrics: Metrics | None = None):
        self.config = config
        self.metrics = metrics or Metrics()
        self.last_loop = time.monotonic()  # liveness: the loop came round recently
        self.client = client or connect(config.redis)
        self.keys = Keys(config.redis.namespace)
        self.jobs = JobStore(self.client, self.keys)
        self.stream = self.keys.work(config.model.name)
        self.frames = 0
        self._models: dict[float, object] = {}
        self._specs: dict[str, tuple[float, JobSpec | None, str | None]] = {}
        self._started = time.monotonic()
        self._last_claim = 0.0

    def serve(self, stop: threading.Event) -> None:
        self._call(lambda: ensure_group(self.client, self.stream, WORKER_GROUP), "create group")
        self._model(self.config.model.threshold)
        beat = threading.Thread(target=self._heartbeat, args=(stop,), name="heartbeat", daemon=True)
        beat.start()
        try:
            while not stop.is_set():
                self.last_loop = time.monotonic()
                entries = self._claim() or self._read()
                if entries:
                    self.metrics.frames_in.inc(len(entries))
                    self._process(entries)
        finally:
            stop.set()
            beat.join()
            self._leave()

    def _read(self):
        reply = self._call(lambda: self.client.xreadgroup(
            WORKER_GROUP, self.config.name, {self.stream: ">"}, count=self.config.model.batch_size, block=500,
        ), "read frames")
        return reply[0][1] if reply else []

    def _claim(self):
        """Take over frames another worker left unacknowledged for `claim_idle` seconds."""
        now = time.monotonic()
        if now - self._last_claim < self.config.claim_idle / 4:
            return []
        self._last_claim = now
        idle_ms = int(self.config.claim_idle * 1000)
        _, entries, *_ = self._call(lambda: self.client.xautoclaim(
            self.stream, WORKER_GROUP, self.config.name, idle_ms, "0-0", count=self.config.model.batch_size,
        ), "claim frames")
        entries = [(entry_id, fields) for entry_id, fields in entries if fields]
        if not entries:
            return []
        log.info("%s: claimed %d frames left by another worker", self.config.name, len(entries))
        pending = self.client.xpending_range(self.stream, WORKER_GROUP, min=entries[0][0], max=entries[-1][0],
                                             count=len(entries), consumername=self.config.name)
        deliveries = {item["message_id"]: item["times_delivered"] for item in pending}
        alive = []
        for entry_id, fields in entries:
            count = deliveries.get(entry_id, 1)
            if count > self.config.max_deliveries:
                self._dead_letter(entry_id, fields, f"not processed after {count - 1} deliveries")
            else:
                alive.append((entry_id, fields))
        return alive

    def _process(self, entries) -> None:
        by_job: dict[str, list[tuple[bytes, Message]]] = {}
        for entry_id, fields in entries:
            try:
                message = decode(fields, self.config.max_payload)
            except MessageError as error:
                self._reject(entry_id, fields, str(error))
                continue
            by_job.setdefault(message.job, []).append((entry_id, message))
        for job, items in by_job.items():
            spec = self._spec(job)
            if spec is None:
                self._discard([entry_id for entry_id, _ in items])  # the job ended or was cancelled
                continue
            try:
                self._run(job, spec, items)
            except StreamerError:
                raise
            except Exception as error:  # left unacknowledged: redelivered, then dead-lettered
                self.metrics.errors.labels("model").inc()
                log.error("%s: job %s frames %s failed: %s: %s", self.config.name, job,
                          [message.index for _, message in items], type(error).__name__, error)

    def _run(self, job: str, spec: JobSpec, items: list[tuple[bytes, Message]]) -> None:
        model = self._model(spec.threshold)
        render = effect_function(spec.effect.name)
        try:
            effect = with_class_names(spec.effect, model)
        except StreamerError as error:  # e.g. --classes this model lacks: the job fails, the worker goes on
            self.jobs.fail(job, str(error))
            self._discard([entry_id for entry_id, _ in items])
            return
        images = np.stack([message.image for _, message in items])
        with self.metrics.timed("inference"):
            predictions = model.predict(images)
        self.metrics.batch_size.observe(len(items))
        results = self.keys.results(job)
        pipe = self.client.pipeline(transaction=True)
        for (entry_id, message), prediction in zip(items, predictions):
            prediction = selected(prediction, effect)
            with self.metrics.timed("render"):
                image = render(message.image, prediction, effect)
            out = Message(job, message.index, message.pts, message.time_base, image,
                          record(prediction, effect.class_names) if spec.detections else None)
            pipe.xadd(results, encode(out, spec.frame_codec, spec.quality))
        ids = [entry_id for entry_id, _ in items]
        pipe.xack(self.stream, WORKER_GROUP, *ids)
        pipe.xdel(self.stream, *ids)
        self._call(pipe.execute, "send results")
        self.frames += len(items)
        self.metrics.wrote(len(items))

    def _spec(self, job: str) -> JobSpec | None:
        """The job's spec while it runs; None once it has ended."""
        now = time.monotonic()
        cached = self._specs.get(job)
        if cached is None or now - cached[0] > SPEC_REFRESH:
            spec = self._call(lambda: self.jobs.spec(job), "read job")
            state = self._call(lambda: self.jobs.state(job), "read job")
            self._specs = {k: v for k, v in self._specs.items() if now - v[0] <= 60}
            cached = self._specs[job] = (now, spec, state)
        _, spec, state = cached
        return spec if state == RUNNING else None

    def _model(self, threshold: float):
        if threshold not in self._models:
            if len(self._models) >= MODELS_KEPT:
                self._models.pop(next(iter(self._models)))
            self._models[threshold] = load_model(replace(self.config.model, threshold=threshold))
        return self._models[threshold]

    def _reject(self, entry_id, fields, reason: str) -> None:
        """A malformed message: counted, dead-lettered, never executed."""
        self.client.hincrby(self.keys.stats, "rejected", 1)
        self.metrics.errors.labels("rejected").inc()
        log.warning("%s: rejected message %s: %s", self.config.name, entry_id.decode(), reason)
        self._dead_letter(entry_id, fields, f"rejected: {reason}")

    def _dead_letter(self, entry_id, fields, reason: str) -> None:
        self.metrics.errors.labels("dead_letter").inc()
        owner = job_of(fields)
        record = {"entry": entry_id, "stream": self.stream, "reason": reason, "worker": self.config.name}
        if owner:
            record.update(job=owner[0], index=owner[1])
            self.jobs.fail(owner[0], f"frame {owner[1]} {reason}")
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.keys.dead, record, maxlen=10_000, approximate=True)
        pipe.xack(self.stream, WORKER_GROUP, entry_id)
        pipe.xdel(self.stream, entry_id)
        self._call(pipe.execute, "dead-letter")

    def _discard(self, ids) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.stream, WORKER_GROUP, *ids)
        pipe.xdel(self.stream, *ids)
        self._call(pipe.execute, "discard")

    def _heartbeat(self, stop: threading.Event) -> None:
        key = self.keys.worker(self.config.name)
        while not stop.is_set():
            elapsed = time.monotonic() - self._started
            try:
                pipe = self.client.pipeline()
                pipe.sadd(self.keys.workers, self.config.name)
                pipe.hset(key, mapping={
                    "model": self.config.model.name, "batch": self.config.model.batch_size,
                    "frames": self.frames, "fps": round(self.frames / elapsed, 2) if elapsed else 0,
                    "last_seen": time.time(), "pid": os.getpid(), "host": socket.gethostname(),
                })
                pipe.expire(key, int(self.config.heartbeat * 5))
                pipe.execute()
            except redis.RedisError:
                pass  # the main loop reports a lost Redis
            stop.wait(self.config.heartbeat)

    def ready(self) -> bool:
        """Redis answers and the model is loaded."""
        try:
            return bool(self._models) and bool(self.client.ping())
        except redis.RedisError:
            return False

    def alive(self) -> bool:
        return time.monotonic() - self.last_loop < max(60.0, self.config.claim_idle * 2)

    def _leave(self) -> None:
        try:
            self.client.delete(self.keys.worker(self.config.name))
            self.client.srem(self.keys.workers, self.config.name)
        except redis.RedisError:
            pass

    def _call(self, call, what: str):
        return retrying(self.config.redis, call, what)
