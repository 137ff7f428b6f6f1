"""`streamer batch INPUTS... -o DEST`: process many videos from folders or buckets, resumably."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from streamer.batch import DONE, FAILED, BatchConfig, run_batch
from streamer.cli.common import (
    add_effect_arguments,
    add_frame_arguments,
    add_model_arguments,
    add_redis_arguments,
    effect_config,
    model_config,
    producer_config,
)
from streamer.effects import effect_function
from streamer.errors import StreamerError
from streamer.pipeline import ProcessConfig
from streamer.progress import say
from streamer.sink import EncodeConfig


def add_parser(commands) -> None:
    parser = commands.add_parser("batch", help="process many videos (local or s3://, gs://, az:// globs) into DEST")
    parser.add_argument("inputs", nargs="+", help="files, globs or URLs with globs, e.g. 's3://bucket/in/*.mp4'")
    parser.add_argument("-o", "--output", required=True, metavar="DEST", help="folder or bucket prefix")
    add_model_arguments(parser)
    effect = add_effect_arguments(parser)
    effect.add_argument(
        "--detections",
        action="store_true",
        help="also write each video's detections (one JSON line per frame) to DEST/<name>.jsonl",
    )
    parser.add_argument("--crf", type=int, default=23, help="x264 quality (default: 23)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset (default: veryfast)")
    parser.add_argument("--parallel", type=int, default=1, help="videos processed at once (default: 1)")
    parser.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fsspec option for cloud paths, e.g. anon=true or key=... (repeatable)",
    )
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint (MinIO, Ceph), e.g. http://127.0.0.1:9000")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_redis_arguments(parser, required=False)
    add_frame_arguments(parser)
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


def run(args: argparse.Namespace) -> int:
    effect_function(args.effect)
    if args.parallel < 1:
        raise StreamerError("--parallel: must be at least 1")
    job = ProcessConfig(
        input="",
        model=model_config(args),
        effect=effect_config(args),
        parallel_batches=args.parallel_batches,
        encode=EncodeConfig(crf=args.crf, preset=args.preset),
        redis=producer_config(args),
    )
    config = BatchConfig(
        inputs=args.inputs,
        dest=args.output,
        job=job,
        parallel=args.parallel,
        storage=storage_options(args),
        detections=args.detections,
    )

    def progress(report):
        if not args.json:
            say(f"{report.state:>7}  {report.input}" + (f": {report.reason}" if report.reason else ""))

    reports = run_batch(config, progress)
    done = [r for r in reports if r.state == DONE]
    failed = [r for r in reports if r.state == FAILED]
    frames = sum(r.frames for r in done)
    seconds = sum(r.seconds for r in reports)
    if args.json:
        print(
            json.dumps(
                {
                    "videos": [r.__dict__ for r in reports],
                    "done": len(done),
                    "failed": len(failed),
                    "skipped": len(reports) - len(done) - len(failed),
                    "frames": frames,
                    "seconds": round(seconds, 3),
                }
            )
        )
    else:
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
            f"{frames} frames in {seconds:.1f} s ({frames / seconds if seconds else 0:.1f} fps)"
        )
    return 1 if failed else 0
