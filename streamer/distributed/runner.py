"""Runs jobs queued by `streamer submit`: decodes, sends frames to the workers, muxes the results.

A runner keeps its claim on a job fresh while the job runs; if the runner dies, another
one takes the job over after `abandoned` seconds and starts it again.
"""

from __future__ import annotations

import json
import logging
import threading

import redis

from streamer.distributed.connection import RUNNER_GROUP, Keys, RedisConfig, ensure_group, retrying
from streamer.distributed.jobs import FAILED, FINAL, JobSpec, JobStore
from streamer.errors import StreamerError
from streamer.job import ProcessConfig
from streamer.models import ModelConfig
from streamer.pipeline import Pipeline

log = logging.getLogger(__name__)


def submit(client: redis.Redis, config: RedisConfig, job: str, spec: JobSpec, input: str, output: str,
           overwrite: bool = False, batch: int = 4) -> None:
    """Queue a job for the runners."""
    keys = Keys(config.namespace)
    JobStore(client, keys).create(job, spec, state="queued", input=input, output=output)
    ensure_group(client, keys.submitted, RUNNER_GROUP)
    client.xadd(keys.submitted, {"job": job, "input": input, "output": output, "spec": spec.to_json(),
                                 "overwrite": json.dumps(overwrite), "batch": str(batch)})


class Runner:
    """Takes queued jobs one at a time and runs each through the Redis pipeline."""

    def __init__(self, client: redis.Redis, config: RedisConfig, name: str, abandoned: float = 60.0):
        self.client, self.config, self.name, self.abandoned = client, config, name, abandoned
        self.keys = Keys(config.namespace)
        self.jobs = JobStore(client, self.keys)

    def serve(self, stop: threading.Event) -> None:
        retrying(self.config, lambda: ensure_group(self.client, self.keys.submitted, RUNNER_GROUP), "create group")
        while not stop.is_set():
            for entry_id, fields in self._next():
                self._run(entry_id, {k.decode(): v.decode() for k, v in fields.items()}, stop)

    def _next(self):
        _, claimed, *_ = retrying(self.config, lambda: self.client.xautoclaim(
            self.keys.submitted, RUNNER_GROUP, self.name, int(self.abandoned * 1000), "0-0", count=1), "claim job")
        claimed = [(entry_id, fields) for entry_id, fields in claimed if fields]
        if claimed:
            return claimed
        reply = retrying(self.config, lambda: self.client.xreadgroup(
            RUNNER_GROUP, self.name, {self.keys.submitted: ">"}, count=1, block=1000), "read jobs")
        return reply[0][1] if reply else []

    def _run(self, entry_id, entry: dict[str, str], stop: threading.Event) -> None:
        job = entry["job"]
        if self.jobs.state(job) in FINAL:
            self._done(entry_id)
            return
        alive = threading.Event()
        keeper = threading.Thread(target=self._keep_claim, args=(entry_id, alive), daemon=True)
        keeper.start()
        spec = JobSpec.from_json(entry["spec"])
        config = ProcessConfig(
            input=entry["input"], output=entry["output"], overwrite=json.loads(entry["overwrite"]),
            model=ModelConfig(name=spec.model, threshold=spec.threshold, batch_size=int(entry["batch"])),
            effect=spec.effect, redis=self.config, job=job,
        )
        log.info("%s: running job %s (%s → %s)", self.name, job, config.input, config.output)
        try:
            Pipeline(config).run()
        except StreamerError as error:
            self.jobs.finish(job, FAILED, self.config.job_ttl, str(error))
            log.warning("job %s: %s", job, error)
        finally:
            alive.set()
            keeper.join()
        self._done(entry_id)

    def _keep_claim(self, entry_id, finished: threading.Event) -> None:
        """Reset the entry's idle time so other runners see the job is in hand."""
        while not finished.wait(self.abandoned / 4):
            try:
                self.client.xclaim(self.keys.submitted, RUNNER_GROUP, self.name, 0, [entry_id], justid=True)
            except redis.RedisError:
                pass

    def _done(self, entry_id) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.keys.submitted, RUNNER_GROUP, entry_id)
        pipe.xdel(self.keys.submitted, entry_id)
        retrying(self.config, pipe.execute, "finish job")
