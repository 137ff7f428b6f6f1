"""The worker process: take frames of one model's work stream, render them, send them back.

Each batch goes through the same render stage as the embedded pipeline, so a job's output is the
same frame for frame whichever way it ran. A batch that raises is left unacknowledged (it is
redelivered, then dead-lettered); a job this model cannot serve fails alone; the worker goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import redis

from streamer import typed_json
from streamer.distributed.confine import Confinement
from streamer.distributed.connection import RedisConfig, connect
from streamer.distributed.jobs import FINAL, JobSpec
from streamer.distributed.messages import MAX_PAYLOAD, MessageError
from streamer.distributed.work import Delivery, WorkQueue
from streamer.errors import StreamerError
from streamer.metrics import Metrics
from streamer.models import Model, ModelConfig, load_model
from streamer.render import RenderStage
from streamer.service.supervisor import Supervisor

log = logging.getLogger(__name__)
# A job's start and end on this worker are shown at the default level (the root logger's is WARNING)
jobs_log = logging.getLogger(f"{__name__}.jobs")
jobs_log.setLevel(logging.INFO)

FPS_WINDOW = 10.0  # seconds of frames the announced fps is measured over
JOB_IDLE = 2.0  # seconds without frames of a job before checking whether it ended

STAGES_KEPT = 32  # render stages kept for recent job specs
MODELS_KEPT = 4  # models kept loaded for jobs with different thresholds or model options


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

    def __init__(
        self,
        config: WorkerConfig,
        queue: WorkQueue | None = None,
        metrics: Metrics | None = None,
        load: Callable[[ModelConfig], Model] = load_model,
        confinement: Confinement | None = None,
        supervisor: Supervisor | None = None,
    ):
        self.config = config
        self.supervisor = supervisor  # runs the heartbeat; a private one when none is given
        self.confinement = confinement or Confinement()  # where a job's own weights file may be read
        self.metrics = metrics or Metrics()
        self.queue = queue or WorkQueue(
            connect(config.redis),
            config.redis,
            config.model.name,
            config.name,
            config.claim_idle,
            config.max_deliveries,
            config.max_payload,
            self.metrics,
        )
        self.last_loop = time.monotonic()  # liveness: the loop came round recently
        self.frames = 0
        self._load = load
        self._models: dict[str, Model] = {}
        self._stages: dict[str, RenderStage] = {}  # by job spec: built once, not per batch
        self._started = time.monotonic()
        self._samples = deque([(self._started, 0)])  # (time, frames) of recent heartbeats, for the fps
        self._active: dict[str, list[float]] = {}  # job -> [first frame, frames, last frame] on this worker
        self._checked = 0.0

    def serve(self, stop: threading.Event) -> None:
        self.queue.join()
        self._model(self.config.model)
        stream = getattr(self.queue, "stream", self.config.model.name)
        jobs_log.info(
            "%s ready: model %s, batch %d, stream %s",
            self.config.name,
            self.config.model.name,
            self.config.model.batch_size,
            stream,
        )
        supervisor = self.supervisor or Supervisor(stop)
        supervisor.start("heartbeat", self._heartbeat)
        try:
            while not stop.is_set():
                self.last_loop = time.monotonic()
                deliveries = self.queue.take(self.config.model.batch_size)
                if deliveries:
                    self.metrics.frames_in.inc(len(deliveries))
                    self.process(deliveries)
                self._check_ended()
        finally:
            stop.set()
            supervisor.join(timeout=self.config.heartbeat + 5)
            self.queue.leave()

    def process(self, deliveries: list[Delivery]) -> None:
        """Render each job's frames of the batch and send them back; one job's trouble never stops the others."""
        by_job: dict[str, list[Delivery]] = {}
        for delivery in deliveries:
            by_job.setdefault(delivery.message.job, []).append(delivery)
        for job, items in by_job.items():
            self._process_job(job, items)

    def _process_job(self, job: str, items: list[Delivery]) -> None:
        try:
            spec = self.queue.spec(job)
        except MessageError as error:  # a poisoned job record: its frames are dead-lettered
            self.queue.reject(items, str(error))
            return
        if spec is None:
            self.queue.discard(items)  # the job ended or was cancelled
            self._ended(job, "ended")
            return
        try:
            stage = self._stage(spec)
        except Exception as error:  # e.g. --classes this model lacks: the job fails, the worker goes on
            reason = str(error) if isinstance(error, StreamerError) else f"{type(error).__name__}: {error}"
            self.queue.fail(job, reason)
            self.queue.discard(items)
            return
        try:
            rendered = stage([delivery.message.frame for delivery in items])
        except Exception as error:  # left unacknowledged: redelivered, then dead-lettered
            self.metrics.errors.labels("model").inc()
            log.error(
                "%s: job %s frames %s failed: %s: %s",
                self.config.name,
                job,
                [delivery.message.frame.index for delivery in items],
                type(error).__name__,
                error,
            )
            return
        try:
            self.queue.complete(job, items, rendered, spec)
        except MessageError as error:  # the results cannot be written as the job asks: its frames are dead
            self.queue.reject(items, str(error))
            return
        self._track(job, spec, len(items))
        self.frames += len(items)
        self.metrics.wrote(len(items))

    def ready(self) -> bool:
        """Redis answers, the model is loaded and no supervised part is down."""
        parts_up = self.supervisor is None or self.supervisor.ready()
        return parts_up and bool(self._models) and self.queue.reachable()

    def alive(self) -> bool:
        return time.monotonic() - self.last_loop < max(60.0, self.config.claim_idle * 2)

    def _stage(self, spec: JobSpec) -> RenderStage:
        """The render stage for a job's spec, built on its first batch (the spec's checks run once)."""
        key = spec.to_json()
        if key not in self._stages:
            if len(self._stages) >= STAGES_KEPT:
                self._stages.pop(next(iter(self._stages)))
            self._stages[key] = self._build_stage(spec)
        return self._stages[key]

    def _build_stage(self, spec: JobSpec) -> RenderStage:
        config = self.model_for(spec.job.model)
        own = self.config.model
        if (config.weights, config.config_file) != (own.weights, own.config_file):
            self.confinement.check_model(config)  # a job's own files are read only where this worker may read
        return RenderStage(self._model(config), spec.job.effect, spec.detections, self.metrics)

    def model_for(self, asked: ModelConfig) -> ModelConfig:
        """The model a job runs on this worker: the job's model settings where it sets them (any value other than
        the default), this worker's own (its weights, device, threads ...) where it leaves them unset."""
        default = ModelConfig(name=asked.name)
        return ModelConfig(
            **{
                f.name: getattr(asked, f.name)
                if getattr(asked, f.name) != getattr(default, f.name)
                else getattr(self.config.model, f.name)
                for f in fields(ModelConfig)
            }
        )

    def _model(self, config: ModelConfig) -> Model:
        """The model for a job's model settings, loaded once (a few are kept for jobs that differ)."""
        key = typed_json.dumps(config)
        if key not in self._models:
            if len(self._models) >= MODELS_KEPT:
                self._models.pop(next(iter(self._models)))
                self._stages.clear()  # they may hold the model just let go
            self._models[key] = self._load(config)
        return self._models[key]

    def _track(self, job: str, spec: JobSpec, count: int) -> None:
        now = time.monotonic()
        seen = self._active.get(job)
        if seen is None:
            seen = self._active[job] = [now, 0, now]
            jobs_log.info(
                "%s: job %s started (model %s, effect %s)",
                self.config.name,
                job,
                spec.job.model.name,
                spec.job.effect.name,
            )
        seen[1] += count
        seen[2] = now

    def _ended(self, job: str, state: str) -> None:
        seen = self._active.pop(job, None)
        if seen is not None:
            started, frames, last = seen
            took = max(last - started, 1e-6)
            jobs_log.info(
                "%s: job %s %s: %d frames here in %.1f s (%.1f fps)",
                self.config.name,
                job,
                state,
                frames,
                took,
                frames / took if frames > 1 else 0.0,
            )

    def _check_ended(self) -> None:
        """Jobs that sent no frames for JOB_IDLE seconds: logged as ended once their record is final or gone."""
        now = time.monotonic()
        if not self._active or now - self._checked < 1.0:
            return
        self._checked = now
        for job, (_, _, last) in list(self._active.items()):
            if now - last < JOB_IDLE:
                continue
            try:
                state = self.queue.jobs.state(job)
            except (AttributeError, redis.RedisError):
                state = None if now - last > 60 else "running"
            if state is None or state in FINAL:
                self._ended(job, state or "ended")

    def _fps(self) -> float:
        """Frames per second over the last FPS_WINDOW seconds (not since the start: an idle worker shows 0)."""
        now = time.monotonic()
        self._samples.append((now, self.frames))
        while len(self._samples) > 2 and now - self._samples[1][0] >= FPS_WINDOW:
            self._samples.popleft()
        since, frames = self._samples[0]
        return round((self.frames - frames) / (now - since), 2) if now > since else 0.0

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.queue.announce(
                    {
                        "model": self.config.model.name,
                        "batch": self.config.model.batch_size,
                        "frames": self.frames,
                        "fps": self._fps(),
                        "last_seen": time.time(),
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                    },
                    ttl=self.config.heartbeat * 5,
                )
            except redis.RedisError as error:  # the main loop reports a lost Redis
                log.debug("heartbeat failed: %s", error)
            stop.wait(self.config.heartbeat)
