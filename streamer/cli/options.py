"""One name for each concept that several commands share: the flag every command spells the same way, the
old spellings it still accepts (hidden from --help, for a release), and how its value is read.

Parsers add these options with `add(parser, NAME, ...)`; tests/test_options.py checks that every command's
options agree with the table (no hidden spelling shows, no flag means two things).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass


def device(text: str) -> str:
    """A device as users of other tools write it → TensorFlow's name: `cpu` → /CPU:0; `0`, `gpu`, `cuda:1`,
    `GPU:1` → /GPU:N; TensorFlow's own names (/GPU:0, /device:GPU:0) as they are."""
    word = text.strip()
    if word.startswith("/"):
        return word
    found = re.fullmatch(r"(?i)(cpu|gpu|cuda)?:?(\d+)?", word)
    if not found or not (found[1] or found[2]):
        raise argparse.ArgumentTypeError(f"{text!r}: give cpu, a GPU number (0, 1, …), cuda:N or /GPU:N")
    kind = "CPU" if (found[1] or "").lower() == "cpu" else "GPU"
    return f"/{kind}:{found[2] or 0}"


@dataclass(frozen=True)
class Option:
    """A concept's flag (with its short form), the spellings kept for a release, and what it means."""

    flags: tuple[str, ...]
    meaning: str
    old: tuple[str, ...] = ()  # accepted, not shown in --help
    metavar: str | None = None


OPTIONS = {
    "batch": Option(("--batch",), "frames (or images) per model call or training step", ("--batch-size",), "N"),
    "device": Option(("--device",), "where the model runs: cpu, a GPU number, cuda:N or /GPU:N", metavar="DEV"),
    "output": Option(("-o", "--output"), "what the command writes"),
    "overwrite": Option(("-y", "--overwrite"), "replace an existing output"),
    "weights": Option(("--weights",), "the model's weights file"),
    "run folder": Option(("--out",), "train: the run folder (checkpoints, state, report)"),
    "final weights": Option(("--weights-out",), "train maskrcnn: the final weights file", ("--output",), "FILE"),
    "local workers": Option(("--workers",), "process --redis: worker processes it starts for its job", metavar="N"),
    "runners": Option(("--runners",), "batch: videos it processes at once", ("--workers", "--parallel"), "N"),
    "json": Option(("--json",), "a JSON document on stdout instead of text"),
    "quiet": Option(("-q", "--quiet"), "no progress or summary"),
}


def add(parser, name: str, **kwargs) -> argparse.Action:
    """Add the option `name` of the table to `parser` (or an argument group), with its old spellings hidden;
    `kwargs` as argparse takes them (dest, type, default, help, …)."""
    option = OPTIONS[name]
    if name == "device":
        kwargs.setdefault("type", device)
    if option.metavar:
        kwargs.setdefault("metavar", option.metavar)
    action = parser.add_argument(*option.flags, **kwargs)
    for old in option.old:
        hidden = {key: value for key, value in kwargs.items() if key not in ("help", "metavar", "required")}
        hidden.setdefault("dest", action.dest)
        parser.add_argument(old, help=argparse.SUPPRESS, **hidden)
    return action


def shown(flag: str) -> str | None:
    """The name of the concept a flag shown in --help stands for; None for a flag of one command only."""
    for name, option in OPTIONS.items():
        if flag in option.flags:
            return name
    return None
