"""A pool of job runners in this process, each a supervised thread: what `worker --jobs N`, `batch` and
`batch --join` start to take submitted jobs and batch videos."""

from __future__ import annotations

import os
import socket
import threading

from streamer.distributed.confine import Confinement
from streamer.distributed.connection import RedisConfig, connect
from streamer.service.runner import Runner
from streamer.service.supervisor import Supervisor


class RunnerPool:
    """`count` runners on the submitted queue until `stop` is set; a runner that fails is logged and restarted."""

    def __init__(
        self,
        config: RedisConfig,
        count: int,
        stop: threading.Event,
        confinement: Confinement,
        prefix: str | None = None,
        abandoned: float = 60.0,
        storage: dict | None = None,
        supervisor: Supervisor | None = None,
    ):
        self.supervisor = supervisor or Supervisor(stop)
        """Runners are named `prefix` and their slot (default: host-pid-runner0, host-pid-runner1, ...)."""
        prefix = prefix or f"{socket.gethostname()}-{os.getpid()}-runner"
        self.runners = []
        for slot in range(count):
            runner = Runner(connect(config), config, f"{prefix}{slot}", abandoned=abandoned, storage=storage)
            runner.confinement = confinement
            self.runners.append(runner)
            self.supervisor.start(f"runner{slot}", runner.serve)

    def ready(self) -> bool:
        return self.supervisor.ready()

    def join(self, timeout: float) -> None:
        self.supervisor.join(timeout)
