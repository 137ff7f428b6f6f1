"""`--precision auto` by measurement: time float32 and each candidate precision on a probe batch, keep the
fastest whose masks agree with float32's, and remember the answer for this machine and model.

A candidate is a name ("bf16") and a function that makes its predict call (built only when measured). Each
call maps the probe batch to masks (uint8, one label per pixel); the calls are timed alternately, round after
round, within a bounded time, and compared by their medians. The choice is cached in the user's cache folder
(`$XDG_CACHE_HOME/streamer/precision.json`, else `~/.cache/...`), keyed by the CPU (model name and flags), the
model file (path, size, modification time), the runtime, the batch and the threads: a second start on the
same machine measures nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from streamer.publish import atomic_path

AGREEMENT = 0.999  # a candidate is kept only when at least this fraction of probe mask pixels equal float32's
BUDGET = 1.0  # seconds of timed calls, all candidates together (after one untimed call each)
ROUNDS = (3, 10)  # timed calls of each candidate: at least, at most
FASTER = 1.05  # a candidate must beat float32's median by this factor (timing noise is not a speed-up)
CACHE_VERSION = 1
log = logging.getLogger(__name__)

Call = Callable[[np.ndarray], np.ndarray]  # probe frames → masks


@dataclass
class Choice:
    """What --precision auto chose, and why: each measured precision's median seconds per probe call and
    agreement with float32 (fraction of mask pixels equal)."""

    precision: str
    reason: str
    seconds: dict[str, float] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)
    cached: bool = False

    def describe(self) -> str:
        timings = ", ".join(f"{name} {value * 1000:.1f} ms" for name, value in self.seconds.items())
        agreed = ", ".join(f"{name} {value * 100:.3f}%" for name, value in self.agreement.items() if name != "f32")
        where = " (measured earlier on this machine)" if self.cached else ""
        return f"--precision auto: {self.precision}: {self.reason}{where}; probe batch {timings}" + (
            f"; masks agree with f32 on {agreed}" if agreed else ""
        )


def cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "streamer" / "precision.json"


def machine() -> str:
    """The CPU's model name and flags, as /proc/cpuinfo gives them (a different CPU measures anew)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as file:
            text = file.read(1 << 20)
    except OSError:
        return os.uname().machine
    lines = [line for line in text.splitlines() if line.startswith(("model name", "flags"))]
    return "\n".join(dict.fromkeys(lines))  # the first CPU's lines (every core repeats them)


def cache_key(model_file: Path, details: dict) -> str:
    try:
        stat = model_file.stat()
        identity = [str(model_file.resolve()), stat.st_size, stat.st_mtime_ns]
    except OSError:
        identity = [str(model_file)]
    text = json.dumps([CACHE_VERSION, machine(), identity, details], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def read_cache() -> dict:
    file = cache_file()
    try:
        if file.stat().st_size > 1_000_000:
            return {}
        data = json.loads(file.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_cache(key: str, choice: Choice) -> None:
    entries = read_cache()
    entries[key] = {k: v for k, v in asdict(choice).items() if k != "cached"}
    if len(entries) > 200:  # the oldest go first (dicts keep insertion order)
        entries = dict(list(entries.items())[-200:])
    file = cache_file()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(file) as partial:
            Path(partial).write_text(json.dumps(entries))
    except OSError as error:  # a read-only home: measure again next time
        log.debug("precision cache %s not written: %s", file, error)


def choose(
    f32: Call,
    candidates: dict[str, Callable[[], Call | None]],
    probe: np.ndarray,
    model_file: Path,
    details: dict,
    budget: float = BUDGET,
) -> tuple[Choice, dict[str, Call]]:
    """The precision to compute in: float32 (`f32`) or the fastest candidate whose masks agree with float32's
    on `probe`. `candidates`: name → a function making that precision's call (None: not possible here).
    Returns the choice and the calls made for it (so a chosen candidate is not built twice)."""
    key = cache_key(model_file, {**details, "candidates": sorted(candidates), "probe": list(probe.shape)})
    saved = read_cache().get(key)
    if isinstance(saved, dict) and saved.get("precision") in ("f32", *candidates):
        choice = Choice(**{k: saved[k] for k in ("precision", "reason", "seconds", "agreement") if k in saved})
        choice.cached = True
        return choice, {}
    calls: dict[str, Call] = {"f32": f32}
    for name, make in candidates.items():
        call = make()
        if call is not None:
            calls[name] = call
    choice = measure(calls, probe, budget)
    write_cache(key, choice)
    return choice, calls


def measure(calls: dict[str, Call], probe: np.ndarray, budget: float = BUDGET) -> Choice:
    """Time every call on `probe` alternately (bounded by `budget` seconds) and choose (see `choose`)."""
    masks = {name: np.asarray(call(probe)) for name, call in calls.items()}  # untimed: builds, warms caches
    seconds = median_seconds(calls, probe, budget)
    agreement = {name: float((masks[name] == masks["f32"]).mean()) for name in calls}
    best, reason = "f32", "no other precision is possible here"
    if len(calls) > 1:
        reason = "no other precision is faster"
    for name in calls:
        if name == "f32" or seconds[name] * FASTER > seconds[best]:
            continue
        if agreement[name] < AGREEMENT:
            reason = f"{name} is faster but agrees on only {agreement[name] * 100:.3f}% (needs {AGREEMENT * 100:.1f}%)"
            continue
        best = name
        reason = f"{seconds['f32'] / seconds[name]:.2f}x the speed of f32 and agreeing"
    return Choice(best, reason, seconds, agreement)


def median_seconds(calls: dict[str, Callable], probe, budget: float = BUDGET, rounds=ROUNDS) -> dict[str, float]:
    """Each call's median seconds on `probe`, the calls timed alternately (in turn, the order reversed every
    other round), at least rounds[0] and at most rounds[1] rounds, no new round after `budget` seconds."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    low, high = rounds
    deadline = time.perf_counter() + budget
    for round in range(high):
        if round >= low and time.perf_counter() > deadline:
            break
        order = list(calls) if round % 2 == 0 else list(calls)[::-1]
        for name in order:
            started = time.perf_counter()
            calls[name](probe)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}
