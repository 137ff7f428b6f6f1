"""Local worker processes for `streamer process --redis URL --workers N`."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator

from streamer.distributed.connection import RedisConfig
from streamer.models import ModelConfig


def worker_command(model: ModelConfig, redis: RedisConfig) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "streamer",
        "worker",
        "--model",
        model.name,
        "--redis",
        redis.url,
        "--namespace",
        redis.namespace,
        "--batch",
        str(model.batch_size),
        "--grace",
        str(redis.grace),
    ]
    if model.weights:
        command += ["--weights", model.weights]
    if model.device:
        command += ["--device", model.device]
    return command


@contextlib.contextmanager
def local_workers(count: int, model: ModelConfig, redis: RedisConfig) -> Iterator[list[subprocess.Popen]]:
    """Start `count` workers; on exit ask them to drain (SIGTERM) and wait for them."""
    processes = [subprocess.Popen(worker_command(model, redis), stdin=subprocess.DEVNULL) for _ in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
