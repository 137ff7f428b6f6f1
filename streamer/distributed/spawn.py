"""Local worker processes for `streamer process --redis URL --workers N`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

from streamer import typed_json
from streamer.distributed.connection import RedisConfig, socket_timeout
from streamer.errors import StreamerError
from streamer.models import ModelConfig

#: the model a spawned worker serves, written whole by the job codec (its flags would be a second field list)
MODEL_VARIABLE = "STREAMER_WORKER_MODEL"


def worker_command(redis: RedisConfig) -> list[str]:
    """The worker's command line; the Redis URL travels in STREAMER_REDIS, the model in MODEL_VARIABLE."""
    return [sys.executable, "-m", "streamer", "worker", "--namespace", redis.namespace, "--grace", str(redis.grace)]


def worker_environment(model: ModelConfig, redis: RedisConfig) -> dict[str, str]:
    """What a spawned worker is given besides its command line: the URL (which may hold a password) goes by
    environment, not argv, where `ps` would show it; the model as the job codec writes it."""
    return dict(os.environ, STREAMER_REDIS=redis.url, **{MODEL_VARIABLE: typed_json.dumps(model)})


def spawned_model() -> ModelConfig | None:
    """The model this process was started to serve by `local_workers`, or None (a worker started by hand)."""
    text = os.environ.get(MODEL_VARIABLE)
    if not text:
        return None
    try:
        return typed_json.loads(ModelConfig, text, MODEL_VARIABLE)
    except typed_json.FieldError as error:
        raise StreamerError(f"{error}; unset {MODEL_VARIABLE} to take the model from the command line") from None


@contextlib.contextmanager
def local_workers(count: int, model: ModelConfig, redis: RedisConfig) -> Iterator[list[subprocess.Popen]]:
    """Start `count` workers; on exit ask them to drain (SIGTERM) and wait for them."""
    environment = worker_environment(model, redis)
    processes = [
        subprocess.Popen(worker_command(redis), stdin=subprocess.DEVNULL, env=environment) for _ in range(count)
    ]
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        # they drain the batch in hand; with Redis gone they cannot, and are not waited for past its grace
        deadline = time.monotonic() + redis.grace + socket_timeout(redis.grace) + 2
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
