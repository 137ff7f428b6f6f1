"""Progress (a bar on a terminal, a line every few seconds elsewhere), the one-line summary at the end, and
the filter that keeps native libraries' start-up chatter (TensorFlow's absl, oneDNN, CUDA lines) off stderr."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator

#: how progress lines and errors are written: "text" or "json" (set by the command line's --log-format)
LOG_FORMAT = "text"
#: seconds between progress lines when stderr is not a terminal (env STREAMER_PROGRESS_EVERY)
PROGRESS_EVERY = 5.0


class ProgressBar:
    """Progress on stderr: a rich bar when stderr is a terminal; otherwise (docker logs, CI) one line every
    few seconds with the frames done, the fps over the last window and the time left."""

    def __init__(self, description: str, enabled: bool = True, every: float | None = None):
        self._enabled = enabled
        self._description = description
        self._every = every if every is not None else float(os.environ.get("STREAMER_PROGRESS_EVERY", PROGRESS_EVERY))
        self._window: deque[tuple[float, int]] = deque()
        self._last_line = time.monotonic()
        self._terminal, self._progress = False, None
        if enabled:  # rich is loaded only to show progress (a quiet run starts without it)
            self._terminal, self._progress = _bar(description)
            self._task = self._progress.add_task(description, total=None, fps=0.0, eta="") if self._terminal else None

    def __enter__(self) -> "ProgressBar":
        if self._enabled and self._terminal:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._cancel_phase_line()
        if self._enabled and self._terminal:
            self._progress.stop()

    def phase(self, name: str) -> None:
        """A step of the job before or around its frames (opening the input, loading the model, warming up,
        processing): the bar's label on a terminal, one line elsewhere. The fps window starts again, so time
        spent before the frames flow counts in neither their fps nor the ETA."""
        self._window.clear()
        self._description = name
        if not self._enabled:
            return
        if self._terminal:
            self._progress.update(self._task, description=name, fps=0.0, eta="")
            return
        self._last_line = time.monotonic()
        self._cancel_phase_line()
        # a line only for a step that takes a while (2 s, or the progress interval if shorter): a job that fails
        # at once (a missing file, a pipe with no data for --timeout 1) still prints one line, its error
        delay = min(2.0, self._every)
        if delay <= 0:
            self._phase_line(name)
        else:
            self._pending = threading.Timer(delay, self._phase_line, (name,))
            self._pending.daemon = True
            self._pending.start()

    _pending: threading.Timer | None = None

    def _cancel_phase_line(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    @staticmethod
    def _phase_line(name: str) -> None:
        if LOG_FORMAT == "json":
            text = json.dumps({"time": round(time.time(), 3), "level": "info", "message": name, "phase": name})
        else:
            text = f"streamer: {name}"
        print(text, file=sys.stderr, flush=True)

    def __call__(self, done: int, total: int | None) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        self._window.append((now, done))
        while len(self._window) > 2 and now - self._window[0][0] > max(self._every, 1.0):
            self._window.popleft()
        start, first = self._window[0]
        fps = (done - first) / (now - start) if now > start else 0.0
        if self._terminal:
            eta = _eta(done, total, fps)
            left = f"ETA {_clock(eta)}" if eta is not None else ""
            self._progress.update(self._task, completed=done, total=total, fps=fps, eta=left)
        elif done and len(self._window) > 1 and now - self._last_line >= self._every:  # nothing while it loads
            self._cancel_phase_line()
            self._last_line = now
            self._line(done, total, fps)

    def _line(self, done: int, total: int | None, fps: float) -> None:
        eta = _eta(done, total, fps)
        if LOG_FORMAT == "json":
            entry = {"time": round(time.time(), 3), "level": "info", "message": self._description, "frames": done}
            entry.update(total=total, fps=round(fps, 2), eta=None if eta is None else round(eta, 1))
            text = json.dumps(entry)
        else:
            of = f"/{total}" if total else ""
            left = f", ETA {_clock(eta)}" if eta is not None else ""
            text = f"streamer: {self._description}: {done}{of} frames, {fps:.1f} fps{left}"
        print(text, file=sys.stderr, flush=True)


def _eta(done: int, total: int | None, fps: float) -> float | None:
    """Seconds left at `fps`, once frames have been flowing for a while (None before: no guess from the start-up)."""
    return (total - done) / fps if total and fps > 0 and total >= done and done else None


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def counted(count: int, noun: str) -> str:
    """'1 frame', '2 frames', '0 detections'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def say(message: str) -> None:
    print(message, file=sys.stderr)


