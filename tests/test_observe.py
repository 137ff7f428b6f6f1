"""Metrics, health endpoints, JSON logs and the status page (in a real headless Chromium)."""

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from media import make_video
from redis_fixtures import ROOT, environment, free_port

SLOW = "tests.models:slow"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    values = [float(match) for match in re.findall(pattern, text, re.MULTILINE)]
    return values[0] if values else 0.0


def wait_until(condition, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_process_metrics_advance_during_a_job(tmp_path):
    # at least 3 s of model time: the job outlives the two scrapes a second apart
    source = make_video(tmp_path / "in.mp4", frames=240)
    port = free_port()
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamer",
            "process",
            str(source),
            "-o",
            str(tmp_path / "o.mp4"),
            "--model",
            SLOW,
            "--batch",
            "2",
            "--metrics-port",
            str(port),
            "-q",
        ],
        env=environment(),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    assert wait_until(lambda: _scrape(url) is not None and metric(_scrape(url), "streamer_frames_out_total") > 0)
    first = _scrape(url)
    time.sleep(1.0)
    second = _scrape(url)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 0, err
    assert metric(second, "streamer_frames_out_total") > metric(first, "streamer_frames_out_total")
    assert metric(second, "streamer_frames_in_total") >= metric(second, "streamer_frames_out_total")
    for stage in ("decode", "queue", "inference", "render", "encode"):
        assert metric(second, "streamer_stage_seconds_count", f'{{stage="{stage}"}}') > 0, stage
    assert metric(second, "streamer_batch_size_count") > 0
    assert 'streamer_queue_depth{queue="frames"}' in second
    assert metric(second, "streamer_fps") > 0


def _scrape(url):
    try:
        return get(url)[1]
    except OSError:
        return None


def test_worker_health_and_metrics(tmp_path, redis_server, workers, run_cli):
    port = free_port()
    worker = workers.start("--metrics-port", str(port))
    base = f"http://127.0.0.1:{port}"
    assert wait_until(lambda: _scrape(base + "/readyz") == "ok\n")
    assert get(base + "/healthz") == (200, "ok\n")
    source = make_video(tmp_path / "in.mp4", frames=16)
    code, _, err = run_cli(
        "process",
        source,
        "-o",
        tmp_path / "out.mp4",
        "--model",
        "tests.models:left_half",
        "--redis",
        redis_server.url,
        "-q",
    )
    assert code == 0, err
    text = get(base + "/metrics")[1]
    assert metric(text, "streamer_frames_out_total") == 16
    assert metric(text, "streamer_stage_seconds_count", '{stage="inference"}') > 0
    redis_server.stop()
    assert wait_until(lambda: get(base + "/readyz")[0] == 503, timeout=15)
    worker.send_signal(signal.SIGKILL)


def test_json_log_format(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "--log-format", "json", "process", str(tmp_path / "missing.mp4")],
        env=environment(),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    record = json.loads(result.stderr.strip())
    assert record["level"] == "error" and "no such file" in record["message"]


@pytest.mark.timeout(120)
def test_status_page_shows_a_running_job_in_chromium(tmp_path, redis_server, workers):
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed; run bash scripts/test.sh, which installs it")
    workers.start("--batch", "1", model=SLOW)
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "streamer", "serve", "--redis", redis_server.url, "--port", str(port), "--no-auth"],
        env=environment(),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    source = make_video(tmp_path / "in.mp4", frames=200, width=160, height=120)
    producer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamer",
            "process",
            str(source),
            "-o",
            str(tmp_path / "out.mp4"),
            "--model",
            SLOW,
            "--batch",
            "1",
            "--redis",
            redis_server.url,
            "-q",
        ],
        env=environment(),
        cwd=ROOT,
    )
    try:
        assert wait_until(lambda: _scrape(f"http://127.0.0.1:{port}/api/status") is not None)
        assert wait_until(lambda: '"state": "running"' in (_scrape(f"http://127.0.0.1:{port}/api/status") or ""))
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=chromium,
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#jobs tbody tr td:text('running')", timeout=20_000)
            row = page.locator("#jobs tbody tr").first
            done_before = int(row.locator("td").nth(3).inner_text().split("/")[0])
            assert row.locator("td").nth(3).inner_text().endswith("/200")
            page.wait_for_selector("#workers tbody tr td:text('tests.models:slow')", timeout=10_000)
            page.wait_for_selector("#preview img", timeout=10_000)
            page.wait_for_function("() => document.querySelector('#preview img').naturalWidth === 320", timeout=10_000)
            # the producer beats about once a second and the page polls once a second: progress shows within 3 s
            page.wait_for_function(
                f"() => parseInt(document.querySelector('#jobs tbody tr').children[3].textContent) > {done_before}",
                timeout=10_000,
            )
            row = page.locator("#jobs tbody tr").first
            assert row.locator("td").nth(6).inner_text() == str(source)  # input and output of `process --redis`
            assert row.locator("td").nth(7).inner_text() == str(tmp_path / "out.mp4")
            page.screenshot(path=str(tmp_path / "status.png"))
            page.on("dialog", lambda dialog: dialog.accept())
            row.locator("button:text('cancel')").click()
            page.wait_for_selector("#jobs tbody tr td:text('cancelled')", timeout=10_000)
            assert producer.wait(timeout=30) != 0, "the producer stops when its job is cancelled"
            browser.close()
    finally:
        producer.kill()
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=10)
