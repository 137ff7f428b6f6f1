"""The `streamer` command: parses arguments into config dataclasses and runs them."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from streamer.errors import StreamerError


def build_parser() -> argparse.ArgumentParser:
    from streamer.cli import batch, evaluate, process, sample, status, submit, train, worker

    parser = argparse.ArgumentParser(prog="streamer", description="Video segmentation service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (process, batch, worker, submit, status, sample, train, evaluate):
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO if os.environ.get("STREAMER_VERBOSE") else logging.WARNING,
                        format="streamer: %(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except StreamerError as error:
        print(f"streamer: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("streamer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
