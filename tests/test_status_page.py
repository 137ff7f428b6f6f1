"""The status page of `streamer serve` in a real headless Chromium (one browser for the module): it asks for
the token, then shows failed, running and done jobs as a user reads them; refuses a foreign site's name
(DNS rebinding) and a foreign page's POST; says plainly when Redis is down."""

from __future__ import annotations

import http.server
import shutil
import threading
import time

import cv2
import numpy as np
import pytest

from streamer.access import Access, default_hosts, guarded
from streamer.cli.serve import make_app
from streamer.distributed.connection import Keys, RedisConfig, connect
from streamer.distributed.jobs import DONE, FAILED, JobSpec, JobStore
from streamer.httpd import Server
from streamer.job import ProcessConfig
from streamer.models import ModelConfig

TOKEN = "page-token-0123456789abcdef"
KEYS = Keys("streamer")
SCREENSHOT = "status-page.png"


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed; run bash scripts/test.sh, which installs it")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=chromium,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                # a foreign name that resolves to this machine: what DNS rebinding gives an attacker's page
                "--host-resolver-rules=MAP evil.test 127.0.0.1",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def served(redis_server):
    client = connect(RedisConfig(url=redis_server.url, grace=1.0))
    server = Server(guarded(make_app(client, KEYS), Access(TOKEN, default_hosts("127.0.0.1"))), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.port}", JobStore(client, KEYS), client
    server.close()


def seed(jobs: JobStore, client) -> None:
    """A failed job (37 of 100 frames), a running one (50 of 200, with a preview) and a done one."""
    jobs.create(
        "failed1",
        JobSpec(job=ProcessConfig(input="in.mp4", model=ModelConfig(name="maskrcnn"))),
        total=100,
        input="/in/a.mp4",
        output="/out/a.mp4",
    )
    jobs.finish("failed1", FAILED, 3600, "the model ran out of memory", done=37)
    jobs.create(
        "running1",
        JobSpec(job=ProcessConfig(input="in.mp4", model=ModelConfig(name="unet"))),
        lease=60,
        total=200,
        input="/in/b.mp4",
        output="/out/b.mp4",
    )
    jobs.update("running1", done=50, fps=12.5)
    frame = np.zeros((90, 160, 3), np.uint8)
    frame[:, :80] = (0, 0, 255)
    client.set(KEYS.preview("running1"), cv2.imencode(".jpg", frame)[1].tobytes())
    jobs.create(
        "done1",
        JobSpec(job=ProcessConfig(input="in.mp4", model=ModelConfig(name="unet"))),
        total=10,
        input="/in/c.mp4",
        output="/out/c.mp4",
    )
    jobs.finish("done1", DONE, 3600, done=10)


def cells(page, job: str) -> list[str]:
    return page.locator(f"#jobs tbody tr[data-job='{job}'] td").all_inner_texts()


