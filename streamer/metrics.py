"""Prometheus metrics and health endpoints of one process (`--metrics-port`).

Each process keeps its metrics in its own registry, created by the command and handed to the
parts it measures; the HTTP server answers /metrics, /healthz and /readyz.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from streamer.httpd import QuietHandler

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters, gauges and histograms of a pipeline or a worker."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames_in = Counter("streamer_frames_in", "Frames decoded (process) or received (worker)", registry=r)
        self.frames_out = Counter("streamer_frames_out", "Frames encoded (process) or sent back (worker)", registry=r)
        self.dropped = Counter("streamer_frames_dropped", "Frames dropped to keep a live stream current", registry=r)
        self.errors = Counter("streamer_errors", "Errors by kind", ["kind"], registry=r)
        self.stage_seconds = Histogram(
            "streamer_stage_seconds",
            "Seconds per frame (per batch for inference) in a stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "streamer_batch_size", "Frames per model call", buckets=(1, 2, 4, 8, 16, 32, 64), registry=r
        )
        self.queue_depth = Gauge("streamer_queue_depth", "Items waiting in a queue", ["queue"], registry=r)
        self.fps = Gauge("streamer_fps", "Output frames per second since the start", registry=r)
        self._started = time.monotonic()
        self._written = 0

    @contextmanager
    def timed(self, stage: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds.labels(stage).observe(time.perf_counter() - started)

    def wrote(self, frames: int = 1) -> None:
        self.frames_out.inc(frames)
        self._written += frames
        elapsed = time.monotonic() - self._started
        if elapsed > 0:
            self.fps.set(self._written / elapsed)


class HealthServer:
    """HTTP on 0.0.0.0:port: /metrics, /healthz (the process is alive), /readyz (it can do work)."""

    def __init__(
        self,
        metrics: Metrics,
        port: int,
        ready: Callable[[], bool] = lambda: True,
        alive: Callable[[], bool] = lambda: True,
        host: str = "0.0.0.0",
    ):
        registry = metrics.registry

        class Handler(QuietHandler):
            def do_GET(self):
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self.send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    ok = (alive if path == "/healthz" else ready)()
                    self.send(200 if ok else 503, b"ok\n" if ok else b"not ready\n", "text/plain")
                else:
                    self.send(404, b"not found\n", "text/plain")

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
