"""`streamer serve`: health, readiness, Prometheus metrics, the JSON API, cancel and the page, on a real Redis."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request

import pytest
from media import make_video

from streamer.cli.serve import make_app
from streamer.distributed.connection import WORKER_GROUP, Keys, RedisConfig, connect
from streamer.distributed.jobs import DONE, JobSpec, JobStore
from streamer.httpd import Server
from workers.loop import JOB_IDLE

SECRET_INPUT = "rtsp://admin:hunter2@camera.local/stream?token=abc123"


def request(url: str, method: str = "GET", content_type: str | None = None) -> tuple[int, str, str]:
    """(status, content type, body)."""
    headers = {"Content-Type": content_type} if content_type else {}
    data = b"{}" if method == "POST" else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers, method=method), timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


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
    jobs.create("running1", JobSpec(), total=100, input=SECRET_INPUT, output="/data/out.mp4")
    jobs.update("running1", done=40, fps=20.0)
    jobs.create("done1", JobSpec(), state=DONE, total=10, input="in.mp4", output="out.mp4")
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
    server = Server(make_app(client, keys), "127.0.0.1", 0)
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
    assert "/api/status" in body and "/cancel" in body


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


def test_worker_fps_is_a_recent_window(monkeypatch):
    """The fps a worker announces (status, the page) is over the last 10 s: an idle worker shows 0, not its
    lifetime average; the process/worker `streamer_fps` gauge likewise."""
    import workers.loop as loop
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
