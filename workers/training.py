"""What both trainers share: a run folder, its state.json, and resuming it only with the same config.

After every epoch a trainer writes its checkpoint, then OUT/state.json: the epochs done, the run's config
(its TrainConfig as a dict), the checkpoint to resume from, the best value of the monitored metric and
the history. Every file is written under a temporary name and renamed when complete, so a run killed at
any moment resumes from its last complete epoch.

A fresh run refuses a folder that already holds one; `resume=True` refuses a folder without a state and
a config that differs from the saved one in anything but the fields the package lists as resumable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from streamer.errors import StreamerError
from streamer.publish import atomic_path

STATE = "state.json"
STATE_VERSION = 1


@dataclass
class TrainResult:
    """Where the run's files are and how it ended."""

    out: Path
    epochs_done: int
    best_metric: str
    best_value: float | None
    history: list[dict]
    weights: Path | None = None  # the file to predict with


def read_state(out: str | Path) -> dict | None:
    """The run's state.json, or None if there is none."""
    path = Path(out) / STATE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        if not isinstance(state.get("epoch"), int) or not isinstance(state.get("config"), dict):
            raise ValueError("no 'epoch' and 'config'")
    except (ValueError, AttributeError) as error:
        raise StreamerError(f"training state {path}: unreadable ({error}); delete {out} to start over") from error
    return state


def config_from_options(config_class, args, data_help: str, parse_data, **adjusted):
    """The train config a command's options describe: each config field is the option of the same name
    (`adjusted` replaces parsed values); on --resume the saved config, with the options given applied."""
    names = {f.name for f in fields(config_class)} - {"out", "resume"}
    given = {name: value for name, value in vars(args).items() if name in names}
    given.update(adjusted)
    if args.resume:
        return resumed_config(config_class, args.out, **given)
    if "data" not in given:
        raise StreamerError(f"--data: required; give {data_help}")
    parse_data(given["data"])
    return config_class(**given, out=args.out)


def print_result(result) -> int:
    """What a finished `streamer train` says: epochs done, the best metric and where the weights are."""
    best = f"{result.best_metric} {result.best_value:.4f}" if result.best_value is not None else "n/a"
    print(f"done: {result.epochs_done} epochs; best {best} → {result.weights}")
    return 0


def resumed_config(config_class, out: str | Path, **given):
    """The config saved in `out`'s state, with the options given now applied (`start_run` checks them)."""
    state = read_state(out)
    if state is None:
        raise StreamerError(f"nothing to resume in {out}: no {STATE}; run without --resume to start a new run")
    names = {f.name for f in fields(config_class)}
    saved = {k: v for k, v in state["config"].items() if k in names}
    return config_class(**{**saved, **given, "out": str(out), "resume": True})


def start_run(config, resumable: Collection[str], checkpoint: str | None = None) -> dict | None:
    """The state to resume from (`config.resume`), or None for a fresh run in an unused `config.out`.

    `resumable`: the config fields a resumed run may change; `checkpoint`: the file to resume from when the
    state does not name one.
    """
    out = Path(config.out)
    state = read_state(out)
    if not config.resume:
        if state is not None:
            raise StreamerError(
                f"{out} already holds a training run ({state['epoch']} epochs done); pass --resume to continue it "
                "or choose another --out"
            )
        return None
    if state is None:
        raise StreamerError(f"nothing to resume in {out}: no {STATE}; run without --resume to start a new run")
    name = state.get("checkpoint") or checkpoint
    if not name or not (out / name).exists():
        raise StreamerError(
            f"nothing to resume in {out}: {name or 'the checkpoint'} is missing; delete {out} to start over"
        )
    asked = json.loads(json.dumps(asdict(config)))  # as saved: tuples become lists
    mine = {k: v for k, v in asked.items() if k not in resumable}
    theirs = {k: v for k, v in state["config"].items() if k not in resumable}
    changed = [f"{k}: run has {theirs.get(k)!r}, asked {v!r}" for k, v in mine.items() if theirs.get(k) != v]
    if changed:
        allowed = ", ".join(sorted(set(resumable) - {"out", "resume"}))
        raise StreamerError(
            f"cannot resume {out} with a different config ({'; '.join(changed)}); a resumed run may change only "
            f"{allowed}: resume with the run's own options, or start a new run in another --out"
        )
    state["checkpoint"] = name
    return state


def result(out: str | Path, state: dict, weights: Path | None = None) -> TrainResult:
    """TrainResult from a state.json dict."""
    best = state.get("best", {})
    history = state.get("history", [])
    return TrainResult(Path(out), state["epoch"], best.get("metric", ""), best.get("value"), history, weights)


class RunLog:
    """Records each epoch of a run: prints one line and rewrites state.json; tracks the best epoch.

    `monitor` names the metric that decides the best epoch: lower is better for a loss, higher otherwise.
    """

    def __init__(self, config, state: dict | None, monitor: str, log: Callable[[str], None] = print) -> None:
        self.config = config
        self.out = Path(config.out)
        self.monitor = monitor
        self.log = log
        self.history = list(state.get("history", [])) if state else []
        self.best = dict(state.get("best", {})) if state else {}
        self.best.setdefault("metric", monitor)
        self.best.setdefault("value", None)
        self.started = time.monotonic()

    def saved_config(self) -> dict:
        """The run's config as state.json holds it (JSON values)."""
        return json.loads(json.dumps(asdict(self.config)))

    def begin_epoch(self) -> None:
        """Start the epoch clock."""
        self.started = time.monotonic()

    def improves(self, value: float | None) -> bool:
        """Whether the monitored metric's `value` beats the best so far."""
        if value is None:
            return False
        best = self.best.get("value")
        if best is None:
            return True
        return value < best if self.monitor.endswith("loss") else value > best

    def end_epoch(self, epoch: int, logs: dict, checkpoint: str, value: float | None) -> bool:
        """Record epoch `epoch` (1-based) after its checkpoint file `checkpoint` (in OUT) was written;
        `value` is the monitored metric. Returns whether it is the best epoch so far."""
        seconds = time.monotonic() - self.started
        improved = self.improves(value)
        if improved:
            self.best = {"metric": self.monitor, "value": value, "epoch": epoch}
        self.history.append({"epoch": epoch, "seconds": round(seconds, 1), **logs})
        state = {
            "version": STATE_VERSION,
            "epoch": epoch,
            "config": asdict(self.config),
            "checkpoint": checkpoint,
            "best": self.best,
            "history": self.history,
        }
        with publish(self.out / STATE) as tmp:
            tmp.write_text(json.dumps(state, indent=2))
        shown = "  ".join(f"{k} {v:.4g}" for k, v in logs.items())
        mark = "  *best" if improved else ""
        self.log(f"epoch {epoch}/{self.config.epochs}  {shown}  ({seconds:.0f} s){mark}")
        return improved


def publish(path: str | Path):
    """`with publish(path) as tmp: write(tmp)`: the file appears at `path` only when written completely."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_path(path)
