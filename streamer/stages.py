"""Threads joined by bounded queues, stopped together: the machinery of every pipeline stage."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

END = object()  # end-of-stream marker travelling down a queue


class Stopped(Exception):
    """Raised inside a stage when another stage failed or the job was interrupted."""


class Stages:
    """A group of stage threads sharing one stop event; the first error stops them all."""

    def __init__(self):
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def run():
            try:
                target()
            except Stopped:
                pass
            except BaseException as error:
                self.errors.append(error)
                self.stop.set()

        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()
        return thread

    def put(self, target: queue.Queue, item) -> None:
        """Block until there is room (backpressure), unless the stages stop."""
        while not self.stop.is_set():
            try:
                target.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise Stopped

    def get(self, source: queue.Queue):
        while not self.stop.is_set():
            try:
                return source.get(timeout=0.1)
            except queue.Empty:
                continue
        raise Stopped

    def take(self, source: queue.Queue, size: int) -> list:
        """Up to `size` items; fewer only when END arrives (END itself is not returned)."""
        items = []
        while len(items) < size:
            item = self.get(source)
            if item is END:
                break
            items.append(item)
        return items

    def shutdown(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
