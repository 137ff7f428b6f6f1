"""The `streamer` command: parses arguments into config dataclasses and runs them."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time

from streamer.errors import StreamerError


def build_parser() -> argparse.ArgumentParser:
    from streamer.cli import batch, evaluate, process, sample, serve, status, submit, train, worker

    parser = argparse.ArgumentParser(prog="streamer", description="Video segmentation service.")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text, or one JSON object per line for log collectors (default: text)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (process, batch, worker, submit, status, serve, sample, train, evaluate):
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ info and warning lines (graph optimizer chatter) drown the progress; set 0 to see them
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C must work even when started from a shell that ignores SIGINT (background jobs, CI)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format)
    try:
        return args.run(args) or 0
    except StreamerError as error:
        if args.log_format == "json":
            print(json.dumps({"time": round(time.time(), 3), "level": "error", "message": str(error)}), file=sys.stderr)
        else:
            print(f"streamer: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("streamer: interrupted", file=sys.stderr)
        return 130


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(style: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if style == "json" else logging.Formatter("streamer: %(levelname)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if os.environ.get("STREAMER_VERBOSE") else logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