def summary(message: str, **fields) -> None:
    """A command's closing line on stderr: `message` as it is, or with --log-format json one JSON object with
    `message` and `fields`."""
    if LOG_FORMAT == "json":
        entry = {"time": round(time.time(), 3), "level": "info", "message": message, **fields}
        print(json.dumps(entry), file=sys.stderr)
    else:
        say(message)


# What native libraries write straight to file descriptor 2 while TensorFlow loads and builds its first
# graph: absl's "WARNING: All log messages before absl::InitializeLog()", glog-style "I0000 00:00:… file.cc:N]"
# lines (oneDNN, cudart stub, cuInit, TF-TRT, cuDNN/cuBLAS factory registration).
NATIVE_LINE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\)|"
    rb"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\]|"
    rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] [\w./-]+:\d+\]|"
    rb"To enable the following instructions: .* in other operations, rebuild TensorFlow)"
)

_native = threading.Lock()
_native_depth = 0
_native_state: tuple | None = None
#: keep native libraries' lines (the command line's -v sets it; env STREAMER_VERBOSE too)
SHOW_NATIVE_LOGS = bool(os.environ.get("STREAMER_VERBOSE"))


@contextlib.contextmanager
def native_logs_hidden() -> Iterator[None]:
    """While inside, lines written to fd 2 that native libraries log are dropped; everything else passes.

    Such lines are written by C++ before Python's logging exists (TF_CPP_MIN_LOG_LEVEL does not reach
    all of them), so fd 2 itself is pointed at a pipe read by a filtering thread. Nested and concurrent
    uses share one redirect. With SHOW_NATIVE_LOGS nothing is changed."""
    global _native_depth, _native_state
    if SHOW_NATIVE_LOGS:
        yield
        return
    tensorflow = logging.getLogger("tensorflow")
    if tensorflow.level == logging.NOTSET:  # its Python warnings (tf.function retracing) too, unless configured
        tensorflow.setLevel(logging.ERROR)
    with _native:
        if _native_depth == 0:
            _native_state = _redirect()
        _native_depth += 1
    try:
        yield
    finally:
        with _native:
            _native_depth -= 1
            if _native_depth == 0 and _native_state is not None:
                _restore(*_native_state)
                _native_state = None


def _redirect() -> tuple | None:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
    except (OSError, ValueError):  # no fd 2 (embedded interpreters): nothing to filter
        return None
    thread = threading.Thread(target=_relay, args=(read, saved), name="native-logs", daemon=True)
    thread.start()
    return saved, thread


def _restore(saved: int, thread: threading.Thread) -> None:
    with contextlib.suppress(ValueError, OSError):
        sys.stderr.flush()
    os.dup2(saved, 2)  # closes the pipe's last write end: the relay reads to its end and stops
    thread.join(timeout=5.0)  # (a child process started meanwhile keeps the pipe open: the relay goes on)


def _relay(read: int, target: int) -> None:
    """Copy the pipe to the real stderr line by line, without native log lines; a partial line (a progress
    bar redraw) is passed on when nothing more arrives for a moment."""
    pending = b""
    try:
        while True:
            ready, _, _ = select.select([read], [], [], 0.1)
            if not ready:
                if pending and not NATIVE_LINE.match(pending) and not _may_become_native(pending):
                    _write(target, pending)
                    pending = b""
                continue
            chunk = os.read(read, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            _write(target, b"".join(line + b"\n" for line in lines if not NATIVE_LINE.match(line)))
        if pending and not NATIVE_LINE.match(pending):
            _write(target, pending)
    finally:
        os.close(read)
        os.close(target)


def _may_become_native(partial: bytes) -> bool:
    return b"WARNING: All log messages before absl".startswith(partial[:37]) or bool(
        re.match(rb"^[IWEF]\d{0,4}( \d|$)", partial)
    )


def _write(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data) :]
        except OSError:
            return


def _bar(description: str):
    """(whether stderr is a terminal, a rich progress bar on it)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    columns = (MofNCompleteColumn(), TextColumn("{task.fields[fps]:.1f} fps"), TextColumn("{task.fields[eta]}"))
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), *columns, console=console, transient=True)
    return console.is_terminal, bar
