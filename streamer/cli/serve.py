"""`streamer serve --redis URL`: status page, JSON API, health and Prometheus metrics of the jobs and workers.

One WSGI app on one port:

    /                              the status page (streamer/web: index.html, app.js, style.css)
    /api/status                    jobs, workers and backlogs (JSON)
    /api/jobs/JOB                  one job (JSON); POST /api/jobs/JOB/cancel cancels it
    /api/jobs/JOB/preview.jpg      the latest output frame of a running job
    /healthz                       the server is up
    /readyz                        Redis answers (503 when it does not)
    /metrics                       jobs by state, backlog, pending and lag per model, workers alive per model

Every job and worker record leaves through `redact_record`: passwords and tokens in URLs are never served.
Everything but the page's files and the probes' paths needs the token (streamer.access): from --token-file or
STREAMER_SERVE_TOKEN, or made at start and printed once; `--no-auth` only on a loopback address.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import threading
from importlib import resources

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily

from streamer.access import ANY, Access, default_hosts, guarded, is_loopback
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
    group = parser.add_argument_group("access")
    group.add_argument(
        "--token-file",
        metavar="FILE",
        help="file holding the token every API call, preview and cancel needs (env STREAMER_SERVE_TOKEN; "
        "default: a new token, printed once at start)",
    )
    group.add_argument(
        "--no-auth", action="store_true", help="no token (only with a loopback --host: anyone on this machine)"
    )
    group.add_argument(
        "--allowed-hosts",
        metavar="NAMES",
        help="comma-separated host names the page may be reached by, '*' for any "
        "(default: localhost, 127.0.0.1, ::1 and the --host address)",
    )
    group.add_argument("--metrics-auth", action="store_true", help="/metrics needs the token too (default: open)")
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
    web = resources.files("streamer.web")
    files = {
        name: (web.joinpath(name).read_bytes(), kind)
        for name, kind in (("index.html", "text/html"), ("app.js", "text/javascript"), ("style.css", "text/css"))
    }
    files[""] = files["index.html"]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(client, keys))
    metrics = make_wsgi_app(registry)
    jobs = JobStore(client, keys)
    lock = threading.Lock()  # a cancel reads then writes the state

    def get(path, environ, start_response):
        if path.removeprefix("/") in files:
            return respond(start_response, 200, *files[path.removeprefix("/")])
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


def access_of(args: argparse.Namespace) -> tuple[Access, bool]:
    """The access rules the options give, and whether the token was made here (to be shown once)."""
    hosts = default_hosts(args.host)
    if args.allowed_hosts:
        hosts = frozenset(name.strip().strip("[]").lower() for name in args.allowed_hosts.split(",") if name.strip())
    open_paths = {"/healthz", "/readyz"} if args.metrics_auth else {"/healthz", "/readyz", "/metrics"}
    if args.no_auth:
        if args.token_file:
            raise StreamerError("serve: --no-auth and --token-file contradict each other; give one")
        if not is_loopback(args.host):
            raise StreamerError(
                f"serve --host {args.host} --no-auth would let anyone who reaches it cancel jobs; drop --no-auth "
                "(a token is then needed) or bind --host 127.0.0.1 behind a proxy that authenticates"
            )
        return Access(None, hosts, open=frozenset(open_paths)), False
    made = False
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as file:
                token = file.read(4096).strip()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "not text"
            raise StreamerError(f"--token-file {args.token_file}: cannot read it ({reason})") from None
        if not token:
            raise StreamerError(f"--token-file {args.token_file}: the file is empty; put the token in it")
    elif os.environ.get("STREAMER_SERVE_TOKEN", "").strip():
        token = os.environ["STREAMER_SERVE_TOKEN"].strip()
    else:
        token, made = secrets.token_urlsafe(24), True
    if len(token) < 16:
        raise StreamerError("serve: the token is shorter than 16 characters; use a longer one (openssl rand -hex 24)")
    return Access(token, hosts, open=frozenset(open_paths)), made


def run(args: argparse.Namespace) -> int:
    access, made = access_of(args)
    config = redis_config(args)
    app = guarded(make_app(connect(config), Keys(config.namespace)), access)
    server = Server(app, args.host, args.port, "serve")
    shown = "localhost" if args.host in ("0.0.0.0", "::") or is_loopback(args.host) else args.host
    say(f"status page on http://{shown}:{server.port}/ (JSON at /api/status, /metrics, /healthz, /readyz)")
    if made:  # shown once, in the fragment: a browser never sends it to a server or a log
        say(f"token (shown once; keep one with --token-file): http://{shown}:{server.port}/#token={access.token}")
    if ANY in access.allowed_hosts:
        say("any Host header is accepted (--allowed-hosts '*')")
    try:
        server.thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
