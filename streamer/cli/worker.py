"""`streamer worker --model NAME --redis URL`: serve a model to every job until stopped."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from streamer.cli.common import (
    add_gpu_memory_argument,
    add_metrics_host_argument,
    add_model_settings_arguments,
    add_precision_argument,
    add_redis_arguments,
    add_runtime_argument,
    add_threads_argument,
    model_config,
    redis_config,
)
from streamer.cli.options import add
from streamer.distributed.confine import Confinement
from streamer.distributed.spawn import spawned_model
from streamer.metrics import HealthServer
from streamer.service.pool import RunnerPool
from streamer.service.supervisor import Supervisor
from streamer.service.worker import Worker, WorkerConfig

log = logging.getLogger(__name__)


def add_parser(commands) -> None:
    parser = commands.add_parser("worker", help="serve a model to jobs over Redis until stopped (SIGTERM drains)")
    parser.add_argument("--model", default="unet", help="model name (default: unet)")
    parser.add_argument("--weights", help="weights file (default: the model's bundled demo weights)")
    add(parser, "batch", type=int, metavar="N", help="frames per model call (default: 4; 2 on ONNX Runtime, OpenVINO)")
    add(parser, "device", help="cpu, a GPU number (0, 1, …), cuda:N or /GPU:N (default: a GPU when there is one)")
    parser.add_argument("--mixed-precision", action="store_true", help="float16 compute (GPUs)")
    add_precision_argument(parser)
    add_gpu_memory_argument(parser)
    add_threads_argument(parser)
    add_runtime_argument(parser)
    add_model_settings_arguments(parser)
    parser.add_argument("--name", help="worker name (default: host-pid)")
    parser.add_argument(
        "--claim-idle",
        type=float,
        default=10.0,
        help="seconds before a dead worker's frames are taken over (default: 10)",
    )
    parser.add_argument(
        "--max-deliveries",
        type=int,
        default=3,
        help="deliveries of a frame before it is dead-lettered and its job fails (default: 3)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="submitted jobs this worker also runs (decode and mux) at once (default: 1; 0: none)",
    )
    parser.add_argument(
        "--allow-input",
        action="append",
        default=[],
        metavar="FOLDER|URL",
        help="folder or URL prefix submitted jobs may read (repeatable; default: the current folder, and "
        "http(s)/rtsp/rtmp streams from hosts that are not loopback or link-local)",
    )
    parser.add_argument(
        "--allow-output",
        action="append",
        default=[],
        metavar="FOLDER|URL",
        help="folder or URL prefix (e.g. s3://bucket/out/) submitted jobs may write (repeatable; "
        "default: the current folder)",
    )
    parser.add_argument(
        "--metrics-port", type=int, help="serve /metrics (Prometheus), /healthz and /readyz on this port"
    )
    add_metrics_host_argument(parser)
    add_redis_arguments(parser, required=True)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = WorkerConfig(
        model=spawned_model() or model_config(args),
        redis=redis_config(args),
        claim_idle=args.claim_idle,
        max_deliveries=args.max_deliveries,
    )
    if args.name:
        config.name = args.name
    confinement = Confinement(inputs=args.allow_input, outputs=args.allow_output)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    supervisor = Supervisor(stop)
    if args.jobs:
        RunnerPool(config.redis, args.jobs, stop, confinement, prefix=f"{config.name}-runner", supervisor=supervisor)
    log.info("worker %s serving %s", config.name, config.model.name)
    worker = Worker(config, confinement=confinement, supervisor=supervisor)
    health = None
    if args.metrics_port:
        health = HealthServer(worker.metrics, args.metrics_port, worker.ready, worker.alive, args.metrics_host)
    try:
        worker.serve(stop)
    finally:
        if health:
            health.close()
    if supervisor.failed:
        log.error("worker %s stopped: %s", config.name, supervisor.failed)
        return 1
    return 0
