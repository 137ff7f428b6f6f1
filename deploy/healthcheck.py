"""Container health check for the streamer images (Docker HEALTHCHECK, compose healthcheck).

Docker runs the check beside the container's command, so this reads the command line of the
container's `streamer` process from /proc and probes what that command serves:

- `streamer worker|process ... --metrics-port P`: GET http://127.0.0.1:P/healthz must answer 2xx;
- `streamer serve ... [--port P]`: the port (default 8080, as serve's) must accept a connection;
- anything else (`batch`, a worker without --metrics-port, ...): healthy, nothing to probe.

Standard library only: it runs with the image's Python, without importing streamer.
Exit code 0: healthy, 1: unhealthy (the reason on stderr).
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request

TIMEOUT = 3.0  # seconds


def option(args: list[str], name: str) -> str | None:
    """The value of `name VALUE` or `name=VALUE` in args (the last one wins, as with argparse)."""
    value = None
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def streamer_args(cmdline: list[str]) -> list[str] | None:
    """The arguments after `streamer` (console script or `python -m streamer`), else None."""
    for index, token in enumerate(cmdline):
        if os.path.basename(token) == "streamer":
            return cmdline[index + 1 :]
        if token == "-m" and cmdline[index + 1 : index + 2] == ["streamer"]:
            return cmdline[index + 2 :]
    return None


COMMANDS = {
    "process",
    "batch",
    "worker",
    "submit",
    "status",
    "cancel",
    "serve",
    "sample",
    "train",
    "evaluate",
    "inspect",
    "export",
}
SERVE_PORT = 8080  # `streamer serve`'s default --port (a test keeps these two in step with the CLI)


def probe(args: list[str]) -> tuple[str, str, int, str] | None:
    """What to check for `streamer ARGS`: (kind, host, port, path) with kind "http" or "tcp"; None: nothing."""
    command = next((arg for arg in args if arg in COMMANDS), None)
    port = option(args, "--metrics-port")
    if command in ("worker", "process") and port:
        return ("http", "127.0.0.1", int(port), "/healthz")
    if command == "serve":
        host = option(args, "--host")
        if host in (None, "", "0.0.0.0", "::"):
            host = "127.0.0.1"
        return ("tcp", host, int(option(args, "--port") or SERVE_PORT), "")
    return None


def streamer_cmdlines():
    """Command lines of the processes in this container, the lowest pid (the entry point) first."""
    pids = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                raw = file.read()
        except OSError:
            continue
        cmdline = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
        args = streamer_args(cmdline)
        if args is not None:
            yield args


def check(target: tuple[str, str, int, str]) -> str | None:
    """None when healthy, else why not."""
    kind, host, port, path = target
    try:
        if kind == "tcp":
            socket.create_connection((host, port), timeout=TIMEOUT).close()
            return None
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=TIMEOUT) as response:
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except Exception as error:
        return str(error) or type(error).__name__


def main() -> int:
    args = next(streamer_cmdlines(), None)
    target = probe(args) if args is not None else None
    if target is None:
        return 0
    problem = check(target)
    if problem is not None:
        kind, host, port, path = target
        print(f"unhealthy: {kind} {host}:{port}{path}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
