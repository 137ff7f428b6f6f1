"""The Redis transport: frames go to a model's work stream, rendered frames come back on the job's own stream.

At most `in_flight` frames of a job are out at once, so Redis memory stays bounded however
long the video; read results are deleted at once and finished jobs expire. The producer keeps the
frames it has out and sends again any that Redis lost (restarted empty), so the job still completes.
While it runs it beats every second; a killed producer's job shows as lost and its keys expire.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import cv2
import redis

from streamer.distributed.connection import (
    WORKER_GROUP,
    Keys,
    Outage,
    RedisConfig,
    RedisLost,
    ensure_group,
    retrying,
)
from streamer.distributed.jobs import CANCELLED, FAILED, JobSpec, JobStore
from streamer.distributed.messages import Message, MessageError, decode, encode
from streamer.errors import StreamerError
from streamer.frames import Frame, Rendered
from streamer.stages import Stages, Stopped

log = logging.getLogger(__name__)

NO_WORKER_WARNING = 15.0  # seconds without results before saying that no worker serves the model
PREVIEW_EVERY, PREVIEW_WIDTH, PREVIEW_TTL = 1.0, 320, 30  # the status page's live preview
READ_COUNT = 64  # results read at once
LOST_CHECK = 2.0  # seconds without a result before checking that the frames out are still in Redis


class RedisTransport:
    """Producer side of a job: sends its frames, yields its rendered frames back."""

    def __init__(
        self, stages: Stages, client: redis.Redis, config: RedisConfig, job: str, spec: JobSpec, total: int | None
    ):
        self._stages, self._client, self._config = stages, client, config
        self.job, self._spec = job, spec
        self._model = spec.job.model.name
        self._keys = Keys(config.namespace)
        self._jobs = JobStore(client, self._keys)
        self._window = threading.BoundedSemaphore(config.in_flight)
        self._sent = 0
        self._closed = threading.Event()
        self._received: set[int] = set()
        self._complete = 0  # every index below this has come back
        self._previewed = 0.0
        self._total = total
        # frames sent and not yet back: index -> [work entry id, encoded fields], to re-send what Redis lost
        self._out: dict[int, list] = {}
        self._out_lock = threading.Lock()
        self._lost = False  # Redis stayed away for the whole grace period: nothing more is tried
        self._outage = Outage()  # every call of this job gives up `grace` seconds after Redis stopped answering
        self._call(lambda: ensure_group(client, self._keys.work(self._model), WORKER_GROUP), "create group")
        self._call(self._create, "create job")

    def send(self, frame: Frame) -> None:
        while not self._window.acquire(timeout=0.1):
            if self._stages.stop.is_set():
                raise Stopped
        fields = encode(Message(self.job, frame), self._spec.job.frame_codec, self._spec.job.frame_quality)
        with self._out_lock:
            self._sent += 1  # before the frame can come back
            self._out[frame.index] = [None, fields]
        entry = self._call(lambda: self._client.xadd(self._keys.work(self._model), fields), "send frame")
        with self._out_lock:
            if frame.index in self._out:
                self._out[frame.index][0] = entry

    def close(self) -> None:
        self._closed.set()

    def results(self) -> Iterator[Rendered]:
        stream = self._keys.results(self.job)
        last_id, checked, last_result, warned = "0-0", 0.0, time.monotonic(), False
        started = time.monotonic()
        suspects: set[int] = set()  # frames whose work entry is gone: lost unless their result is read next
        while not (self._closed.is_set() and self._complete >= self._sent):
            if self._stages.stop.is_set():
                raise Stopped
            reply = self._call(
                lambda since=last_id: self._client.xread({stream: since}, count=READ_COUNT, block=200),
                "read results",
            )
            entries = reply[0][1] if reply else []
            if entries:
                last_id = entries[-1][0]
                ids = [entry_id for entry_id, _ in entries]
                self._call(lambda ids=ids: self._client.xdel(stream, *ids), "trim results")
            for _, fields in entries:
                rendered = self._accept(fields)
                if rendered is not None:
                    last_result = time.monotonic()
                    yield rendered
            if suspects and len(entries) < READ_COUNT:  # caught up with every result written before the check
                self._resend(suspects)
                suspects = set()
            now = time.monotonic()
            if now - checked >= 1.0:
                checked = now
                self._check_job(now - started)
                if now - last_result >= LOST_CHECK:
                    suspects = self._vanished()
                if not warned and now - last_result > NO_WORKER_WARNING and not self._workers_alive():
                    warned = True
                    log.warning(
                        "no worker is serving model %r; start one with `streamer worker --model %s --redis URL`",
                        self._model,
                        self._model,
                    )

    def depths(self) -> dict[str, int]:
        return {"in_flight": self._sent - self._complete}

    def end(self, state: str, reason: str = "") -> None:
        """Record how the job ended, take back its frames still queued; its record expires after the TTL.
        After Redis was lost for the whole grace period, nothing is tried again (the keys expire on their own)."""
        if self._lost:
            return
        try:
            done = self._complete + len(self._received)
            self._call(
                lambda: self._jobs.finish(self.job, state, self._config.job_ttl, reason, done=done),
                "finish",
            )
            with self._out_lock:
                queued = [entry for entry, _ in self._out.values() if entry is not None]
                self._out.clear()
            if queued:
                self._call(lambda: self._client.xdel(self._keys.work(self._model), *queued), "withdraw frames")
        except StreamerError:
            pass  # Redis is gone: the job's keys expire on their own

    def _call(self, call, what: str):
        try:
            return retrying(self._config, call, what, self._outage)
        except RedisLost:
            self._lost = True
            raise

    def _create(self) -> None:
        self._jobs.create(self.job, self._spec, lease=self._config.lease, total=self._total or "")

    def _vanished(self) -> set[int]:
        """Frames out whose work entry no longer exists (a worker wrote its result and removed it in one
        transaction, or Redis lost it)."""
        with self._out_lock:
            out = [(index, entry) for index, (entry, _) in self._out.items() if entry is not None]
        if not out:
            return set()
        stream = self._keys.work(self._model)

        def check():
            pipe = self._client.pipeline(transaction=False)
            for _, entry in out:
                pipe.xrange(stream, entry, entry)
            return pipe.execute()

        found = self._call(check, "check frames")
        return {index for (index, _), entries in zip(out, found) if not entries}

    def _resend(self, suspects: set[int]) -> None:
        """Send again the frames Redis lost: gone from the work stream and never come back."""
        with self._out_lock:
            lost = sorted(index for index in suspects if index in self._out and index not in self._received)
        if not lost:
            return
        log.warning("job %s: %d frames were lost in Redis (restarted empty?); sending them again", self.job, len(lost))
        stream = self._keys.work(self._model)
        self._call(lambda: ensure_group(self._client, stream, WORKER_GROUP), "create group")
        for index in lost:
            with self._out_lock:
                item = self._out.get(index)
            if item is None:
                continue
            entry = self._call(lambda fields=item[1]: self._client.xadd(stream, fields), "send frame")
            with self._out_lock:
                if index in self._out:
                    self._out[index][0] = entry

    def _accept(self, fields) -> Rendered | None:
        if b"failed" in fields and fields.get(b"job") == self.job.encode():  # a worker gave up on the job
            raise StreamerError(f"job {self.job} failed: {fields[b'failed'].decode(errors='replace')[:2000]}")
        try:
            message = decode(fields)
        except MessageError as error:
            self._call(lambda: self._client.hincrby(self._keys.stats, "rejected", 1), "count rejected")
            log.warning("job %s: rejected a result message: %s", self.job, error)
            return None
        index = message.frame.index
        if message.job != self.job or index >= self._sent or index < self._complete or index in self._received:
            return None  # a duplicate from a redelivered frame
        self._received.add(index)
        with self._out_lock:
            self._out.pop(index, None)
        while self._complete in self._received:  # a slot frees only when every frame before it is back,
            self._received.remove(self._complete)  # so the muxer's reorder buffer stays within the window
            self._complete += 1
            self._window.release()
        self._preview(message.frame)
        return message.frame

    def _preview(self, frame: Rendered) -> None:
        """About once a second, a small JPEG of the latest output frame for the status page (made from the
        decoded picture when the frame came as one, so that it still goes to the encoder as it is)."""
        now = time.monotonic()
        if now - self._previewed < PREVIEW_EVERY or self._outage.since is not None:  # not while Redis is away
            return
        self._previewed = now
        height, width, _ = frame.shape
        size = (max(1, round(height * PREVIEW_WIDTH / width)), PREVIEW_WIDTH)
        small = frame.resized(*size)
        if small is None:
            small = cv2.resize(frame.image, size[::-1], interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            try:
                self._client.set(
                    self._keys.preview(self.job), jpeg.tobytes(), ex=max(1, round(min(PREVIEW_TTL, self._config.lease)))
                )
            except redis.RedisError:
                pass  # a preview is not worth failing a job for

    def _check_job(self, elapsed: float) -> None:
        """Stop on a failure or cancel; otherwise beat: progress, liveness, and the keys' lease renewed."""
        record = self._call(lambda: self._jobs.get(self.job), "check job") or {}
        state = record.get("state")
        if state == FAILED:
            raise StreamerError(f"job {self.job} failed: {record.get('reason', 'no reason given')}")
        if state == CANCELLED:
            raise StreamerError(f"job {self.job} was cancelled")
        if state is None:  # Redis lost the record (restarted empty): make it again
            log.warning("job %s: its record is gone from Redis (restarted empty?); recreating it", self.job)
            self._call(self._create, "create job")
        done = self._complete + len(self._received)
        self._call(
            lambda: self._jobs.beat(self.job, self._config.lease, done=done, fps=round(done / elapsed, 2)),
            "update job",
        )

    def _workers_alive(self) -> bool:
        for name in self._call(lambda: self._client.smembers(self._keys.workers), "list workers"):
            model = self._call(lambda name=name: self._client.hget(self._keys.worker(name.decode()), "model"), "worker")
            if model is not None and model.decode() == self._model:
                return True
        return False
