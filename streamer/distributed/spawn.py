"""Local worker processes for `streamer process --redis URL --workers N`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

from streamer.distributed.connection import RedisConfig, socket_timeout
from streamer.models import ModelConfig


def worker_command(model: ModelConfig, redis: RedisConfig) -> list[str]:
    """The worker's command line; the Redis URL travels in STREAMER_REDIS."""
    command = [
        sys.executable,
        "-m",
        "streamer",
        "worker",
        "--model",
        model.name,
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
    if model.mixed_precision:
        command += ["--mixed-precision"]
    if model.runtime != "tf":
        command += ["--runtime", model.runtime]
    if model.precision != "auto":
        command += ["--precision", model.precision]
    if model.gpu_memory_limit:
        command += ["--gpu-memory-limit", str(model.gpu_memory_limit)]
    if model.threads:
        command += ["--threads", str(model.threads)]
    if model.config_file:
        command += ["--config", model.config_file]
    for key, value in model.settings.items():
        command += ["--set", f"{key}={json.dumps(value)}"]
    if model.class_names:
        command += ["--class-names", ",".join(model.class_names)]
    if model.exclude:
        command += ["--exclude", ",".join(model.exclude)]
    return command


@contextlib.contextmanager
def local_workers(count: int, model: ModelConfig, redis: RedisConfig) -> Iterator[list[subprocess.Popen]]:
    """Start `count` workers; on exit ask them to drain (SIGTERM) and wait for them."""
    # the URL (which may hold a password) goes by environment, not argv, where `ps` would show it
    environment = dict(os.environ, STREAMER_REDIS=redis.url)
    processes = [
        subprocess.Popen(worker_command(model, redis), stdin=subprocess.DEVNULL, env=environment) for _ in range(count)
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
