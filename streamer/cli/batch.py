"""`streamer batch INPUTS... -o DEST`: process many videos from folders or buckets, resumably."""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time

from rich.console import Console
from rich.table import Table

from streamer.batch import DONE, FAILED, STALE, BatchConfig, run_batch, runner_name, write_manifest
from streamer.batch.shared import confinement
from streamer.cli.common import add_redis_arguments, add_transfer_arguments, producer_config
from streamer.cli.job_options import add_job_arguments, job_config
from streamer.cli.options import add
from streamer.distributed.confine import Confinement
from streamer.effects import check_effect
from streamer.errors import StreamerError
from streamer.progress import say
from streamer.service.pool import RunnerPool


def add_parser(commands) -> None:
    parser = commands.add_parser("batch", help="process many videos (local or s3://, gs://, az:// globs) into DEST")
    parser.add_argument(
        "inputs", nargs="*", help="files, globs or URLs with globs, e.g. 's3://bucket/in/*.mp4' (not with --join)"
    )
    parser.add_argument("-o", "--output", metavar="DEST", help="folder or bucket prefix")
    effect = add_job_arguments(parser, outputs=False)
    effect.add_argument(
        "--detections",
        action="store_true",
        help="also write each video's detections (one JSON line per frame) to DEST/<name>.jsonl",
    )
    add(
        parser,
        "runners",
        dest="workers",
        type=int,
        default=1,
        metavar="N",
        help="local runners: videos this command processes at once (default: 1; 0 with --redis: only queue)",
    )
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="only the I-th (0..N-1) of N disjoint slices of the inputs, stable by name "
        "(Kubernetes Indexed Jobs, Argo, AWS Batch arrays)",
    )
    parser.add_argument(
        "--stale",
        type=float,
        default=STALE,
        help=f"seconds without a heartbeat before a running video counts as interrupted and is redone "
        f"(default: {STALE:g})",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="write DEST/manifest.json from the videos' state and print the progress; process nothing",
    )
    parser.add_argument(
        "--join",
        action="store_true",
        help="with --redis: run --runners runners on the queued videos of any batch, exit when none is left",
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=30.0,
        help="with --join: seconds with nothing queued before exiting (default: 30)",
    )
    parser.add_argument(
        "--allow-input",
        action="append",
        default=[],
        metavar="FOLDER|URL",
        help="with --join: folder or URL prefix queued videos may be read from (repeatable; default: the "
        "current folder)",
    )
    parser.add_argument(
        "--allow-output",
        action="append",
        default=[],
        metavar="FOLDER|URL",
        help="with --join: folder or URL prefix (e.g. s3://bucket/out/) queued videos may be written to "
        "(repeatable; default: the current folder)",
    )
    parser.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fsspec option for cloud paths, e.g. anon=true or key=... (repeatable)",
    )
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint (MinIO, Ceph), e.g. http://127.0.0.1:9000")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON line per video: input, state, output, frames, seconds"
    )
    add_redis_arguments(parser, required=False)
    add_transfer_arguments(parser)
    parser.set_defaults(run=run)


def storage_options(args: argparse.Namespace) -> dict:
    options: dict = {}
    for item in args.storage_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise StreamerError(f"--storage-option {item}: give KEY=VALUE")
        options[key] = {"true": True, "false": False}.get(value.lower(), value)
    if args.endpoint_url:
        options.setdefault("client_kwargs", {})["endpoint_url"] = args.endpoint_url
    return options


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise StreamerError(f"--shard {text}: give I/N, e.g. 0/4 for the first of four slices") from None
    if count < 1 or not 0 <= index < count:
        raise StreamerError(f"--shard {text}: I must be 0..N-1 and N at least 1")
    return index, count


