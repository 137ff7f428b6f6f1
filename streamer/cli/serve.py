"""`streamer serve --redis URL`: a status page and a JSON API for the jobs, workers and backlogs."""

from __future__ import annotations

import argparse
import http.server
import json
import re
from importlib import resources

from streamer.cli.common import add_redis_arguments, redis_config
from streamer.cli.status import snapshot
from streamer.distributed.connection import Keys, connect
from streamer.errors import StreamerError
from streamer.httpd import QuietHandler
from streamer.progress import say

PREVIEW = re.compile(r"^/api/jobs/([A-Za-z0-9_.:-]+)/preview\.jpg$")


def add_parser(commands) -> None:
    parser = commands.add_parser("serve", help="status page and JSON API (jobs, workers, backlogs, live preview)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    add_redis_arguments(parser, required=True)
    parser.set_defaults(run=run)


def make_server(client, keys: Keys, host: str, port: int) -> http.server.ThreadingHTTPServer:
    page = resources.files("streamer.web").joinpath("index.html").read_bytes()

    class Handler(QuietHandler):
        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self.send(200, page, "text/html; charset=utf-8")
            elif path == "/api/status":
                self.send(200, json.dumps(snapshot(client, keys)).encode(), "application/json")
            elif path.startswith("/api/jobs/") and path.count("/") == 3:
                try:
                    state = snapshot(client, keys, path.rsplit("/", 1)[1])
                except StreamerError as error:
                    self.send(404, json.dumps({"error": str(error)}).encode(), "application/json")
                    return
                self.send(200, json.dumps(state["jobs"][0]).encode(), "application/json")
            elif match := PREVIEW.match(path):
                image = client.get(keys.preview(match.group(1)))
                if image is None:
                    self.send(404, b"no preview\n", "text/plain")
                else:
                    self.send(200, image, "image/jpeg")
            else:
                self.send(404, b"not found\n", "text/plain")

    try:
        return http.server.ThreadingHTTPServer((host, port), Handler)
    except OSError as error:
        raise StreamerError(f"cannot listen on {host}:{port} ({error.strerror}); choose another --port") from None


def run(args: argparse.Namespace) -> int:
    config = redis_config(args)
    server = make_server(connect(config), Keys(config.namespace), args.host, args.port)
    say(f"status page on http://{args.host}:{server.server_address[1]}/ (JSON at /api/status)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
