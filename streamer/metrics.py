"""Prometheus metrics and health endpoints of one process (`--metrics-port`).

Each process keeps its metrics in its own registry, created by the command and handed to the
parts it measures; the HTTP server answers /metrics, /healthz and /readyz.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from streamer.httpd import App, Server, respond

FPS_WINDOW = 10.0  # seconds the fps gauge is measured over
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
        self.fps = Gauge("streamer_fps", f"Output frames per second over the last {FPS_WINDOW:g} s", registry=r)
        self._written = 0
        self._recent = deque([(time.monotonic(), 0)])  # (time, frames written) over the last FPS_WINDOW

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
        now = time.monotonic()
        self._recent.append((now, self._written))
        while len(self._recent) > 2 and now - self._recent[1][0] >= FPS_WINDOW:
            self._recent.popleft()
        since, written = self._recent[0]
        if now > since:
            self.fps.set((self._written - written) / (now - since))


def health_app(registry: CollectorRegistry, ready: Callable[[], bool], alive: Callable[[], bool]) -> App:
    """WSGI: /metrics (prometheus_client's app on `registry`), /healthz (`alive`), /readyz (`ready`)."""
    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path in ("/healthz", "/readyz"):
            ok = (alive if path == "/healthz" else ready)()
            return respond(start_response, 200 if ok else 503, "ok\n" if ok else "not ready\n")
        return respond(start_response, 404, "not found\n")

    return app


class HealthServer:
    """HTTP on host:port: /metrics, /healthz (the process is alive), /readyz (it can do work)."""

    def __init__(
        self,
        metrics: Metrics,
        port: int,
        ready: Callable[[], bool] = lambda: True,
        alive: Callable[[], bool] = lambda: True,
        host: str = "127.0.0.1",
    ):
        self.server = Server(health_app(metrics.registry, ready, alive), host, port, "metrics", "--metrics-port")
        self.port = self.server.port

    def close(self) -> None:
        self.server.close()
