"""`streamer serve --redis URL`: status page, JSON API, health and Prometheus metrics of the jobs and workers.

One WSGI app on one port:

    /                              the status page (streamer/web/index.html)
    /api/status                    jobs, workers and backlogs (JSON)
    /api/jobs/JOB                  one job (JSON); POST /api/jobs/JOB/cancel cancels it
    /api/jobs/JOB/preview.jpg      the latest output frame of a running job
    /healthz                       the server is up
    /readyz                        Redis answers (503 when it does not)
    /metrics                       jobs by state, backlog, pending and lag per model, workers alive per model

Every job and worker record leaves through `redact_record`: passwords and tokens in URLs are never served.
"""

from __future__ import annotations

import argparse
import re
import threading
from importlib import resources

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily

from streamer.cli.common import add_redis_arguments, redis_config
from streamer.cli.status import snapshot
from streamer.distributed.connection import Keys, connect
from streamer.distributed.jobs import CANCELLED, FINAL, LOST, JobStore
from streamer.errors import StreamerError
from streamer.httpd import App, Server, respond, respond_json
from streamer.progress import say
from streamer.secrets import redact_record

JOB = r"([A-Za-z0-9_.:-]+)"
PREVIEW = re.compile(rf"^/api/jobs/{JOB}/preview\.jpg$")
ONE_JOB = re.compile(rf"^/api/jobs/{JOB}$")
CANCEL = re.compile(rf"^/api/jobs/{JOB}/cancel$")
STATES = ("running", LOST, "done", "failed", CANCELLED)  # always exported, 0 when no job is in them


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "serve", help="status page, JSON API, /healthz, /readyz and /metrics of the jobs, workers and backlogs"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    add_redis_arguments(parser, required=True)
    parser.set_defaults(run=run)


class StateCollector:
    """Prometheus collector of what Redis holds, read at each scrape: jobs by state, the backlog (entries),
    pending (delivered, not acknowledged) and lag (not yet delivered) of each model's work stream, live
    workers per model; `streamer_redis_up` is 0 when Redis did not answer (and the rest is left out)."""

    def __init__(self, client, keys: Keys):
        self.client, self.keys = client, keys

    def collect(self):
        up = GaugeMetricFamily("streamer_redis_up", "1 when Redis answered this scrape")
        try:
            state = snapshot(self.client, self.keys)
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("streamer_jobs", "Known jobs by state", labels=["state"])
        counts = dict.fromkeys(STATES, 0)
        for job in state["jobs"]:
            counts[job["state"] or "unknown"] = counts.get(job["state"] or "unknown", 0) + 1
        for name, count in counts.items():
            jobs.add_metric([name], count)
        yield jobs
        prefix = self.keys.work("")
        backlog = GaugeMetricFamily("streamer_backlog", "Entries in a model's work stream", labels=["model"])
        pending = GaugeMetricFamily(
            "streamer_pending", "Frames delivered to a worker and not yet acknowledged", labels=["model"]
        )
        lag = GaugeMetricFamily("streamer_lag", "Frames not yet delivered to any worker", labels=["model"])
        for stream in state["backlogs"]:
            model = stream["stream"].removeprefix(prefix)
            backlog.add_metric([model], stream["length"])
            pending.add_metric([model], stream["pending"])
            if stream["lag"] is not None:
                lag.add_metric([model], stream["lag"])
        yield from (backlog, pending, lag)
        workers = GaugeMetricFamily("streamer_workers", "Live workers (heartbeat within its TTL)", labels=["model"])
        alive: dict[str, int] = {}
        for worker in state["workers"]:
            alive[worker["model"]] = alive.get(worker["model"], 0) + 1
        for model, count in sorted(alive.items()):
            workers.add_metric([model], count)
        yield workers


def make_app(client, keys: Keys) -> App:
    """The WSGI app of `streamer serve` over a Redis client."""
    page = resources.files("streamer.web").joinpath("index.html").read_bytes()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(client, keys))
    metrics = make_wsgi_app(registry)
    jobs = JobStore(client, keys)
    lock = threading.Lock()  # a cancel reads then writes the state

    def get(path, environ, start_response):
        if path in ("/", "/index.html"):
            return respond(start_response, 200, page, "text/html")
        if path == "/healthz":
            return respond(start_response, 200, "ok\n")
        if path == "/readyz":
            try:
                client.ping()
            except redis.RedisError:
                return respond(start_response, 503, "redis unreachable\n")
            return respond(start_response, 200, "ok\n")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/api/status":
            return respond_json(start_response, 200, redact_record(snapshot(client, keys)))
        if match := ONE_JOB.match(path):
            try:
                state = snapshot(client, keys, match.group(1))
            except StreamerError as error:
                return respond_json(start_response, 404, {"error": str(error)})
            return respond_json(start_response, 200, redact_record(state["jobs"][0]))
        if match := PREVIEW.match(path):
            image = client.get(keys.preview(match.group(1)))
            if image is None:
                return respond(start_response, 404, "no preview\n")
            return respond(start_response, 200, image, "image/jpeg")
        return respond(start_response, 404, "not found\n")

    def post(path, environ, start_response):
        match = CANCEL.match(path)
        if not match:
            return respond(start_response, 404, "not found\n")
        # JSON only: a form on another site cannot send it without a preflight that this server never answers
        if environ.get("CONTENT_TYPE", "").split(";")[0].strip() != "application/json":
            return respond_json(start_response, 415, {"error": "send Content-Type: application/json"})
        job = match.group(1)
        with lock:
            state = jobs.state(job)
            if state is None:
                return respond_json(start_response, 404, {"error": f"no job {job!r}"})
            if state in FINAL:
                return respond_json(start_response, 409, {"error": f"job {job} already ended ({state})"})
            jobs.update(job, state=CANCELLED, reason="cancelled on the status page")
        return respond_json(start_response, 200, {"job": job, "state": CANCELLED})

    def app(environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if method in ("GET", "HEAD"):
                return get(path, environ, start_response)
            if method == "POST":
                return post(path, environ, start_response)
            return respond(start_response, 405, "method not allowed\n")
        except redis.RedisError:
            return respond_json(start_response, 503, {"error": "Redis does not answer; /readyz says when it does"})

    return app


def run(args: argparse.Namespace) -> int:
    config = redis_config(args)
    server = Server(make_app(connect(config), Keys(config.namespace)), args.host, args.port, "serve")
    say(f"status page on http://{args.host}:{server.port}/ (JSON at /api/status, /metrics, /healthz, /readyz)")
    try:
        server.thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