def test_page_asks_for_the_token_then_shows_and_cancels_jobs(browser, served, tmp_path):
    base, jobs, client = served
    seed(jobs, client)
    context = browser.new_context()
    page = context.new_page()
    problems, previews = [], []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: previews.append(request.url) if "preview" in request.url else None)
    headers = page.goto(base + "/").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert (headers["x-content-type-options"], headers["referrer-policy"]) == ("nosniff", "no-referrer")
    page.wait_for_selector("#login:not([hidden])", timeout=10_000)
    assert page.locator("#status").is_hidden() and page.locator("#jobs tbody tr").count() == 0

    page.fill("#token", "not-the-token-0123456789")
    page.click("#login button")
    page.wait_for_selector("#login-error:text('not accepted')", timeout=10_000)
    assert page.locator("#jobs tbody tr").count() == 0
    page.fill("#token", TOKEN)
    page.click("#login button")
    page.wait_for_selector("#jobs tbody tr[data-job='running1']", timeout=10_000)

    failed, running, done = cells(page, "failed1"), cells(page, "running1"), cells(page, "done1")
    columns = page.locator("#jobs thead th").all_inner_texts()
    column = {name: index for index, name in enumerate(columns) if name}
    assert failed[column["state"]] == "failed" and failed[column["frames"]] == "37/100"
    assert failed[column["note"]] == "the model ran out of memory"
    assert (failed[column["model"]], failed[column["effect"]]) == ("maskrcnn", "overlay")
    assert running[column["frames"]] == "50/200" and running[column["ETA"]] == "12 s"
    assert done[column["state"]] == "done" and done[column["frames"]] == "10/10"
    for row in (failed, done):
        assert row[column["submitted"]] and row[column["started"]] and row[column["ended"]], row
        assert row[column["fps"]] == "" and row[column["ETA"]] == ""
    assert running[column["submitted"]] and running[column["ended"]] == ""
    # no busy (indeterminate) bar on a job that ended; the bars stand where the job stopped
    assert page.locator("#jobs progress:indeterminate").count() == 0
    assert page.eval_on_selector("tr[data-job='failed1'] progress", "bar => [bar.value, bar.max]") == [37, 100]
    assert page.locator("tr[data-job='failed1'] button, tr[data-job='done1'] button").count() == 0
    assert page.locator("#batches-section").is_hidden(), "no batches: no empty table"

    # the running job is selected and its latest frame shows (fetched with the token)
    page.wait_for_function("() => document.querySelector('#preview img')?.naturalWidth === 160", timeout=10_000)
    page.screenshot(path=str(tmp_path / SCREENSHOT), full_page=True)

    # an ended job, selected, shows that it ended and its preview is not fetched
    page.click("tr[data-job='done1'] td >> nth=0")
    page.wait_for_selector("#preview p:text('done: no preview')", timeout=5_000)
    page.wait_for_selector("tr.selected[data-job='done1']", timeout=5_000)
    before = len(previews)
    time.sleep(2.5)  # two polls
    assert not [url for url in previews[before:] if "done1" in url]
    assert len(previews) == before

    # the token is kept for the tab: a reload asks nothing
    page.reload()
    page.wait_for_selector("#jobs tbody tr[data-job='running1']", timeout=10_000)
    assert page.locator("#login").is_hidden()
    # cancel from the page: a same-origin POST with the token
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("tr[data-job='running1'] button:text('cancel')")
    page.wait_for_selector("tr[data-job='running1'] td:text('cancelled')", timeout=10_000)
    assert jobs.state("running1") == "cancelled"
    problems = [text for text in problems if "status of 401" not in text]  # the two refused tokens
    assert not problems, problems  # no script error, no Content-Security-Policy violation
    context.close()


def test_the_token_in_the_address_fragment_is_taken_and_removed(browser, served):
    base, jobs, client = served
    seed(jobs, client)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/#token={TOKEN}")
    page.wait_for_selector("#jobs tbody tr[data-job='done1']", timeout=10_000)
    assert page.evaluate("location.hash") == "", "the token leaves the address bar and history"
    context.close()


class Foreign(http.server.BaseHTTPRequestHandler):
    """A page of another site."""

    def do_GET(self):
        body = b"<!doctype html><title>elsewhere</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_foreign_sites_are_refused_in_the_browser(browser, served):
    base, jobs, client = served
    seed(jobs, client)
    port = base.rsplit(":", 1)[1]
    context = browser.new_context()
    page = context.new_page()
    # DNS rebinding: evil.test resolves to this machine; the server does not answer to that name
    response = page.goto(f"http://evil.test:{port}/")
    assert response.status == 403 and "--allowed-hosts" in page.content()
    status = page.evaluate(
        """async token => (await fetch('/api/status', {headers: {Authorization: 'Bearer ' + token}})).status""", TOKEN
    )
    assert status == 403, "even with the token, under a foreign name"

    foreign = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Foreign)
    threading.Thread(target=foreign.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{foreign.server_address[1]}/")
        # a simple POST needs no preflight, so the browser sends it: the Origin check refuses it
        page.evaluate(
            """async url => { try { await fetch(url, {method: 'POST', mode: 'no-cors', body: '{}',
                                                       headers: {'Content-Type': 'text/plain'}}); } catch (e) {} }""",
            f"{base}/api/jobs/running1/cancel",
        )
        time.sleep(0.3)
        assert jobs.state("running1") == "running"
    finally:
        foreign.shutdown()
        foreign.server_close()
    context.close()


def test_redis_down_is_said_plainly(browser, served, redis_server):
    base, jobs, client = served
    seed(jobs, client)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/#token={TOKEN}")
    page.wait_for_selector("#jobs tbody tr[data-job='done1']", timeout=10_000)
    redis_server.stop()
    page.wait_for_selector("#updated.error", timeout=10_000)
    text = page.inner_text("#updated")
    assert "Redis does not answer" in text and "TypeError" not in text, text
    context.close()
