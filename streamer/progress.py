"""Progress on a terminal (frames, fps, ETA) and the one-line summary at the end."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class ProgressBar:
    """A rich progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self, description: str, enabled: bool = True):
        self._console = Console(stderr=True)
        self._enabled = enabled and self._console.is_terminal
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:.1f} fps"),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._task = self._progress.add_task(description, total=None, fps=0.0)

    def __enter__(self) -> "ProgressBar":
        if self._enabled:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._enabled:
            self._progress.stop()

    def __call__(self, done: int, total: int | None) -> None:
        if not self._enabled:
            return
        task = self._progress.tasks[0]
        elapsed = task.elapsed or 0.0
        fps = done / elapsed if elapsed > 0 else 0.0
        self._progress.update(self._task, completed=done, total=total, fps=fps)


def say(message: str) -> None:
    print(message, file=sys.stderr)
