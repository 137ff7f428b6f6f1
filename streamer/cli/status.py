"""`streamer status [JOB]` and `streamer cancel JOB`: jobs, workers and backlogs in Redis."""

from __future__ import annotations

import argparse
import json
import time

import redis
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streamer.cli.common import add_redis_arguments, redis_config
from streamer.cli.wait import OUTCOME
from streamer.distributed.batches import batch_progress
from streamer.distributed.connection import WORKER_GROUP, Keys, connect
from streamer.distributed.jobs import CANCELLED, FINAL, JobStore, shown_state
from streamer.errors import StreamerError
from streamer.progress import say
from streamer.secrets import redact, redact_record


def add_parser(commands) -> None:
    parser = commands.add_parser("status", help="show jobs, workers and stream backlogs")
    parser.add_argument("job", nargs="?", help="one job id (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="keep showing, refreshed every --interval (JSON: a line each time); with JOB, until it ends, "
        "exiting as `submit --wait` does (0 done, 1 failed or lost, 130 cancelled)",
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default: 1)")
    add_redis_arguments(parser, required=True)
    parser.set_defaults(run=run_status)
    cancel = commands.add_parser("cancel", help="cancel a job")
    cancel.add_argument("job", help="job id")
    add_redis_arguments(cancel, required=True)
    cancel.set_defaults(run=run_cancel)


def snapshot(client, keys: Keys, job: str | None = None) -> dict:
    """Jobs (state, progress, fps, ETA), live workers, and the backlog of every work stream."""
    jobs = JobStore(client, keys)
    records = [(job, jobs.get(job))] if job else jobs.all()
    if job and records[0][1] is None:
        raise StreamerError(f"no job {job!r} (finished jobs expire); `streamer status` lists them")
    listed = []
    for job_id, record in records:
        done = int(record.get("done") or 0)
        total = int(record["total"]) if record.get("total") else None
        fps = float(record.get("fps") or 0)
        eta = (total - done) / fps if total and fps and record.get("state") not in FINAL else None
        listed.append(
            {
                "job": job_id,
                "state": shown_state(record),
                "done": done,
                "total": total,
                "fps": fps,
                "eta": eta,
                "reason": record.get("reason") or None,
                "input": record.get("input"),
                "output": record.get("output"),
                **described(record),
                **times(record),
            }
        )
    workers = []
    for name in sorted(member.decode() for member in client.smembers(keys.workers)):
        record = {k.decode(): v.decode() for k, v in client.hgetall(keys.worker(name)).items()}
        if not record:
            client.srem(keys.workers, name)  # its heartbeat expired: gone
            continue
        workers.append(
            {
                "name": name,
                "model": record["model"],
                "batch": int(record["batch"]),
                "fps": float(record["fps"]),
                "frames": int(record["frames"]),
                "last_seen": round(time.time() - float(record["last_seen"]), 1),
            }
        )
    backlogs = []
    for stream in sorted(key.decode() for key in client.scan_iter(match=keys.work("*"), _type="stream")):
        groups = {g["name"].decode(): g for g in client.xinfo_groups(stream)}
        group = groups.get(WORKER_GROUP, {})
        backlogs.append(
            {
                "stream": stream,
                "length": client.xlen(stream),
                "pending": group.get("pending", 0),
                "lag": group.get("lag"),
            }
        )

    batches = batch_progress(client, keys.ns)
    return redact_record({"jobs": listed, "workers": workers, "backlogs": backlogs, "batches": batches})


def described(record: dict) -> dict:
    """The job's model and effect, from the record's own fields or the description it carries (tolerant: a
    record of another version shows blanks, never an error)."""
    model, effect = record.get("model"), record.get("effect")
    try:
        spec = json.loads(record.get("spec") or "{}")
    except ValueError:
        spec = {}
    job = spec.get("job") if isinstance(spec, dict) else None  # the job description the record carries
    if isinstance(job, dict):
        if isinstance(job.get("model"), dict):
            model = model or job["model"].get("name")
        effect = effect or job.get("effect")
    if isinstance(effect, str) and effect.startswith("{"):
        try:
            effect = json.loads(effect)
        except ValueError:
            pass
    if isinstance(effect, dict):
        effect = effect.get("name")
    return {"model": model if isinstance(model, str) else None, "effect": effect if isinstance(effect, str) else None}


