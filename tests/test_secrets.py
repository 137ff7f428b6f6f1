"""Passwords and tokens in URLs never leave: not on stderr, not in JSON logs, not in `status`, not in the web API."""

import json
import logging
import subprocess
import sys
from wsgiref.util import setup_testing_defaults

import pytest
from redis_fixtures import ROOT, RedisServer, environment, free_port
from test_redis import KEYS, LEFT_HALF, wait_for

from streamer.secrets import redact, redact_record

CAMERA = "CamSecret42"
TOKEN = "TokSecret42"
REDIS = "RedisSecret42"
SECRETS = (CAMERA, TOKEN, REDIS)


@pytest.mark.parametrize(
    "text, shown",
    [
        ("rtsp://admin:pw@10.0.0.5:554/live", "rtsp://admin:***@10.0.0.5:554/live"),
        ("redis://:pw@redis:6379/0", "redis://:***@redis:6379/0"),
        ("rediss://user:p@ss@host:6380", "rediss://user:***@host:6380"),
        ("cannot open http://u:pw@cam/a.mp4 (refused)", "cannot open http://u:***@cam/a.mp4 (refused)"),
        ("https://h/x.mp4?token=abc&t=1", "https://h/x.mp4?token=***&t=1"),
        (
            "s3.amazonaws.com/b/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=ff&X-Amz-Date=1",
            "s3.amazonaws.com/b/k?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Date=1",
        ),
        (
            "rtsp://cam/x?user=admin&password=pw&PWD=x&sig=1&key=2",
            "rtsp://cam/x?user=admin&password=***&PWD=***&sig=***&key=***",
        ),
        ("rtsp://admin@cam/x and s3://bucket/key.mp4", "rtsp://admin@cam/x and s3://bucket/key.mp4"),
        ("a = b, no URL here", "a = b, no URL here"),
    ],
)
def test_redact(text, shown):
    assert redact(text) == shown


def test_redact_record():
    record = {
        "input": "rtsp://a:pw@cam/x",
        "n": 3,
        "list": ["redis://:pw@r/0"],
        "password": "pw",
        "nested": {"k": b"x"},
    }
    assert redact_record(record) == {
        "input": "rtsp://a:***@cam/x",
        "n": 3,
        "list": ["redis://:***@r/0"],
        "password": "***",
        "nested": {"k": "x"},
    }


def test_log_records_are_redacted(run_cli, capsys):
    from streamer.cli import configure_logging

    configure_logging("json")
    try:
        logging.getLogger("streamer.test").warning("opening %s", f"rtsp://admin:{CAMERA}@cam/x")
        try:
            raise ValueError(f"redis://:{REDIS}@host/0")
        except ValueError:
            logging.getLogger("streamer.test").exception("failed")
        err = capsys.readouterr().err
    finally:
        logging.getLogger().handlers[:] = []
    lines = [json.loads(line) for line in err.splitlines()]
    assert lines[0]["message"] == "opening rtsp://admin:***@cam/x"
    assert "redis://:***@host/0" in lines[1]["exception"]
    assert not any(secret in err for secret in SECRETS)


def test_errors_on_stderr_are_redacted(run_cli, tmp_path):
    port = free_port()
    for style in ("text", "json"):
        code, out, err = run_cli(
            "--log-format", style, "status", "--redis", f"redis://:{REDIS}@127.0.0.1:{port}/0", "--grace", "0.3"
        )
        assert code == 2 and "lost Redis at redis://:***@127.0.0.1" in err, err
        assert not any(secret in out + err for secret in SECRETS)
    code, out, err = run_cli(
        "process",
        f"rtsp://admin:{CAMERA}@127.0.0.1:{port}/cam?token={TOKEN}",
        "-o",
        tmp_path / "o.mp4",
        "--give-up",
        "0.5",
    )
    assert code == 2 and "rtsp://admin:***@127.0.0.1" in err and "token=***" in err, err
    assert not any(secret in out + err for secret in SECRETS)


def test_status_logs_and_web_api_never_show_secrets(tmp_path, run_cli):
    from streamer.cli.serve import make_app
    from streamer.distributed.connection import Keys

    server = RedisServer(tmp_path, password=REDIS).start()
    url = server.url
    worker = subprocess.Popen(
        [sys.executable, "-m", "streamer", "--log-format", "json", "worker", "--model", LEFT_HALF]
        + ["--redis", url, "--jobs", "1"],
        env={**environment(), "STREAMER_VERBOSE": "1"},
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = server.client()
        wait_for(lambda: client.exists(KEYS.submitted), what="the worker's runner")
        jobs = []
        for source in (f"rtsp://admin:{CAMERA}@127.0.0.1:9/cam", f"http://u:{CAMERA}@127.0.0.1:9/a.mp4?token={TOKEN}"):
            code, out, err = run_cli("submit", source, "-o", "out.mp4", "--model", LEFT_HALF, "--redis", url)
            assert code == 0, err
            jobs.append(out.strip())
        wait_for(lambda: all(client.hget(KEYS.job(job), "state") == b"failed" for job in jobs), what="jobs refused")
        shown = []
        for args in (("status",), ("status", "--json"), ("status", jobs[0], "--json")):
            code, out, err = run_cli(*args, "--redis", url)
            assert code == 0, err
            shown.append(out + err)
        listed = json.loads(shown[1])["jobs"]
        assert {job["input"] for job in listed} == {
            "rtsp://admin:***@127.0.0.1:9/cam",
            "http://u:***@127.0.0.1:9/a.mp4?token=***",
        }
        assert all("not allowed" in job["reason"] for job in listed)
        app = make_app(client, Keys("streamer"))
        for path in ("/api/status", f"/api/jobs/{jobs[0]}", f"/api/jobs/{jobs[1]}", "/metrics"):
            environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
            setup_testing_defaults(environ)
            environ["PATH_INFO"] = path
            body = b"".join(app(environ, lambda status, headers, exc_info=None: None)).decode()
            assert "***" in body or path == "/metrics", (path, body)
            shown.append(body)
    finally:
        worker.terminate()
        try:
            _, logs = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            _, logs = worker.communicate()
        server.stop()
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any("rtsp://admin:***@127.0.0.1:9/cam" in record["message"] for record in records), logs
    for text in shown + [logs]:
        assert not any(secret in text for secret in SECRETS), text
