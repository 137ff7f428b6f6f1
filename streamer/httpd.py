"""The small WSGI server shared by the metrics endpoint (`--metrics-port`) and the status page (`serve`).

wsgiref's server with a thread per request (a slow scrape never holds up a probe), no request logs on
the terminal, a socket timeout per request (a client that sends nothing, or a byte at a time, is cut
off) and a bound on the connections served at once; `respond` sends a whole body with its length and
`Cache-Control: no-store`.
"""

from __future__ import annotations

import json
import socketserver
import sys
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from streamer.errors import StreamerError

App = Callable[[dict, Callable], Iterable[bytes]]
REQUEST_TIMEOUT = 20.0  # seconds one read or write of a request may block
MAX_CONNECTIONS = 64  # connections served at once


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """A thread per connection, at most `max_connections` at once: past that a new connection is closed at
    once (idle connections cannot pile up threads; each ends within the request timeout)."""

    daemon_threads = True  # a request in progress never keeps the process from exiting
    max_connections = MAX_CONNECTIONS

    def server_activate(self) -> None:
        super().server_activate()
        self.slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        """A client that timed out or went away is dropped quietly; anything else is a bug, shown."""
        if not isinstance(sys.exc_info()[1], (TimeoutError, ConnectionError)):
            super().handle_error(request, client_address)


class QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT

    def log_message(self, *args) -> None:
        pass


def respond(start_response: Callable, status: int, body: bytes | str, content_type: str = "text/plain") -> list[bytes]:
    """A whole response: `body` with its length, never cached."""
    data = body.encode() if isinstance(body, str) else body
    if content_type.startswith(("text/", "application/json")) and "charset" not in content_type:
        content_type += "; charset=utf-8"
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", content_type), ("Content-Length", str(len(data))), ("Cache-Control", "no-store")],
    )
    return [data]


def respond_json(start_response: Callable, status: int, value) -> list[bytes]:
    return respond(start_response, status, json.dumps(value), "application/json")


class Server:
    """`app` served on host:port in a background thread (port 0: any free port, see `.port`)."""

    def __init__(
        self,
        app: App,
        host: str,
        port: int,
        name: str = "http",
        option: str = "--port",
        timeout: float = REQUEST_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ):
        handler = type("Handler", (QuietHandler,), {"timeout": timeout})
        server = type("Server", (ThreadingWSGIServer,), {"max_connections": max_connections})
        try:
            self.httpd = make_server(host, port, app, server_class=server, handler_class=handler)
        except OSError as error:
            raise StreamerError(f"cannot listen on {host}:{port} ({error.strerror}); choose another {option}") from None
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=name, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
