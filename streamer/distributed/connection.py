"""Connecting to Redis, naming keys, and riding out short outages within a grace period."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from streamer.errors import StreamerError
from streamer.secrets import redact

if TYPE_CHECKING:  # redis-py is imported by what talks to Redis, so an in-process job never loads it
    import redis

T = TypeVar("T")
CODECS = ("raw", "png", "jpeg", "webp")  # how frames may travel (streamer.distributed.messages)


@dataclass
class RedisConfig:
    """Where Redis is and how this deployment's keys are named."""

    url: str = "redis://127.0.0.1:6379/0"  # redis:// or rediss:// (TLS), user:password@, /db
    namespace: str = "streamer"  # prefixes every key, so deployments can share a Redis
    grace: float = 10.0  # seconds to keep retrying when Redis goes away
    in_flight: int = 64  # frames of one job sent but not yet back: bounds Redis memory
    job_ttl: float = 24 * 3600  # seconds a finished job's record stays
    lease: float = 60.0  # seconds a running job's keys outlive its producer's last heartbeat


class Keys:
    """Every key this deployment uses, under one namespace."""

    def __init__(self, namespace: str):
        self.ns = namespace

    def work(self, model: str) -> str:
        return f"{self.ns}:work:{model}"

    def results(self, job: str) -> str:
        return f"{self.ns}:results:{job}"

    def job(self, job: str) -> str:
        return f"{self.ns}:job:{job}"

    @property
    def jobs(self) -> str:
        return f"{self.ns}:jobs"

    @property
    def submitted(self) -> str:
        return f"{self.ns}:submitted"

    def preview(self, job: str) -> str:
        return f"{self.ns}:preview:{job}"

    def worker(self, name: str) -> str:
        return f"{self.ns}:worker:{name}"

    @property
    def workers(self) -> str:
        return f"{self.ns}:workers"

    @property
    def dead(self) -> str:
        return f"{self.ns}:dead"

    @property
    def stats(self) -> str:
        return f"{self.ns}:stats"


WORKER_GROUP = "workers"
RUNNER_GROUP = "runners"


def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """Create a consumer group (and its stream) unless it exists."""
    import redis

    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


class RedisLost(StreamerError):
    """Redis stayed unreachable for the whole grace period."""


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    return redact(url)


def socket_timeout(grace: float) -> float:
    """Seconds one Redis call may block: a share of the grace period, so that `retrying` gives up
    within grace + this (a frozen Redis accepts connections but never answers)."""
    return max(1.0, min(grace / 2, 30.0))


def connect(config: RedisConfig) -> redis.Redis:
    """A client for the URL; fails with a clear message when Redis cannot be reached."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    timeout = socket_timeout(config.grace)
    try:
        client = redis.Redis.from_url(
            config.url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            health_check_interval=15,
            # `retrying` owns retries and their deadline; redis-py's own (3 by default) would multiply the wait
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError as error:
        raise StreamerError(
            f"--redis {redacted(config.url)}: {error}; use redis://[user:password@]host:port/db"
        ) from None
    retrying(config, lambda: client.ping(), "connect")
    return client


class Outage:
    """Since when Redis has not answered one part of a process (a producer's transport, a worker's queue, a
    runner). Its calls share it, so that calls made one after another while Redis is away give up together,
    `grace` seconds after the first failure, rather than each waiting a grace period of its own."""

    def __init__(self) -> None:
        self.since: float | None = None


def retrying(config: RedisConfig, call: Callable[[], T], what: str, outage: Outage | None = None) -> T:
    """Run a Redis call, retrying connection errors for up to `config.grace` seconds (exponential backoff,
    at most 1 s apart) counted from the start of the first call of `outage` (or this call) that failed; no
    new attempt starts after the deadline, so this returns or raises `RedisLost` within grace + one socket
    timeout of Redis going away, however many calls are made meanwhile."""
    import redis

    outage = outage or Outage()
    delay = 0.1
    while True:
        if outage.since is not None and time.monotonic() - outage.since >= config.grace:
            raise _lost(config, what, "no answer")
        started = time.monotonic()
        try:
            result = call()
            outage.since = None
            return result
        except (redis.AuthenticationError, redis.AuthenticationWrongNumberOfArgsError) as error:
            where = redacted(config.url)
            if "required" in str(error).lower():
                raise StreamerError(f"Redis at {where} needs a password: give redis://[user]:PASSWORD@host") from None
            raise StreamerError(f"Redis at {where} refused the credentials ({error}); check the URL") from None
        except (redis.ConnectionError, redis.TimeoutError) as error:
            if outage.since is None:  # the grace counts from when the call that failed began: a frozen Redis
                outage.since = started  # takes a socket timeout to tell, which is not added to the grace
            left = outage.since + config.grace - time.monotonic()
            if left <= 0:
                raise _lost(config, what, redact(error)) from None
            time.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)


def _lost(config: RedisConfig, what: str, reason: str) -> RedisLost:
    return RedisLost(
        f"lost Redis at {redacted(config.url)} ({what}: {reason}); gave up after {config.grace:g} s, "
        "check that it is running"
    )
