"""The Redis transport: frames go to a model's work stream, rendered frames come back on the job's own stream.

At most `in_flight` frames of a job are out at once, so Redis memory stays bounded however
long the video; read results are deleted at once and finished jobs expire.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import cv2
import redis

from streamer.distributed.connection import WORKER_GROUP, Keys, RedisConfig, ensure_group, retrying
from streamer.distributed.jobs import CANCELLED, FAILED, JobSpec, JobStore
from streamer.distributed.messages import Message, MessageError, decode, encode
from streamer.errors import StreamerError
from streamer.frames import Frame, Rendered
from streamer.stages import Stages, Stopped

log = logging.getLogger(__name__)

NO_WORKER_WARNING = 15.0  # seconds without results before saying that no worker serves the model
PREVIEW_EVERY, PREVIEW_WIDTH, PREVIEW_TTL = 1.0, 320, 30  # the status page's live preview


class RedisTransport:
    """Producer side of a job: sends its frames, yields its rendered frames back."""

    def __init__(
        self, stages: Stages, client: redis.Redis, config: RedisConfig, job: str, spec: JobSpec, total: int | None
    ):
        self._stages, self._client, self._config = stages, client, config
        self.job, self._spec = job, spec
        self._keys = Keys(config.namespace)
        self._jobs = JobStore(client, self._keys)
        self._window = threading.BoundedSemaphore(config.in_flight)
        self._sent = 0
        self._closed = threading.Event()
        self._received: set[int] = set()
        self._complete = 0  # every index below this has come back
        self._previewed = 0.0
        retrying(config, lambda: ensure_group(client, self._keys.work(spec.model), WORKER_GROUP), "create group")
        retrying(config, lambda: self._jobs.create(job, spec, total=total or ""), "create job")

    def send(self, frame: Frame) -> None:
        while not self._window.acquire(timeout=0.1):
            if self._stages.stop.is_set():
                raise Stopped
        fields = encode(Message(self.job, frame), self._spec.frame_codec, self._spec.quality)
        self._sent += 1  # before the frame can come back
        retrying(self._config, lambda: self._client.xadd(self._keys.work(self._spec.model), fields), "send frame")

    def close(self) -> None:
        self._closed.set()

    def results(self) -> Iterator[Rendered]:
        stream = self._keys.results(self.job)
        last_id, checked, last_result, warned = "0-0", 0.0, time.monotonic(), False
        started = time.monotonic()
        while not (self._closed.is_set() and self._complete >= self._sent):
            if self._stages.stop.is_set():
                raise Stopped
            reply = retrying(
                self._config,
                lambda since=last_id: self._client.xread({stream: since}, count=64, block=200),
                "read results",
            )
            entries = reply[0][1] if reply else []
            if entries:
                last_id = entries[-1][0]
                ids = [entry_id for entry_id, _ in entries]
                retrying(self._config, lambda ids=ids: self._client.xdel(stream, *ids), "trim results")
            for _, fields in entries:
                rendered = self._accept(fields)
                if rendered is not None:
                    last_result = time.monotonic()
                    yield rendered
            now = time.monotonic()
            if now - checked >= 1.0:
                checked = now
                self._check_job(now - started)
                if not warned and now - last_result > NO_WORKER_WARNING and not self._workers_alive():
                    warned = True
                    log.warning(
                        "no worker is serving model %r; start one with `streamer worker --model %s --redis URL`",
                        self._spec.model,
                        self._spec.model,
                    )

    def depths(self) -> dict[str, int]:
        return {"in_flight": self._sent - self._complete}

    def end(self, state: str, reason: str = "") -> None:
        """Record how the job ended; its keys expire after the configured TTL."""
        try:
            done = self._complete + len(self._received)
            retrying(
                self._config,
                lambda: self._jobs.finish(self.job, state, self._config.job_ttl, reason, done=done),
                "finish",
            )
        except StreamerError:
            pass  # Redis is gone: the job record expires on its own or stays as it was

    def _accept(self, fields) -> Rendered | None:
        try:
            message = decode(fields)
        except MessageError as error:
            self._client.hincrby(self._keys.stats, "rejected", 1)
            log.warning("job %s: rejected a result message: %s", self.job, error)
            return None
        index = message.frame.index
        if message.job != self.job or index >= self._sent or index < self._complete or index in self._received:
            return None  # a duplicate from a redelivered frame
        self._received.add(index)
        while self._complete in self._received:  # a slot frees only when every frame before it is back,
            self._received.remove(self._complete)  # so the muxer's reorder buffer stays within the window
            self._complete += 1
            self._window.release()
        self._preview(message.frame.image)
        return message.frame

    def _preview(self, image) -> None:
        """About once a second, a small JPEG of the latest output frame for the status page."""
        now = time.monotonic()
        if now - self._previewed < PREVIEW_EVERY:
            return
        self._previewed = now
        scale = PREVIEW_WIDTH / image.shape[1]
        small = cv2.resize(image, (PREVIEW_WIDTH, max(1, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            try:
                self._client.set(self._keys.preview(self.job), jpeg.tobytes(), ex=PREVIEW_TTL)
            except redis.RedisError:
                pass  # a preview is not worth failing a job for

    def _check_job(self, elapsed: float) -> None:
        record = retrying(self._config, lambda: self._jobs.get(self.job), "check job") or {}
        state = record.get("state")
        if state == FAILED:
            raise StreamerError(f"job {self.job} failed: {record.get('reason', 'no reason given')}")
        if state == CANCELLED:
            raise StreamerError(f"job {self.job} was cancelled")
        done = self._complete + len(self._received)
        retrying(
            self._config, lambda: self._jobs.update(self.job, done=done, fps=round(done / elapsed, 2)), "update job"
        )

    def _workers_alive(self) -> bool:
        for name in self._client.smembers(self._keys.workers):
            model = self._client.hget(self._keys.worker(name.decode()), "model")
            if model is not None and model.decode() == self._spec.model:
                return True
        return False
