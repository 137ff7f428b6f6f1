"""Runs jobs queued by `streamer submit`: decodes, sends frames to the workers, muxes the results.

A runner keeps its claim on a job fresh while the job runs; if the runner dies, another
one takes the job over after `abandoned` seconds and starts it again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import redis

from streamer.batch import run_queued
from streamer.distributed.confine import Confinement
from streamer.distributed.connection import (
    RUNNER_GROUP,
    Keys,
    Outage,
    RedisConfig,
    ensure_group,
    retrying,
    socket_timeout,
)
from streamer.distributed.jobs import FAILED, FINAL, JobSpec, JobStore
from streamer.distributed.messages import MessageError
from streamer.errors import StreamerError
from streamer.job import ProcessConfig
from streamer.pipeline import Pipeline

log = logging.getLogger(__name__)


class Runner:
    """Takes queued jobs one at a time and runs each through the Redis pipeline."""

    def __init__(
        self, client: redis.Redis, config: RedisConfig, name: str, abandoned: float = 60.0, storage: dict | None = None
    ):
        self.client, self.config, self.name, self.abandoned = client, config, name, abandoned
        self.storage = storage  # fsspec options (credentials) added to those a batch video's job carries
        self.confinement = Confinement()  # what submitted jobs may read and write (worker --allow-input/-output)
        self.keys = Keys(config.namespace)
        self.jobs = JobStore(client, self.keys)
        self.outage = Outage()  # its calls give up together, `grace` seconds after Redis stopped answering

    def serve(self, stop: threading.Event) -> None:
        self._join()
        while not stop.is_set():
            for entry_id, fields in self._next():
                if b"task" in fields and b"job" in fields:
                    self._run_task(entry_id, fields)
                    continue
                try:
                    job, config = self._parse(fields)
                except MessageError as error:
                    self._reject(entry_id, fields, str(error))
                    continue
                self._run(entry_id, job, config)

    def _join(self) -> None:
        retrying(
            self.config,
            lambda: ensure_group(self.client, self.keys.submitted, RUNNER_GROUP),
            "create group",
            self.outage,
        )

    def _next(self):
        """The next submitted entry (one left by a dead runner first); a Redis that restarted empty has lost the
        group, which is made again."""
        try:
            return self._take()
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            log.warning("%s: the submitted jobs' group is gone (Redis restarted?); joining it again", self.name)
            self._join()
            return []

    def _take(self):
        _, claimed, *_ = retrying(
            self.config,
            lambda: self.client.xautoclaim(
                self.keys.submitted, RUNNER_GROUP, self.name, int(self.abandoned * 1000), "0-0", count=1
            ),
            "claim job",
            self.outage,
        )
        claimed = [(entry_id, fields) for entry_id, fields in claimed if fields]
        if claimed:
            return claimed
        block = int(min(1.0, socket_timeout(self.config.grace) / 2) * 1000)  # a blocked read ends within the timeout
        reply = retrying(
            self.config,
            lambda: self.client.xreadgroup(RUNNER_GROUP, self.name, {self.keys.submitted: ">"}, count=1, block=block),
            "read jobs",
            self.outage,
        )
        return reply[0][1] if reply else []

    def _parse(self, fields: dict[bytes, bytes]) -> tuple[str, ProcessConfig]:
        """The job a submitted entry describes, exactly as it was submitted, to run with this runner's Redis;
        MessageError when anything in it is malformed."""
        try:
            job = fields[b"job"].decode()
            spec = JobSpec.from_json(fields[b"spec"])
        except (KeyError, ValueError, UnicodeDecodeError) as error:  # typed_json.FieldError is a ValueError
            raise MessageError(f"malformed job entry: {type(error).__name__}: {str(error)[:300]}") from None
        return job, replace(spec.job, redis=self.config, job=job)

    def _reject(self, entry_id, fields: dict[bytes, bytes], reason: str) -> None:
        """A submitted entry that cannot be run: counted, dead-lettered, its job (if named) failed."""
        log.warning("%s: rejected submitted entry %s: %s", self.name, entry_id.decode(), reason)
        job = fields.get(b"job", b"").decode(errors="replace")
        try:
            if job and self.jobs.state(job) is not None:  # never make a record for a job that has none
                self.jobs.fail(job, reason)
            pipe = self.client.pipeline(transaction=True)
            pipe.hincrby(self.keys.stats, "rejected", 1)
            pipe.xadd(
                self.keys.dead,
                {"entry": entry_id, "stream": self.keys.submitted, "reason": reason, "worker": self.name, "job": job},
                maxlen=10_000,
                approximate=True,
            )
            pipe.execute()
        except redis.RedisError as error:
            log.warning("%s: could not dead-letter %s: %s", self.name, entry_id.decode(), error)
        self._done(entry_id)

    def _run(self, entry_id, job: str, config: ProcessConfig) -> None:
        if self.jobs.state(job) in FINAL:
            self._done(entry_id)
            return
        try:  # checked before anything touches the paths, so a refusal says nothing about what exists here
            self.confinement.check_job(config)
        except StreamerError as error:
            self.jobs.finish(job, FAILED, self.config.job_ttl, str(error))
            log.warning("job %s: %s", job, error)
            self._done(entry_id)
            return
        log.info("%s: running job %s (%s → %s)", self.name, job, config.input, config.output)
        self._claimed(entry_id, job, lambda: Pipeline(config).run())

    def _run_task(self, entry_id, fields: dict[bytes, bytes]) -> None:
        """A video of a batch: processed whole here (streamer.batch.run_queued), its job finished."""
        job = fields[b"job"].decode(errors="replace")
        state = self.jobs.state(job)
        if state is None:  # `batch` makes the record before queueing: this entry is not one of its videos
            self._reject(entry_id, fields, "batch video without a job record")
            return
        if state in FINAL:
            self._done(entry_id)
            return
        task = fields[b"task"].decode(errors="replace")
        self._claimed(
            entry_id,
            job,
            lambda: run_queued(self.client, self.config, job, task, self.name, self.storage, self.confinement),
        )

    def _claimed(self, entry_id, job: str, work) -> None:
        """Run `work` while keeping the entry's claim fresh; its failure fails the job, never the runner."""
        alive = threading.Event()
        keeper = threading.Thread(target=self._keep_claim, args=(entry_id, alive), daemon=True)
        keeper.start()
        try:
            work()
        except Exception as error:  # one job's failure never stops the runner
            reason = str(error) if isinstance(error, StreamerError) else f"{type(error).__name__}: {error}"
            self.jobs.finish(job, FAILED, self.config.job_ttl, reason)
            log.warning("job %s: %s", job, reason)
        finally:
            alive.set()
            keeper.join()
        self._done(entry_id)

    def _keep_claim(self, entry_id, finished: threading.Event) -> None:
        """Reset the entry's idle time so other runners see the job is in hand (a thread for the job's length: a
        failure is logged once and the next beat tries again, so the claim never lapses without a word)."""
        warned = False
        while not finished.wait(self.abandoned / 4):
            try:
                self.client.xclaim(self.keys.submitted, RUNNER_GROUP, self.name, 0, [entry_id], justid=True)
            except redis.RedisError:
                pass  # Redis away: the job's own calls report the loss
            except Exception as error:  # anything else: said once, the claim kept trying
                if not warned:
                    log.error(
                        "%s: keeping the claim on %s failed: %s: %s", self.name, entry_id, type(error).__name__, error
                    )
                    warned = True

    def _done(self, entry_id) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.keys.submitted, RUNNER_GROUP, entry_id)
        pipe.xdel(self.keys.submitted, entry_id)
        retrying(self.config, pipe.execute, "finish job", self.outage)
