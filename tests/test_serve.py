"""`streamer serve`: health, readiness, Prometheus metrics, the JSON API, cancel and the page, on a real Redis."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from media import make_video
from redis_fixtures import ROOT, environment, free_port

from streamer.access import Access, default_hosts, guarded
from streamer.cli.serve import make_app
from streamer.distributed.connection import WORKER_GROUP, Keys, RedisConfig, connect
from streamer.distributed.jobs import DONE, JobSpec, JobStore
from streamer.httpd import Server, respond
from streamer.job import ProcessConfig
from streamer.service.worker import JOB_IDLE

SECRET_INPUT = "rtsp://admin:hunter2@camera.local/stream?token=abc123"
TOKEN = "s3cret-token-0123456789"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def exchange(url: str, method: str = "GET", headers: dict | None = None, data: bytes | None = None):
    """(status, headers, body) of one request."""
    if method == "POST" and data is None:
        data = b"{}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers or {}, method=method), timeout=10) as r:
            return r.status, r.headers, r.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode(errors="replace")


def request(
    url: str, method: str = "GET", content_type: str | None = None, token: str | None = TOKEN
) -> tuple[int, str, str]:
    """(status, content type, body), with the token unless `token` is None."""
    headers = {"Content-Type": content_type} if content_type else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    status, response_headers, body = exchange(url, method, headers)
    return status, response_headers["Content-Type"], body


def metric(text: str, name: str, labels: str = "") -> float | None:
    found = re.findall(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found[0]) if found else None


@pytest.fixture
def served(redis_server):
    """The serve app on a free port over redis_server, with two jobs, a live worker and a work stream
    with 5 entries: 2 delivered and unacknowledged, 3 not yet delivered."""
    client = connect(RedisConfig(url=redis_server.url, grace=1.0))
    keys = Keys("streamer")
    jobs = JobStore(client, keys)
    jobs.create(
        "running1", JobSpec(job=ProcessConfig(input="in.mp4")), total=100, input=SECRET_INPUT, output="/data/out.mp4"
    )
    jobs.update("running1", done=40, fps=20.0)
    jobs.create(
        "done1", JobSpec(job=ProcessConfig(input="in.mp4")), state=DONE, total=10, input="in.mp4", output="out.mp4"
    )
    client.sadd(keys.workers, "w1")
    client.hset(
        keys.worker("w1"),
        mapping={"model": "unet", "batch": 4, "fps": 12.5, "frames": 400, "last_seen": time.time()},
    )
    stream = keys.work("unet")
    client.xgroup_create(stream, WORKER_GROUP, id="0", mkstream=True)
    for index in range(5):
        client.xadd(stream, {"index": index})
    client.xreadgroup(WORKER_GROUP, "w1", {stream: ">"}, count=2)
    server = Server(guarded(make_app(client, keys), Access(TOKEN, default_hosts("127.0.0.1"))), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.port}", jobs
    server.close()


def test_health_and_readiness_follow_redis(served, redis_server):
    base, _ = served
    assert request(base + "/healthz")[::2] == (200, "ok\n")
    assert request(base + "/readyz")[::2] == (200, "ok\n")
    redis_server.stop()
    assert request(base + "/readyz")[0] == 503
    assert request(base + "/healthz")[0] == 200, "the server itself is alive"
    status, kind, body = request(base + "/api/status")
    assert status == 503 and kind.startswith("application/json") and "Redis" in json.loads(body)["error"]
    text = request(base + "/metrics")[2]
    assert metric(text, "streamer_redis_up") == 0
    assert "streamer_jobs" not in text
    redis_server.start()  # the same port: the client reconnects by itself
    assert request(base + "/readyz")[::2] == (200, "ok\n")


def test_metrics_count_jobs_backlog_and_workers(served):
    base, _ = served
    status, kind, text = request(base + "/metrics")
    assert status == 200 and kind.startswith("text/plain")
    assert metric(text, "streamer_redis_up") == 1
    assert metric(text, "streamer_jobs", '{state="running"}') == 1
    assert metric(text, "streamer_jobs", '{state="done"}') == 1
    assert metric(text, "streamer_jobs", '{state="cancelled"}') == 0
    assert metric(text, "streamer_backlog", '{model="unet"}') == 5
    assert metric(text, "streamer_pending", '{model="unet"}') == 2
    assert metric(text, "streamer_lag", '{model="unet"}') == 3
    assert metric(text, "streamer_workers", '{model="unet"}') == 1
    assert "hunter2" not in text


def test_api_serves_redacted_records(served):
    base, _ = served
    status, kind, body = request(base + "/api/status")
    assert status == 200 and kind.startswith("application/json")
    assert "hunter2" not in body and "abc123" not in body
    state = json.loads(body)
    jobs = {job["job"]: job for job in state["jobs"]}
    assert jobs["running1"]["input"] == "rtsp://admin:***@camera.local/stream?token=***"
    assert jobs["running1"]["output"] == "/data/out.mp4"
    assert (jobs["running1"]["done"], jobs["running1"]["total"], jobs["running1"]["eta"]) == (40, 100, 3.0)
    assert [(w["name"], w["fps"]) for w in state["workers"]] == [("w1", 12.5)]
    assert state["backlogs"] == [{"stream": "streamer:work:unet", "length": 5, "pending": 2, "lag": 3}]

    status, _, body = request(base + "/api/jobs/running1")
    assert status == 200 and "hunter2" not in body and json.loads(body)["state"] == "running"
    status, _, body = request(base + "/api/jobs/nope")
    assert status == 404 and "no job" in json.loads(body)["error"]
    assert request(base + "/api/jobs/running1/preview.jpg")[0] == 404
    assert request(base + "/nowhere")[0] == 404


def test_cancel_a_job(served):
    base, jobs = served
    cancel = base + "/api/jobs/running1/cancel"
    assert request(cancel, "POST")[0] == 415, "a plain form post (another site's page) cannot cancel"
    assert jobs.state("running1") == "running"
    status, _, body = request(cancel, "POST", "application/json")
    assert status == 200 and json.loads(body) == {"job": "running1", "state": "cancelled"}
    assert jobs.state("running1") == "cancelled"
    assert request(cancel, "POST", "application/json")[0] == 409
    assert request(base + "/api/jobs/done1/cancel", "POST", "application/json")[0] == 409
    assert jobs.state("done1") == "done"
    assert request(base + "/api/jobs/nope/cancel", "POST", "application/json")[0] == 404
    assert request(base + "/api/jobs/running1", "DELETE")[0] == 405


def test_page(served):
    base, _ = served
    status, kind, body = request(base + "/")
    assert status == 200 and kind.startswith("text/html")
    assert "<title>streamer status</title>" in body
    assert "<script>" not in body and "<style>" not in body and not re.search(r"<[^>]+\son\w+=", body)
    status, kind, script = request(base + "/app.js", token=None)  # the page's own files hold no data
    assert status == 200 and kind.startswith("text/javascript")
    assert "/api/status" in script and "/cancel" in script
    assert request(base + "/style.css", token=None)[:2] == (200, "text/css; charset=utf-8")


API_ROUTES = [
    ("GET", "/api/status"),
    ("GET", "/api/jobs/running1"),
    ("GET", "/api/jobs/nope"),
    ("GET", "/api/jobs/running1/preview.jpg"),
    ("POST", "/api/jobs/running1/cancel"),
    ("GET", "/nowhere"),
    ("DELETE", "/api/jobs/running1"),
]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token-0123456789",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {base64.b64encode(b'streamer:nope').decode()}",
        f"Token {TOKEN}",
        "Basic !!!",
        "Bearer",
    ],
)
def test_every_route_needs_the_token(served, authorization):
    base, jobs = served
    for method, path in API_ROUTES:
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        status, response_headers, body = exchange(base + path, method, headers)
        assert status == 401, (method, path, status)
        assert response_headers["WWW-Authenticate"].startswith("Bearer"), "not Basic: no browser dialog"
        assert "hunter2" not in body and "running1" not in body
    assert jobs.state("running1") == "running"
    for path in ("/healthz", "/readyz", "/metrics"):  # the probes' paths stay open
        assert exchange(base + path)[0] == 200, path


def test_basic_auth_takes_the_token_as_password(served):
    base, jobs = served
    for user in ("streamer", "", "anyone"):
        basic = base64.b64encode(f"{user}:{TOKEN}".encode()).decode()
        status, _, body = exchange(base + "/api/status", headers={"Authorization": f"Basic {basic}"})
        assert status == 200 and "running1" in body


def test_foreign_host_and_origin_are_refused(served):
    base, jobs = served
    port = base.rsplit(":", 1)[1]
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.2", "localhost.evil.example", f"[::2]:{port}"):
        status, _, body = exchange(base + "/api/status", headers={**auth, "Host": host})
        assert status == 403 and "--allowed-hosts" in json.loads(body)["error"], host
        assert exchange(base + "/", headers={"Host": host})[0] == 403, "DNS rebinding gets no page either"
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
        assert exchange(base + "/api/status", headers={**auth, "Host": host})[0] == 200, host
    assert exchange(base + "/healthz", headers={"Host": "10.1.2.3:8080"})[0] == 200, "probes send the pod address"

    cancel = base + "/api/jobs/running1/cancel"
    for origin in ("http://evil.example", f"http://127.0.0.1:{int(port) + 1}", "null", f"https://evil.example:{port}"):
        status, _, body = exchange(cancel, "POST", {**auth, "Origin": origin})
        assert status == 403 and "cross-origin" in body, origin
    assert exchange(cancel, "POST", {**auth, "Sec-Fetch-Site": "cross-site"})[0] == 403
    assert jobs.state("running1") == "running"
    assert exchange(cancel, "POST", {**auth, "Origin": f"http://127.0.0.1:{port}"})[0] == 200
    assert jobs.state("running1") == "cancelled"


def test_security_headers_on_every_response(served):
    base, _ = served
    for method, path, token in [
        ("GET", "/", None),
        ("GET", "/app.js", None),
        ("GET", "/api/status", TOKEN),
        ("GET", "/api/status", None),
        ("GET", "/nowhere", TOKEN),
        ("GET", "/healthz", None),
        ("GET", "/metrics", None),
        ("POST", "/api/jobs/done1/cancel", TOKEN),
    ]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        _, response_headers, _ = exchange(base + path, method, {**headers, "Content-Type": "application/json"})
        for name, value in SECURITY_HEADERS.items():
            assert response_headers[name] == value, (path, name)
        policy = response_headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_request_size_and_time_are_bounded(served, redis_server, capfd):
    base, jobs = served
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    status, _, _ = exchange(base + "/api/jobs/running1/cancel", "POST", auth, b"{" + b" " * 100_000 + b"}")
    assert status == 413 and jobs.state("running1") == "running"
    # a client that sends half a request and then nothing is cut off after the server's timeout
    client = connect(RedisConfig(url=redis_server.url, grace=1.0))
    server = Server(
        guarded(make_app(client, Keys("streamer")), Access(TOKEN, default_hosts("127.0.0.1"))),
        "127.0.0.1",
        0,
        timeout=0.5,
    )
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
            slow.sendall(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n")
            started = time.monotonic()
            assert slow.recv(1024) == b""  # closed by the server, no answer
            assert time.monotonic() - started < 5
        time.sleep(0.2)
    finally:
        server.close()
    assert "Traceback" not in capfd.readouterr().err, "a client that timed out is dropped quietly"

    # connections beyond the bound are closed at once; served again once the idle ones are gone
    server = Server(lambda environ, start: respond(start, 200, "ok"), "127.0.0.1", 0, timeout=30, max_connections=3)
    try:
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(3)]
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
            extra.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert extra.recv(1024) == b""
        for connection in idle:
            connection.close()
        time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=10) as response:
            assert response.read() == b"ok"
    finally:
        server.close()


def test_serve_refuses_to_listen_openly_without_a_credential(tmp_path, run_cli, monkeypatch):
    monkeypatch.delenv("STREAMER_SERVE_TOKEN", raising=False)
    redis = ("--redis", "redis://127.0.0.1:1/0")  # never reached: the options are checked first
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.com"):
        code, _, err = run_cli("serve", "--host", host, "--no-auth", *redis)
        assert code == 2
        [line] = err.strip().splitlines()
        assert "--no-auth" in line and "--host 127.0.0.1" in line and "token" in line, line
    empty = tmp_path / "empty"
    empty.write_text("\n")
    code, _, err = run_cli("serve", "--token-file", empty, *redis)
    assert code == 2 and "empty" in err
    code, _, err = run_cli("serve", "--token-file", tmp_path / "missing", *redis)
    assert code == 2 and "missing" in err
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00token")
    code, _, err = run_cli("serve", "--token-file", tmp_path / "binary", *redis)
    assert code == 2 and "not text" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("STREAMER_SERVE_TOKEN", "short")
    code, _, err = run_cli("serve", *redis)
    assert code == 2 and "16 characters" in err and "short" not in err.replace("shorter", "")


def test_options_make_the_access_rules(tmp_path, monkeypatch):
    from streamer.cli import build_parser
    from streamer.cli.serve import access_of

    monkeypatch.delenv("STREAMER_SERVE_TOKEN", raising=False)
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")

    def access(*args):
        return access_of(build_parser().parse_args(["serve", "--redis", "redis://h/0", *args]))

    rules, made = access("--token-file", str(token))
    assert (rules.token, made) == (TOKEN, False) and "/metrics" in rules.open
    assert rules.allowed_hosts == {"localhost", "127.0.0.1", "::1"}
    rules, _ = access("--token-file", str(token), "--metrics-auth", "--host", "10.0.0.5")
    assert "/metrics" not in rules.open and rules.allowed_hosts == {"localhost", "127.0.0.1", "::1", "10.0.0.5"}
    rules, _ = access("--token-file", str(token), "--allowed-hosts", "Status.Example.com, [::1]")
    assert rules.allowed_hosts == {"status.example.com", "::1"}
    assert rules.host_allowed("status.example.com:8443") and not rules.host_allowed("localhost")
    monkeypatch.setenv("STREAMER_SERVE_TOKEN", TOKEN)
    assert access()[0].token == TOKEN
    monkeypatch.delenv("STREAMER_SERVE_TOKEN")
    first, second = access(), access()
    assert first[1] and len(first[0].token) >= 32 and first[0].token != second[0].token, "made anew, at random"
    rules, _ = access("--no-auth", "--host", "127.0.0.2")
    assert rules.token is None and rules.authorized("")


def test_metrics_listen_on_loopback_unless_told(monkeypatch):
    from streamer.cli import build_parser

    monkeypatch.delenv("STREAMER_METRICS_HOST", raising=False)
    for command in (["worker"], ["process", "in.mp4"]):
        assert build_parser().parse_args([*command, "--redis", "redis://h/0"]).metrics_host == "127.0.0.1"
    monkeypatch.setenv("STREAMER_METRICS_HOST", "0.0.0.0")  # as the images set it
    assert build_parser().parse_args(["worker", "--redis", "redis://h/0"]).metrics_host == "0.0.0.0"
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        assert "STREAMER_METRICS_HOST=0.0.0.0" in (ROOT / "deploy" / dockerfile).read_text()


def test_a_token_is_made_and_shown_once_when_none_is_given(redis_server):
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "streamer", "serve", "--redis", redis_server.url, "--port", str(port)],
        env={k: v for k, v in environment().items() if k != "STREAMER_SERVE_TOKEN"},
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [serve.stderr.readline(), serve.stderr.readline()]
        [token] = re.findall(r"#token=([A-Za-z0-9_-]{20,})$", lines[1].strip())
        base = f"http://127.0.0.1:{port}"
        assert request(base + "/api/status", token=token)[0] == 200
        assert request(base + "/api/status", token=token[:-1] + ("B" if token.endswith("A") else "A"))[0] == 401
        assert request(base + "/api/status", token=None)[0] == 401
    finally:
        serve.terminate()
        rest = serve.communicate(timeout=10)[1]
    assert token not in rest, "shown once"


def test_process_over_redis_records_input_and_output(tmp_path, redis_server, workers, run_cli):
    """A job run with `process --redis` shows its input and output; the worker logs its start and end."""
    worker = workers.start("--batch", "4")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line for line in worker.stderr), daemon=True)
    reader.start()
    source = make_video(tmp_path / "in.mp4", frames=12, width=64, height=48)
    output = tmp_path / "out.mp4"
    code, _, err = run_cli(
        "process", source, "-o", output, "--model", "tests.models:left_half", "--redis", redis_server.url, "-q"
    )
    assert code == 0, err
    client = connect(RedisConfig(url=redis_server.url))
    [(job, record)] = JobStore(client, Keys("streamer")).all()
    assert (record["input"], record["output"], record["state"]) == (str(source), str(output), "done")
    ended = rf"job {job} done: 12 frames here"
    deadline = time.monotonic() + JOB_IDLE + 20  # the worker checks a job's state once idle for JOB_IDLE
    while time.monotonic() < deadline and not re.search(ended, "".join(lines)):
        time.sleep(0.1)
    workers.stop_all()
    reader.join(timeout=10)
    log = "".join(lines)
    assert f"job {job} started" in log
    assert re.search(ended, log), log
    # one line when it can take frames, before any job's: what it serves, in what batches, from which stream
    ready = re.findall(r"^streamer: INFO: \S+ ready: model (\S+), batch (\d+), stream (\S+)$", log, re.M)
    assert ready == [("tests.models:left_half", "4", "streamer:work:tests.models:left_half")], log
    assert log.index(" ready: ") < log.index(f"job {job} started")


def test_worker_fps_is_a_recent_window(monkeypatch):
    """The fps a worker announces (status, the page) is over the last 10 s: an idle worker shows 0, not its
    lifetime average; the process/worker `streamer_fps` gauge likewise."""
    import streamer.service.worker as loop
    from streamer.metrics import Metrics
    from streamer.models import ModelConfig

    clock = [1000.0]
    monkeypatch.setattr(loop.time, "monotonic", lambda: clock[0])
    worker = loop.Worker(loop.WorkerConfig(model=ModelConfig(name="identity")), queue=object())
    metrics = Metrics()
    fps = []
    for second in range(0, 60, 2):  # 60 s at 30 fps, a heartbeat every 2 s
        clock[0] = 1000.0 + second
        worker.frames = 30 * second
        metrics.wrote(60 if second else 0)
        fps.append(worker._fps())
    assert fps[-1] == pytest.approx(30.0)
    assert metrics.fps._value.get() == pytest.approx(30.0)
    for second in range(60, 74, 2):  # then idle for 14 s
        clock[0] = 1000.0 + second
        idle = worker._fps()
    assert idle == 0.0
    metrics.wrote(0)
    assert metrics.fps._value.get() == 0.0