def run(args: argparse.Namespace) -> int:
    check_effect(args.effect)
    if args.workers < 0:
        raise StreamerError("--runners: must be 0 or more")
    if args.stale <= 0:
        raise StreamerError("--stale: must be more than 0 seconds")
    redis = producer_config(args)
    if args.join:
        if redis is None:
            raise StreamerError("--join: give --redis URL (the queue to take videos from)")
        allowed = Confinement(inputs=args.allow_input, outputs=args.allow_output)
        return join_batches(redis, max(1, args.workers), storage_options(args), args.stale, args.idle, allowed)
    if not args.output:
        raise StreamerError("batch: give -o DEST")
    if args.report:
        summary = write_manifest(args.output, storage_options(args))["summary"]
        if args.json:
            print(json.dumps(summary))
        else:
            say(_summary_line(summary))
        return 1 if summary["failed"] else 0
    if not args.inputs:
        raise StreamerError("batch: give the inputs (files, globs or URLs)")
    if args.workers == 0 and redis is None:
        raise StreamerError("--runners 0: only with --redis (other runners take the queued videos)")
    shard = parse_shard(args.shard)
    if shard and redis is not None:
        raise StreamerError("--shard: not with --redis (the runners share the videos through Redis already)")
    config = BatchConfig(
        inputs=args.inputs,
        dest=args.output,
        job=job_config(args),
        workers=args.workers,
        storage=storage_options(args),
        detections=args.detections,
        shard=shard,
        stale=args.stale,
        redis=redis,
    )

    def progress(report):
        if args.json:
            print(
                json.dumps(
                    {
                        "input": report.input,
                        "state": report.state,
                        "output": report.output,
                        "frames": report.frames,
                        "seconds": round(report.seconds, 3),
                        **({"reason": report.reason} if report.reason else {}),
                    }
                ),
                flush=True,
            )
        else:
            say(f"{report.state:>7}  {report.input}" + (f": {report.reason}" if report.reason else ""))

    def runners(stop):
        # this batch's inputs and DEST, as for any queued job
        allowed = confinement(config)
        return RunnerPool(
            config.redis, config.workers, stop, allowed, f"{runner_name()}-", config.stale, config.storage
        )

    reports = run_batch(config, progress, runners)
    done = [r for r in reports if r.state == DONE]
    failed = [r for r in reports if r.state == FAILED]
    frames = sum(r.frames for r in done)
    seconds = sum(r.seconds for r in done + failed)
    if not args.json:
        table = Table("video", "state", "frames", "seconds", "fps", title="batch")
        for r in reports:
            table.add_row(
                r.input,
                r.state,
                str(r.frames),
                f"{r.seconds:.1f}",
                f"{r.frames / r.seconds:.1f}" if r.seconds and r.frames else "",
            )
        Console(stderr=True).print(table)
    say(
        f"{len(done)} done, {len(failed)} failed, {len(reports) - len(done) - len(failed)} skipped; "
        f"{frames} frames in {seconds:.1f} s of processing ({frames / seconds if seconds else 0:.1f} fps per runner)"
    )
    return 1 if failed else 0


def _summary_line(summary: dict) -> str:
    eta = f", ETA {summary['eta']:.0f} s" if summary.get("eta") else ""
    return (
        f"{summary['videos']} videos: {summary['done']} done, {summary['failed']} failed, {summary['running']} "
        f"running, {summary['interrupted']} interrupted; {summary['frames']} frames, {summary['fps']:.1f} fps{eta}"
    )


def join_batches(redis, workers: int, storage: dict, stale: float, idle: float, allowed: Confinement) -> int:
    """Run `workers` runners on the submitted queue until it has been empty for `idle` seconds."""
    from streamer.distributed.connection import Keys, connect

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    pool = RunnerPool(redis, workers, stop, allowed, f"{runner_name()}-", stale, storage)
    client, stream = connect(redis), Keys(redis.namespace).submitted
    empty_since = time.monotonic()
    while not stop.wait(1.0):
        if client.xlen(stream):
            empty_since = time.monotonic()
        elif time.monotonic() - empty_since >= idle:
            break
    stop.set()
    pool.join(timeout=600)
    return 0
