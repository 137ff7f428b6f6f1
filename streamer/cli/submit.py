"""`streamer submit INPUT -o OUTPUT --redis URL`: queue a job for the runners and print its id.

It takes the same options as `process` for the job itself (streamer.cli.job_options), and the job travels
whole: the runner that takes it runs exactly what `process` would have run here.
"""

from __future__ import annotations

import argparse

from streamer.cli.common import add_redis_arguments, redis_config
from streamer.cli.job_options import add_job_arguments, job_config
from streamer.cli.wait import wait_for_job
from streamer.distributed.connection import Keys, connect
from streamer.distributed.jobs import JobSpec, JobStore, new_job_id, submit
from streamer.effects import check_effect
from streamer.errors import StreamerError
from streamer.progress import say


def add_parser(commands) -> None:
    parser = commands.add_parser("submit", help="queue a job for the workers; prints its id")
    parser.add_argument(
        "input",
        help="video path or URL, as the workers see it; the worker that takes the job checks it against its "
        "--allow-input (a refused job fails: see streamer status JOB)",
    )
    add_job_arguments(parser)
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
    if args.wait_timeout is not None and (not args.wait or args.wait_timeout <= 0):
        raise StreamerError("--wait-timeout: give a positive number of seconds, with --wait")
    job = job_config(args)
    check_effect(job.effect.name)
    config = redis_config(args)
    job_id = new_job_id()
    client = connect(config)
    submit(client, config, job_id, JobSpec.of(job))
    print(job_id, flush=True)
    if not (args.quiet or args.wait):  # a worker may yet refuse the paths: say where that shows
        say(
            f"streamer: queued {job_id}; the worker that takes it checks its input and output against its "
            f"--allow-input and --allow-output (streamer status {job_id}, or --wait)"
        )
    if args.wait:
        return wait_for_job(JobStore(client, Keys(config.namespace)), job_id, args.wait_timeout)
    return 0
