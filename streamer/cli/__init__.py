"""The `streamer` command: parses arguments into config dataclasses and runs them."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time

from streamer.errors import StreamerError
from streamer.progress import native_logs_hidden
from streamer.secrets import install_log_filter, redact

# Every command: the module that builds its parser and runs it, and its line in `streamer --help`. Only the
# command being run is imported (the others' modules pull in PyAV, Redis, rich … that it may not need).
COMMANDS = {
    "process": ("process", "segment a video file and render the result"),
    "batch": ("batch", "process many videos (local or s3://, gs://, az:// globs) into DEST"),
    "worker": ("worker", "serve a model to jobs over Redis until stopped (SIGTERM drains)"),
    "submit": ("submit", "queue a job for the workers; prints its id"),
    "status": ("status", "show jobs, workers and stream backlogs"),
    "cancel": ("status", "cancel a job"),
    "serve": ("serve", "status page, JSON API, /healthz, /readyz and /metrics of the jobs, workers and backlogs"),
    "sample": (
        "sample",
        "render a synthetic video: road (a drive with lane marks) or shapes (moving, overlapping squares, circles, "
        "triangles)",
    ),
    "train": ("train", "train a model: unet (road segmentation) or maskrcnn (instance segmentation)"),
    "evaluate": ("evaluate", "measure a model: unet (IoU on roads) or maskrcnn (mAP on masks)"),
    "inspect": ("inspect", "pictures of a model's stages on one image or video frame (DIR/index.html)"),
    "export": ("export", "write a model as a TensorFlow SavedModel, ONNX, OpenVINO or TFLite file"),
}
_VALUED = ("--log-format", "--log-level")  # options before the command that take a value


def command_of(argv: list[str]) -> str | None:
    """The command named on the command line (`streamer -v status …` → status); "" when only options are
    given (`--help`, `--version`); None when that cannot be told without the full parser."""
    for position, word in enumerate(argv):
        if word in COMMANDS:
            previous = argv[position - 1] if position else ""
            if not (previous.startswith("--log") and "=" not in previous):
                return word
        if not word.startswith("-") and not (position and argv[position - 1] in _VALUED):
            return None  # a word that is no command (a typo): argparse names the choices
    return ""


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `argv`, only the command it names is built in full (the others are listed in
    --help by name and help line), so a command imports nothing another command needs."""
    import importlib

    wanted = None if argv is None else command_of(argv)
    parser = argparse.ArgumentParser(prog="streamer", description="Video segmentation service.")
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text, or one JSON object per line for log collectors (default: text)",
    )
    add_logging_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    built = set()
    for name, (module, help) in COMMANDS.items():
        if wanted is None or COMMANDS.get(wanted, (None,))[0] == module:
            if module not in built:
                importlib.import_module(f"streamer.cli.{module}").add_parser(commands)
                built.add(module)
        else:
            commands.add_parser(name, help=help)
    for command in commands.choices.values():  # also accepted after the command: `streamer process -v …`
        command.add_argument(
            "--log-format", choices=("text", "json"), default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        add_logging_arguments(command, default=argparse.SUPPRESS)
    return parser


LOG_LEVELS = ("debug", "info", "warning", "error")


def add_logging_arguments(parser: argparse.ArgumentParser, default=None) -> None:
    """-v/--verbose and --log-level (on the command line before or after the command)."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if default is None else default,
        help="more detail: info logs and TensorFlow's own start-up lines (hidden otherwise); -vv: debug",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default=default, help="debug, info, warning or error (default: warning)"
    )


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; an unknown option is reported with the command's own usage and the closest
    option name (`--detection` → did you mean --detections?)."""
    import difflib

    args, unknown = parser.parse_known_args(argv)
    if not unknown:
        return args
    command = parser._subparsers._group_actions[0].choices.get(getattr(args, "command", None), parser)
    options = [option for action in command._actions for option in action.option_strings]
    hints = []
    for word in unknown:
        if word.startswith("-"):
            close = difflib.get_close_matches(word.split("=")[0], options, n=1, cutoff=0.6)
            if close:
                hints.append(f"{word}: did you mean {close[0]}?")
    command.error(f"unrecognized arguments: {' '.join(unknown)}" + ("; " + "; ".join(hints) if hints else ""))


def apply_verbosity(args: argparse.Namespace) -> None:
    """-v/--log-level: the level of the root logger, and whether native libraries' lines are shown."""
    from streamer import progress

    verbose = getattr(args, "verbose", 0) or 0
    level = getattr(args, "log_level", None) or ("debug" if verbose > 1 else "info" if verbose else None)
    if level is None and getattr(args, "quiet", False):
        level = "error"  # -q: no notes either (errors, and the warning that an output is short, still print)
    if level:
        logging.getLogger().setLevel(level.upper())
    if verbose or level == "debug":
        progress.SHOW_NATIVE_LOGS = True
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    progress.LOG_FORMAT = args.log_format


class _Version(argparse.Action):
    """--version, read when asked for (PyAV is not imported to build the parser)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"streamer {_version()}")
        parser.exit()


def _version() -> str:
    """The installed package's version, with the FFmpeg that PyAV reads and writes with."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("streamer")
    except PackageNotFoundError:
        own = "unknown"
    try:
        import av

        return f"{own} (PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info})"
    except ImportError:
        return own


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ info and warning lines (graph optimizer chatter) drown the progress; set 0 to see them
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C must work even when started from a shell that ignores SIGINT (background jobs, CI)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    args = parse(build_parser(sys.argv[1:] if argv is None else argv), argv)
    configure_logging(args.log_format)
    apply_verbosity(args)
    try:
        return run_command(args)
    except StreamerError as error:
        message = redact(str(error))
        if args.log_format == "json":
            print(json.dumps({"time": round(time.time(), 3), "level": "error", "message": message}), file=sys.stderr)
        else:
            print(f"streamer: error: {message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("streamer: interrupted", file=sys.stderr)
        return 130


MODEL_COMMANDS = {"train", "evaluate", "inspect", "export"}


def run_command(args: argparse.Namespace) -> int:
    """Runs the parsed command; a module of an optional group that is not installed becomes a StreamerError
    that names the group to install (`pip install 'streamer[models]'`)."""
    # commands that build models in this thread: TensorFlow's C++ start-up lines are dropped (kept with -v)
    from streamer.cli.needs import check_installed

    check_installed(args)  # before any work: a missing extra is named now, not after an epoch
    quiet = native_logs_hidden() if args.command in MODEL_COMMANDS else contextlib.nullcontext()
    try:
        with quiet:
            return args.run(args) or 0
    except (ImportError, StreamerError) as error:
        missing = missing_extra(error)
        if missing is None:
            raise
        raise missing from None


def missing_extra(error: BaseException | None) -> StreamerError | None:
    """A StreamerError naming the extra to install when `error` (or what it was raised from) is a
    ModuleNotFoundError for a module of an optional group; None otherwise."""
    from streamer.cli.needs import EXTRAS

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ImportError) and error.name:
            module = error.name.split(".")[0]
            if module in EXTRAS:
                extra = EXTRAS[module]
                return StreamerError(
                    f"this command needs {module}, which is not installed: pip install 'streamer[{extra}]'"
                )
        error = error.__cause__ or error.__context__
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info or record.exc_text:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(style: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if style == "json" else logging.Formatter("streamer: %(levelname)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    install_log_filter()
    root.setLevel(logging.INFO if os.environ.get("STREAMER_VERBOSE") else logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
