"""A worker runs submitted jobs only inside what it allows (--allow-input / --allow-output), and its
refusals say nothing about what exists on its machine."""

import http.server
import threading

from media import make_video, probe
from redis_fixtures import ROOT
from test_redis import KEYS, LEFT_HALF, wait_for


def test_submitted_jobs_stay_inside_the_allowed_folders(tmp_path, redis_server, workers, run_cli):
    inputs, outputs, secret = tmp_path / "in", tmp_path / "out", tmp_path / "private"
    for folder in (inputs, outputs, secret):
        folder.mkdir()
    make_video(inputs / "clip.mp4", frames=6)
    (secret / "exists.mp4").write_bytes(b"private")
    (inputs / "link.mp4").symlink_to(secret / "exists.mp4")  # a way out through a symlink
    (outputs / "keep.mp4").write_bytes(b"precious")
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_error(404)

        def log_message(self, *args):
            pass

    local = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=local.serve_forever, daemon=True).start()
    client = redis_server.client()
    workers.start("--allow-input", inputs, "--allow-output", outputs, jobs=1)

    def submit(source, output, *extra):
        code, out, err = run_cli(
            "submit", source, "-o", output, "--model", LEFT_HALF, *extra, "--redis", redis_server.url
        )
        assert code == 0, err
        assert f"streamer: queued {out.strip()}; the worker that takes it checks" in err  # said when it is checked
        return out.strip()

    def outcome(job):
        wait_for(lambda: client.hget(KEYS.job(job), "state") in (b"done", b"failed"), what=f"job {job} ended")
        return client.hget(KEYS.job(job), "state").decode(), (client.hget(KEYS.job(job), "reason") or b"").decode()

    refused = {
        "output up and out": submit(inputs / "clip.mp4", "../../anything.mp4"),
        "output outside": submit(inputs / "clip.mp4", secret / "new.mp4", "-y"),
        "input that exists": submit(secret / "exists.mp4", outputs / "a.mp4"),
        "input that does not": submit(secret / "missing.mp4", outputs / "b.mp4"),
        "input through a symlink": submit(inputs / "link.mp4", outputs / "c.mp4"),
        "loopback http": submit(f"http://127.0.0.1:{local.server_address[1]}/clip.mp4", outputs / "d.mp4"),
        "file URL": submit(f"file://{inputs / 'clip.mp4'}", outputs / "e.mp4"),
        "link-local http": submit("http://169.254.169.254/latest/meta-data", outputs / "f.mp4"),
    }
    reasons = {}
    for what, job in refused.items():
        state, reason = outcome(job)
        assert state == "failed" and "is not allowed on this worker" in reason, (what, reason)
        reasons[what] = reason
    assert "--allow-output" in reasons["output up and out"] and "--allow-input" in reasons["input that exists"]
    # the same words whether the path exists or not
    assert reasons["input that exists"].replace("exists.mp4", "X") == reasons["input that does not"].replace(
        "missing.mp4", "X"
    ).replace("b.mp4", "a.mp4")
    assert hits == []  # never fetched
    assert (
        not (secret / "new.mp4").exists() and not (ROOT.parent.parent / "anything.mp4").exists()
    )  # the worker runs in ROOT
    done = submit(inputs / "clip.mp4", outputs / "clip.mp4")
    assert outcome(done) == ("done", "")
    assert probe(outputs / "clip.mp4")["frames"] == 6
    assert (outputs / "keep.mp4").read_bytes() == b"precious"
    local.shutdown()
