"""--weights URL: fetched once into STREAMER_CACHE from a real HTTP server on loopback (which can break a
connection mid-file, change its file, or be gone) and from a real S3 protocol server; resumed, checked by size
and digest, reused without a network."""

import hashlib
import http.server
import logging
import os
import threading

import numpy as np
import pytest
from redis_fixtures import free_port

from streamer import weights_cache
from streamer.errors import StreamerError
from streamer.models import ModelConfig, registry, weights_path
from streamer.weights_cache import cached_path, local_weights


class FileServer:
    """An HTTP server on 127.0.0.1 serving `files` {path: bytes} with ETag, Range and If-Range; `cut[path] = n`
    makes the next responses for `path` (one per entry of the list) stop after n bytes and drop the connection."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, list[int]] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.on_cut = None  # called with the path after a response was cut
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                etag = '"' + hashlib.md5(body).hexdigest() + '"'
                start, status = 0, 200
                wanted = self.headers.get("Range")
                if wanted and self.headers.get("If-Range", etag) == etag:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    status = 206
                self.send_response(status)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                cuts = server.cut.get(self.path)
                end = start + cuts.pop(0) if cuts else len(body)
                self.wfile.write(body[start:end])
                if end < len(body):
                    self.close_connection = True
                    if server.on_cut:
                        server.on_cut(self.path)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    files = FileServer()
    yield files
    files.close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("STREAMER_CACHE", str(folder))
    return folder


def payload(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("size,cut", [(3_000_001, 1_000_000), (2 * weights_cache.CHUNK, weights_cache.CHUNK), (10, 1)])
def test_a_broken_download_is_resumed_and_then_served_from_the_cache(server, cache, size, cut, capfd, caplog):
    caplog.set_level(logging.WARNING)  # progress lines are shown (not under -q, which an earlier test may have left)
    body = payload(size)
    server.files["/models/mask_rcnn_x.h5"] = body
    server.cut["/models/mask_rcnn_x.h5"] = [cut]
    url = server.url("/models/mask_rcnn_x.h5")
    path = local_weights(url)
    assert open(path, "rb").read() == body and path.startswith(str(cache)) and path.endswith("mask_rcnn_x.h5")
    assert server.requests == [("/models/mask_rcnn_x.h5", None), ("/models/mask_rcnn_x.h5", f"bytes={cut}-")]
    assert "fetching weights" in capfd.readouterr().err
    assert sorted(os.listdir(os.path.dirname(path))) == [".mask_rcnn_x.h5.lock", "mask_rcnn_x.h5"]
    server.close()  # no network: the cached file is used without asking
    assert local_weights(url) == path and len(server.requests) == 2


def test_a_failed_fetch_leaves_its_part_and_the_next_one_goes_on(server, monkeypatch):
    monkeypatch.setattr(weights_cache, "ATTEMPTS", 2)
    body = payload(2_500_000, seed=1)
    server.files["/w.h5"] = body
    server.cut["/w.h5"] = [700_000, 700_000]
    url = server.url("/w.h5")
    with pytest.raises(StreamerError, match=r"cannot fetch it \(the connection broke after 1400000 of 2500000 bytes"):
        local_weights(url)
    part = cached_path(url).with_name("w.h5.part")
    assert part.stat().st_size == 1_400_000 and not cached_path(url).exists()  # nothing looks finished
    assert open(local_weights(url), "rb").read() == body
    assert server.requests[-1] == ("/w.h5", "bytes=1400000-")


def test_a_file_changed_on_the_server_is_fetched_again_whole(server):
    server.files["/w.onnx"] = payload(1_000_000, seed=2)
    server.cut["/w.onnx"] = [400_000]
    url = server.url("/w.onnx")

    server.on_cut = lambda path: server.files.update({path: payload(900_000, seed=3)})  # a new version meanwhile
    path = local_weights(url)
    assert open(path, "rb").read() == payload(900_000, seed=3)  # If-Range: the new file whole, not a splice
    assert server.requests[-1] == ("/w.onnx", "bytes=400000-")


def test_the_digest_is_checked_and_a_mismatch_refused(server):
    body = payload(200_000, seed=4)
    server.files["/m.h5"] = body
    url = server.url("/m.h5")
    wrong = "0" * 64
    with pytest.raises(StreamerError, match=f"its sha256 is {hashlib.sha256(body).hexdigest()}, not {wrong}"):
        local_weights(f"{url}#sha256={wrong}")
    assert sorted(os.listdir(cached_path(url).parent)) == [".m.h5.lock"]  # nothing of it is kept
    right = hashlib.sha256(body).hexdigest()
    path = local_weights(f"{url}#sha256={right.upper()}")
    assert open(path, "rb").read() == body
    requests = len(server.requests)
    assert local_weights(f"{url}#sha256={right}") == path and len(server.requests) == requests  # checked once
    with pytest.raises(StreamerError, match="after # give sha256=HEX"):
        local_weights(f"{url}#md5=abc")


def test_without_a_network_the_error_says_which_url_and_where_to_put_the_file(monkeypatch, cache):
    monkeypatch.setattr(weights_cache, "ATTEMPTS", 1)
    port = free_port()  # nothing listens there
    url = f"http://user:s3cret@127.0.0.1:{port}/models/balloon.h5"
    with pytest.raises(StreamerError) as info:
        local_weights(url)
    message = str(info.value)
    assert f"127.0.0.1:{port}/models/balloon.h5" in message
    assert str(cached_path(url)) in message and "s3cret" not in message and "cannot fetch it" in message
    # the release names map to matterport's files, and a file put where the error says is used offline
    releases = registry()["maskrcnn"].releases
    assert releases["coco"] == "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"
    assert releases["balloon"].endswith("/v2.1/mask_rcnn_balloon.h5")
    placed = cached_path(releases["balloon"])
    assert str(placed).startswith(str(cache))
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"balloon weights")
    assert weights_path("maskrcnn", "balloon") == str(placed)
    assert weights_path("unet", "balloon") == "balloon"  # only maskrcnn has release names


def test_http_errors_are_one_line_and_not_retried(server):
    with pytest.raises(StreamerError, match="HTTP 404 Not Found; check the URL"):
        local_weights(server.url("/missing.h5"))
    assert len(server.requests) == 1


def test_s3_weights_through_fsspec(tmp_path, monkeypatch):
    from s3_fixtures import BUCKET, S3Server

    body = payload(1_500_000, seed=5)
    with S3Server() as s3:
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        s3.pipe(f"{BUCKET}/models/w.h5", body)
        url = f"s3://{BUCKET}/models/w.h5"
        path = local_weights(url)
        assert open(path, "rb").read() == body
        os.remove(path)  # a fetch broken half-way: the next one reads from where it stopped
        part = cached_path(url).with_name("w.h5.part")
        part.write_bytes(body[:600_000])
        assert open(local_weights(url), "rb").read() == body
        with pytest.raises(StreamerError, match="no such file"):
            local_weights(f"s3://{BUCKET}/models/missing.h5")
    assert local_weights(url) == path  # the server is gone: the cache answers


def test_process_with_weights_by_url(server, run_cli, tmp_path, cache):
    """A semantic model served over HTTP: `process` fetches it once, the second run needs no server."""
    from media import make_video, probe

    from workers.unet.weights import DEMO_WEIGHTS

    server.files["/unet.keras"] = DEMO_WEIGHTS.read_bytes()
    source = tmp_path / "in.mp4"
    make_video(source, frames=3, width=96, height=64)
    url = server.url("/unet.keras")
    code, _, err = run_cli("process", source, "-o", tmp_path / "a.mp4", "--weights", url, "--batch", "1")
    assert code == 0, err
    assert "fetching weights" in err and len(server.requests) == 1
    assert (cached_path(url).parent / "unet.keras").read_bytes() == DEMO_WEIGHTS.read_bytes()
    server.close()
    code, _, err = run_cli("process", source, "-o", tmp_path / "b.mp4", "--weights", url, "--batch", "1")
    assert code == 0, err
    assert len(probe(tmp_path / "b.mp4")["images"]) == 3 and "fetching" not in err


def test_workers_fetch_only_urls_they_may_read(server):
    from streamer.distributed.confine import Confinement

    url = server.url("/models/unet.keras")
    with pytest.raises(StreamerError, match="not allowed on this worker"):
        Confinement().check_input(url)  # loopback is no public stream
    with pytest.raises(StreamerError, match="not allowed on this worker"):
        Confinement().check_input("s3://bucket/models/w.h5")
    Confinement(inputs=[server.url("/models/")]).check_input(url)
    assert ModelConfig(name="maskrcnn", weights="coco").weights == "coco"  # resolved where it loads, not before
