"""Long-lived threads under one supervisor: none of them dies without a word.

Each part runs `target(stop)` on its own thread until `stop` is set. An unexpected exception is logged
once, with its reason; the part is down while it waits (backoff doubling to `max_backoff`) and then starts
again. A part marked `fatal` is not restarted: its failure sets `stop` and `failed`, so the process ends and
exits non-zero for its own supervisor (Kubernetes, Compose, systemd) to restart. `ready()` is false while a
part is down, which /readyz reports.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Part:
    name: str
    target: Callable[[threading.Event], None]
    fatal: bool = False
    up: bool = True
    restarts: int = 0
    reason: str = ""
    thread: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    """Starts parts, restarts the ones that fail, and says which are down."""

    def __init__(self, stop: threading.Event, backoff: float = 0.5, max_backoff: float = 30.0):
        self.stop = stop
        self.backoff, self.max_backoff = backoff, max_backoff
        self.parts: list[Part] = []
        self.failed: str | None = None  # the reason a fatal part ended the process

    def start(self, name: str, target: Callable[[threading.Event], None], fatal: bool = False) -> Part:
        part = Part(name, target, fatal)
        part.thread = threading.Thread(target=self._run, args=(part,), name=name, daemon=True)
        self.parts.append(part)
        part.thread.start()
        return part

    def ready(self) -> bool:
        return self.failed is None and all(part.up for part in self.parts)

    def down(self) -> list[str]:
        return [f"{part.name}: {part.reason}" for part in self.parts if not part.up]

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for part in self.parts:
            if part.thread is not None:
                part.thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, part: Part) -> None:
        delay = self.backoff
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                part.target(self.stop)
                if self.stop.is_set():
                    return
                raise RuntimeError("returned before it was stopped")
            except Exception as error:  # any failure of a long-lived part is reported and acted on
                part.up, part.reason = False, f"{type(error).__name__}: {str(error)[:300]}"
                if part.fatal:
                    log.error("%s stopped: %s; exiting", part.name, part.reason)
                    self.failed = f"{part.name}: {part.reason}"
                    self.stop.set()
                    return
                if time.monotonic() - started > 60:  # it ran a good while: a new failure starts the backoff over
                    delay = self.backoff
                log.error("%s stopped: %s; restarting it in %.1f s", part.name, part.reason, delay)
                if self.stop.wait(delay):
                    return
                delay = min(delay * 2, self.max_backoff)
                part.restarts += 1
                part.up = True