def times(record: dict) -> dict:
    """Seconds since the epoch: submitted (queued or created), started (unless still queued), ended."""

    def number(name: str) -> float | None:
        try:
            return float(record[name]) if record.get(name) else None
        except ValueError:
            return None

    created = number("created")
    return {
        "submitted": number("submitted") or created,
        "started": number("started") or (created if record.get("state") != "queued" else None),
        "ended": number("finished") or number("ended"),
    }


def run_status(args: argparse.Namespace) -> int:
    config = redis_config(args)
    client, keys = connect(config), Keys(config.namespace)
    if not args.watch:
        state = snapshot(client, keys, args.job)
        if args.json:
            print(json.dumps(state))
        else:
            Console().print(tables(state, only_jobs=bool(args.job)))
        return 0
    if args.interval <= 0:
        raise StreamerError("--interval: give a positive number of seconds")
    if args.json:
        return watch(client, keys, args, lambda state: print(json.dumps(state), flush=True))
    with Live(console=Console(), auto_refresh=False) as live:
        return watch(client, keys, args, lambda state: live.update(tables(state), refresh=True))


def watch(client, keys: Keys, args: argparse.Namespace, show) -> int:
    """Shows the state every --interval until Ctrl-C, or until JOB ends (its outcome is the exit code); a Redis
    that stops answering is said in the view and waited for."""
    seen = False
    while True:
        try:
            state = snapshot(client, keys, args.job)
            seen = True
        except redis.RedisError as error:
            state = {"error": f"Redis does not answer ({redact(error)}); retrying", "jobs": []}
        except StreamerError:
            if not seen:
                raise  # no such job
            say(f"job {args.job}: its record is gone (expired, or its producer stopped)")
            return 1
        show(state)
        if args.job and state["jobs"] and state["jobs"][0]["state"] in OUTCOME:
            return OUTCOME[state["jobs"][0]["state"]]
        time.sleep(args.interval)


def tables(state: dict, only_jobs: bool = False) -> Group:
    """The jobs, workers, backlogs and (when any) batches tables of a snapshot; `only_jobs` (status JOB): the
    jobs table alone."""
    if "error" in state:
        return Group(Text(state["error"], style="red"))
    table = Table("job", "state", "frames", "fps", "ETA", "model", "submitted", "ended", "note", title="jobs")
    for job in state["jobs"]:
        frames = f"{job['done']}/{job['total']}" if job["total"] else str(job["done"])
        eta = f"{job['eta']:.0f} s" if job["eta"] is not None else ""
        table.add_row(
            job["job"],
            job["state"],
            frames,
            f"{job['fps']:.1f}",
            eta,
            job["model"] or "",
            clock(job["submitted"]),
            clock(job["ended"]),
            job["reason"] or "",
        )
    shown = [table]
    if only_jobs:
        return Group(*shown)
    table = Table("worker", "model", "batch", "fps", "frames", "last seen", title="workers")
    for worker in state["workers"]:
        table.add_row(
            worker["name"],
            worker["model"],
            str(worker["batch"]),
            f"{worker['fps']:.1f}",
            str(worker["frames"]),
            f"{worker['last_seen']} s ago",
        )
    shown.append(table)
    table = Table("stream", "length", "pending", "lag", title="backlogs")
    for backlog in state["backlogs"]:
        table.add_row(backlog["stream"], str(backlog["length"]), str(backlog["pending"]), str(backlog["lag"]))
    shown.append(table)
    if state["batches"]:
        table = Table("batch", "dest", "done", "failed", "left", "fps", "ETA", title="batches")
        for item in state["batches"]:
            eta = f"{item['eta']:.0f} s" if item["eta"] is not None else ""
            row = (item["batch"], item["dest"], item["done"], item["failed"], item["left"], f"{item['fps']:.1f}", eta)
            table.add_row(*map(str, row))
        shown.append(table)
    return Group(*shown)


def clock(seconds: float | None) -> str:
    """Local time of day, with the date when not today."""
    if not seconds:
        return ""
    moment = time.localtime(seconds)
    today = time.localtime()[:3] == moment[:3]
    return time.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M", moment)


def run_cancel(args: argparse.Namespace) -> int:
    config = redis_config(args)
    jobs = JobStore(connect(config), Keys(config.namespace))
    state = jobs.state(args.job)
    if state is None:
        raise StreamerError(f"no job {args.job!r}; `streamer status` lists them")
    if state in FINAL:
        raise StreamerError(f"job {args.job} already ended ({state})")
    jobs.update(args.job, state=CANCELLED, reason="cancelled by user")
    print(f"cancelled {args.job}")
    return 0
