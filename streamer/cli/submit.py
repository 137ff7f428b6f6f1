"""`streamer submit INPUT -o OUTPUT --redis URL`: queue a job for the workers and print its id."""

from __future__ import annotations

import argparse

from streamer.cli.common import (
    add_effect_arguments,
    add_model_settings_arguments,
    add_redis_arguments,
    check_frame_codec,
    effect_config,
    model_settings,
    redis_config,
)
from streamer.cli.options import add
from streamer.cli.wait import wait_for_job
from streamer.distributed.connection import CODECS, Keys, connect
from streamer.distributed.jobs import JobSpec, JobStore, new_job_id, submit
from streamer.effects import check_effect
from streamer.errors import StreamerError
from streamer.models import ModelConfig
from streamer.progress import say


def add_parser(commands) -> None:
    parser = commands.add_parser("submit", help="queue a job for the workers; prints its id")
    parser.add_argument(
        "input",
        help="video path or URL, as the workers see it; the worker that takes the job checks it against its "
        "--allow-input (a refused job fails: see streamer status JOB)",
    )
    parser.add_argument(
        "-o", "--output", required=True, help="output path, as the workers see it (checked against --allow-output)"
    )
    parser.add_argument("-y", "--overwrite", action="store_true", help="overwrite the output if it exists")
    parser.add_argument("--model", default="unet", help="model name (default: unet)")
    parser.add_argument("--weights", help="weights file, as the workers see it (default: the workers')")
    add(parser, "batch", type=int, default=4, metavar="N", help="frames per model call (default: 4)")
    parser.add_argument(
        "--threshold",
        "--min-confidence",
        dest="threshold",
        type=float,
        help="mask threshold or minimum detection confidence (default: the model's)",
    )
    add_model_settings_arguments(parser)
    add_effect_arguments(parser)
    parser.add_argument("--frame-codec", default="raw", help=f"{' | '.join(CODECS)} (default: raw)")
    parser.add_argument("--quality", type=int, default=90, help="jpeg/webp quality (default: 90)")
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait for the job to end; exit 0 done, 1 failed or lost, 130 cancelled, 124 after --wait-timeout",
    )
    parser.add_argument("--wait-timeout", type=float, metavar="SECONDS", help="with --wait: give up waiting after this")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the job id")
    add_redis_arguments(parser, required=True)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model = ModelConfig(name=args.model, batch_size=args.batch, threshold=args.threshold, **model_settings(args))
    check_effect(args.effect)
    if args.wait_timeout is not None and (not args.wait or args.wait_timeout <= 0):
        raise StreamerError("--wait-timeout: give a positive number of seconds, with --wait")
    check_frame_codec(args.frame_codec)
    config = redis_config(args)
    spec = JobSpec(
        model=model.name,
        effect=effect_config(args),
        threshold=args.threshold,
        weights=args.weights,
        settings=model.all_settings(),  # --config is read here: its settings travel with the job
        class_names=list(model.class_names) if model.class_names else None,
        frame_codec=args.frame_codec,
        quality=args.quality,
    )
    job = new_job_id()
    client = connect(config)
    submit(client, config, job, spec, args.input, args.output, args.overwrite, model.batch_size)
    print(job, flush=True)
    if not (args.quiet or args.wait):  # a worker may yet refuse the paths: say where that shows
        say(
            f"streamer: queued {job}; the worker that takes it checks its input and output against its --allow-input "
            f"and --allow-output (streamer status {job}, or --wait)"
        )
    if args.wait:
        return wait_for_job(JobStore(client, Keys(config.namespace)), job, args.wait_timeout)
    return 0
