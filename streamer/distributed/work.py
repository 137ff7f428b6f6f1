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

from streamer.distributed.connection import WORKER_GROUP, Keys, Outage, RedisConfig, ensure_group, retrying
from streamer.distributed.jobs import RUNNING, JobSpec, JobStore
from streamer.distributed.messages import MAX_PAYLOAD, VERSION, Message, MessageError, decode, encode, job_of
from streamer.frames import Rendered
from streamer.metrics import Metrics

log = logging.getLogger(__name__)

SPEC_REFRESH = 2.0  # seconds a job's spec and state are cached (so a cancel is seen quickly)
POLL = 0.05  # seconds between reads while the work stream is empty
HEADER_ROOM = 64 * 1024  # bytes of a message besides its payload

# Reads (or claims) entries inside Redis and replaces any entry larger than the limit by its size and
# the fields naming its job, so an oversized message never crosses the network or fills this process's
# memory. Scripts cannot block: `_read` polls instead.
TAKE = """
local entries
if ARGV[1] == 'new' then
  local reply = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[1], '>')
  if not reply then return {} end
  entries = reply[1][2]
else
  entries = redis.call('XAUTOCLAIM', KEYS[1], ARGV[2], ARGV[3], ARGV[6], '0-0', 'COUNT', ARGV[4])[2]
end
local limit = tonumber(ARGV[5])
for _, entry in ipairs(entries) do
  local fields = entry[2]
  if type(fields) == 'table' then
    local total = 0
    for i = 2, #fields, 2 do total = total + string.len(fields[i]) end
    if total > limit then
      local kept = {'oversize', tostring(total)}
      for i = 1, #fields, 2 do
        if fields[i] == 'job' or fields[i] == 'index' then
          table.insert(kept, fields[i])
          table.insert(kept, string.sub(fields[i + 1], 1, 256))
        end
      end
      entry[2] = kept
    end
  end
end
return entries
"""


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
        self._take = client.register_script(TAKE)
        self._limit = max_payload + HEADER_ROOM
        self.outage = Outage()  # its calls give up together, `grace` seconds after Redis stopped answering
        self._last_sweep = time.monotonic()
        self.forget_idle = max(claim_idle * 6, 1.0)  # seconds idle before a consumer with nothing pending is removed

    def join(self) -> None:
        self._call(lambda: ensure_group(self.client, self.stream, WORKER_GROUP), "create group")

    def take(self, count: int, block: float = 0.5) -> list[Delivery]:
        """Up to `count` frames: first any left idle by a dead worker, else new ones (waits up to `block` s).
        Malformed messages are dead-lettered here and never returned."""
        entries = self._claim(count) or self._read(count, block)
        deliveries = []
        for entry_id, fields in entries:
            try:
                if b"oversize" in fields:
                    raise MessageError(
                        f"message of {int(fields[b'oversize'])} bytes is over the {self._limit} byte limit"
                    )
                deliveries.append(Delivery(entry_id, decode(fields, self.max_payload)))
            except Exception as error:  # MessageError, or anything else hostile bytes raise: dead-lettered
                reason = str(error) if isinstance(error, MessageError) else f"{type(error).__name__}: {error}"
                self._reject(entry_id, fields, reason[:500])
        return deliveries

    def spec(self, job: str) -> JobSpec | None:
        """The job's spec while it runs; None once it has ended or was cancelled."""
        now = time.monotonic()
        cached = self._specs.get(job)
        if cached is None or now - cached[0] > SPEC_REFRESH:
            try:
                spec = self._call(lambda: self.jobs.spec(job), "read job")
            except (ValueError, TypeError, AttributeError, KeyError, RecursionError, UnicodeDecodeError) as error:
                raise MessageError(f"job {job} has a malformed spec: {str(error)[:300]}") from None
            state = self._call(lambda: self.jobs.state(job), "read job")
            if spec is None and state == RUNNING:
                raise MessageError(f"job {job} has a malformed record (running, without a spec)")
            self._specs = {k: v for k, v in self._specs.items() if now - v[0] <= 60}
            cached = self._specs[job] = (now, spec, state)
        _, spec, state = cached
        return spec if state == RUNNING else None

    def fail(self, job: str, reason: str) -> None:
        """Tell the job's producer that the job cannot go on: a failure entry on its result stream (workers
        write results only, never job records; the producer records the failure)."""
        cached = self._specs.get(job)
        lease = cached[1].lease if cached and cached[1] else JobSpec.lease
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.keys.results(job), {"v": VERSION, "job": job, "failed": reason[:2000]})
        pipe.expire(self.keys.results(job), max(1, round(lease)))
        self._call(pipe.execute, "fail job")

    def complete(self, job: str, deliveries: list[Delivery], rendered: list[Rendered], spec: JobSpec) -> None:
        """Write the results and acknowledge their frames in one transaction."""
        pipe = self.client.pipeline(transaction=True)
        for frame in rendered:
            pipe.xadd(self.keys.results(job), encode(Message(job, frame), spec.job.frame_codec, spec.job.frame_quality))
        pipe.expire(self.keys.results(job), max(1, round(spec.lease)))  # a dead producer's results expire
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
        """Say goodbye (one call, none while Redis is away: the heartbeat key expires on its own)."""
        if self.outage.since is not None:
            return
        try:
            pipe = self.client.pipeline()
            pipe.delete(self.keys.worker(self.consumer))
            pipe.srem(self.keys.workers, self.consumer)
            pipe.execute()
        except redis.RedisError:
            pass

    def reachable(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def _read(self, count: int, block: float):
        deadline = time.monotonic() + block
        while True:
            with self._regrouping():
                entries = self._call(
                    lambda: self._take(
                        keys=[self.stream], args=["new", WORKER_GROUP, self.consumer, count, self._limit]
                    ),
                    "read frames",
                )
                if entries:
                    return _entries(entries)
            if time.monotonic() + POLL > deadline:
                return []
            time.sleep(POLL)

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

    def sweep(self) -> list[str]:
        """Remove consumers of the group (dead workers) idle for `forget_idle` seconds with nothing pending;
        a live one that was merely idle is added back by its next read. Returns the names removed."""
        removed = []
        with self._regrouping():
            for consumer in self._call(lambda: self.client.xinfo_consumers(self.stream, WORKER_GROUP), "list workers"):
                name = consumer["name"].decode() if isinstance(consumer["name"], bytes) else consumer["name"]
                if name == self.consumer or consumer["pending"] or consumer["idle"] < self.forget_idle * 1000:
                    continue
                self._call(lambda name=name: self.client.xgroup_delconsumer(self.stream, WORKER_GROUP, name), "forget")
                removed.append(name)
        if removed:
            log.info("%s: removed %d idle consumers from the group: %s", self.consumer, len(removed), removed)
        return removed

    def _claim(self, count: int):
        """Take over frames another worker left unacknowledged for `claim_idle` seconds."""
        now = time.monotonic()
        if now - self._last_claim < self.claim_idle / 4:
            return []
        self._last_claim = now
        if now - self._last_sweep >= self.forget_idle / 2:
            self._last_sweep = now
            self.sweep()
        idle_ms = int(self.claim_idle * 1000)
        entries = []
        with self._regrouping():
            entries = _entries(
                self._call(
                    lambda: self._take(
                        keys=[self.stream], args=["claim", WORKER_GROUP, self.consumer, count, self._limit, idle_ms]
                    ),
                    "claim frames",
                )
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
        """A malformed message: counted and dead-lettered (in one transaction), never executed."""
        self.metrics.errors.labels("rejected").inc()
        log.warning("%s: rejected message %s: %s", self.consumer, entry_id.decode(), reason)
        self._dead_letter(entry_id, fields, f"rejected: {reason}", counted=True)

    def _dead_letter(self, entry_id, fields, reason: str, counted: bool = False) -> None:
        self.metrics.errors.labels("dead_letter").inc()
        owner = job_of(fields)
        record = {"entry": entry_id, "stream": self.stream, "reason": reason, "worker": self.consumer}
        if owner:
            record.update(job=owner[0], index=owner[1])
            self.fail(owner[0], f"frame {owner[1]} {reason}")
        pipe = self.client.pipeline(transaction=True)
        if counted:
            pipe.hincrby(self.keys.stats, "rejected", 1)
        pipe.xadd(self.keys.dead, record, maxlen=10_000, approximate=True)
        self._acknowledge(pipe, [entry_id])
        self._call(pipe.execute, "dead-letter")

    def _acknowledge(self, pipe, ids: list) -> None:
        if ids:
            pipe.xack(self.stream, WORKER_GROUP, *ids)
            pipe.xdel(self.stream, *ids)

    def _call(self, call, what: str):
        return retrying(self.config, call, what, self.outage)


def _entries(reply) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Stream entries as a script returns them (flat field lists) as (id, fields) pairs."""
    entries = []
    for entry_id, flat in reply:
        fields = dict(zip(flat[::2], flat[1::2])) if isinstance(flat, list) else {}
        entries.append((entry_id, fields))
    return entries
